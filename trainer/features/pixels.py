"""The paper's own input: each image resized to 24x24 RGB, normalised with the ImageNet mean/std
and flattened channel-first to 1,728 values (``trainer.data.preprocess``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import PreprocessConfig
from trainer.common.cpu import CpuBudget
from trainer.data.preprocess import to_model_input
from trainer.features.base import (
    EXPLAIN_INPUT,
    AutoRecipe,
    Entry,
    ExplainSettings,
    Featurizer,
    Timing,
    decode_on_pool,
)

if TYPE_CHECKING:
    from torch import nn


class PixelFeaturizer(Featurizer):
    """Caches the decoded uint8 pixels (1.7 KB an image); rows are normalised when collected."""

    description: ClassVar[str] = "24x24 pixels"
    # The paper's recipe exactly: one MLP, the grid picked by accuracy, classes as they come.
    auto_recipe: ClassVar[AutoRecipe] = AutoRecipe(
        head="mlp", heads=1, select_by="accuracy", class_prior="data"
    )
    explain_defaults: ClassVar[ExplainSettings] = ExplainSettings(
        EXPLAIN_INPUT, "gradient_x_input"
    )  # the image itself
    entry_dtype: ClassVar[np.dtype] = np.dtype(np.uint8)

    @classmethod
    def default_preprocess(cls) -> PreprocessConfig:
        return PreprocessConfig()

    @property
    def row_size(self) -> int:
        return self.preprocess.input_size

    @property
    def entry_shape(self) -> tuple[int, ...]:
        return (self.preprocess.size, self.preprocess.size, 3)

    def rows_from_entries(self, entries: np.ndarray) -> np.ndarray:
        return to_model_input(entries, self.preprocess).numpy()

    def rows_from_pixels(
        self,
        pixels: np.ndarray,
        *,
        budget: CpuBudget,
        device: str = "cpu",
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> np.ndarray:
        return to_model_input(pixels, self.preprocess).numpy()

    def network(self) -> nn.Module:
        from torch import nn

        return nn.Flatten(1)

    def stages(self) -> dict[str, nn.Module]:
        return {}

    def _compute(
        self,
        paths: Sequence[Path],
        todo: list[int],
        results: list[Entry | None],
        budget: CpuBudget,
        device: str,
        cancel: CancelToken,
        timing: Timing,
    ) -> Iterator[int]:
        return decode_on_pool(paths, todo, results, self.preprocess, budget, cancel, timing)
