"""The values the feature pipeline passes around: what a file gave (an entry or a failure), the
rows of a set of files, and what the cache needs to know of a featurizer. Apart from
``trainer.features.base`` so that the cache, which ``base`` uses, need not import it back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from trainer.common.configs import PreprocessConfig


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """The head's rows for the readable files, in input order, and what happened to the rest."""

    rows: np.ndarray  # (n_ok, row_size) float32
    ok_indices: np.ndarray  # index into the input list for each row
    errors: dict[int, str]  # input index -> reason
    from_cache: int
    seconds: float
    decode_seconds: float = 0.0  # summed over the threads that decode, for benchmarks
    network_seconds: float = 0.0  # time inside a network, summed over lanes


@dataclass(frozen=True, slots=True)
class DecodedImages:
    """Decoded pixels (no cache): what prediction feeds ``rows_from_pixels``."""

    pixels: np.ndarray  # (n_ok, size, size, 3) uint8
    ok_indices: np.ndarray
    errors: dict[int, str]
    seconds: float


@dataclass(frozen=True, slots=True)
class Failure:
    """A file that gave no entry, and why; only lasting failures go into the cache (a missing
    or locked file may be fine next time)."""

    reason: str
    lasting: bool


@dataclass
class Timing:
    decode: float = 0.0
    network: float = 0.0


Entry = np.ndarray | Failure


class CachedKind(Protocol):
    """A featurizer as its cache sees it: what names the cache file and shapes its entries."""

    kind: str
    entry_dtype: Any

    @property
    def identity(self) -> dict[str, Any]: ...

    @property
    def preprocess(self) -> PreprocessConfig: ...

    @property
    def entry_shape(self) -> tuple[int, ...]: ...
