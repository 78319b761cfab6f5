"""Prediction on files or PIL images, in batches, with a result (or an error) per item."""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import PREDICTION_BATCH_SIZE, DecodeOptions
from trainer.common.cpu import CpuBudget
from trainer.common.errors import ImageDecodeError
from trainer.common.events import drain
from trainer.data.preprocess import ImageSource, decode_image, source_label
from trainer.model.calibration import softmax
from trainer.model.model_file import LoadedModel, load_model
from trainer.model.results import flag_for

DEFAULT_BATCH_SIZE = PREDICTION_BATCH_SIZE
UNCACHED = DecodeOptions(use_cache=False)  # prediction never writes a cache of what it was shown


@dataclass(frozen=True, slots=True)
class Prediction:
    source: str
    label: str | None = None  # class (folder) name
    display_label: str | None = None  # "Real face" / "Comic"
    confidence: float | None = None  # calibrated probability of ``label``
    probabilities: dict[str, float] | None = None  # calibrated, per class
    flag: str = ""  # "" when sure; else "not a face", "unlike training images" or "low confidence"
    error: str | None = None

    @property
    def unsure(self) -> bool:
        return bool(self.flag)

    @property
    def ok(self) -> bool:
        return self.error is None


class Predictor:
    """A model's answers for files and PIL images; ``budget`` sizes the threads it decodes on and
    the lanes its featurizer runs on (default: every core)."""

    def __init__(self, loaded: LoadedModel, budget: CpuBudget | None = None) -> None:
        self.loaded = loaded
        self.featurizer = loaded.featurizer
        self.config = self.featurizer.preprocess
        self.budget = budget or CpuBudget.all_cores()
        self._model = loaded.model.to("cpu").eval()  # tiny MLP: CPU beats a GPU round trip

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Predictor:
        return cls(load_model(path))

    def predict(
        self, items: Sequence[ImageSource], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[Prediction]:
        out: list[Prediction] = []
        for batch in self.predict_batches(items, batch_size=batch_size):
            out.extend(batch)
        return out

    def predict_batches(
        self,
        items: Sequence[ImageSource],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> Generator[list[Prediction], None, None]:
        """Yield the predictions of each batch in input order; checks ``cancel`` between batches
        and, for featurizers with a network, between its own small batches."""
        for start in range(0, len(items), batch_size):
            cancel.raise_if_cancelled()
            yield self._predict_batch(items[start : start + batch_size], cancel)

    def _predict_batch(self, items: Sequence[ImageSource], cancel: CancelToken) -> list[Prediction]:
        rows: list[np.ndarray | None] = [None] * len(items)
        errors: dict[int, str] = {}
        pasted: dict[int, np.ndarray] = {}
        path_index = [i for i, item in enumerate(items) if not isinstance(item, Image.Image)]
        for i, item in enumerate(items):
            if isinstance(item, Image.Image):
                try:
                    pasted[i] = decode_image(item, self.config)
                except ImageDecodeError as err:
                    errors[i] = err.reason
                except Exception as err:  # a bad in-memory image is one error row
                    errors[i] = f"could not convert the image ({err})"
        if path_index:
            # The featurizer's own pipeline, as in training, without its cache: for the backbone,
            # lanes that each decode a few images and embed them, so both stay busy together.
            paths = [Path(os.fspath(items[i])) for i in path_index]
            features = drain(
                self.featurizer.extract(paths, options=UNCACHED, budget=self.budget, cancel=cancel)
            )
            for row, j in enumerate(features.ok_indices):
                rows[path_index[j]] = features.rows[row]
            for j, reason in features.errors.items():
                errors[path_index[j]] = reason
        if pasted:
            embedded = self.head_inputs(np.stack(list(pasted.values())), cancel=cancel)
            for i, row in zip(pasted, embedded, strict=True):
                rows[i] = row
        good = [i for i in range(len(items)) if rows[i] is not None]
        probabilities, unlike, not_a_face = (
            self.scores_of_inputs(np.stack([rows[i] for i in good])) if good else (None, None, None)
        )
        names = self.loaded.class_names
        shown = self.loaded.display_names
        results: list[Prediction] = []
        row_of = {i: row for row, i in enumerate(good)}
        for i, item in enumerate(items):
            label = source_label(item)
            if i in errors:
                results.append(Prediction(label, error=errors[i]))
                continue
            row = row_of[i]
            probs = probabilities[row]
            best = int(np.argmax(probs))
            confidence = float(probs[best])
            flag = flag_for(probs, bool(unlike[row]), bool(not_a_face[row]))
            results.append(
                Prediction(
                    label,
                    label=names[best],
                    display_label=shown[best],
                    confidence=confidence,
                    probabilities={n: float(p) for n, p in zip(names, probs, strict=True)},
                    flag=flag,
                )
            )
        return results

    def head_inputs(self, pixels: np.ndarray, *, cancel: CancelToken = NEVER_CANCELLED) -> np.ndarray:
        """What the head sees for ``(N, size, size, 3)`` uint8 pixels (its featurizer's rows)."""
        return self.featurizer.rows_from_pixels(pixels, budget=self.budget, cancel=cancel)

    @torch.inference_mode()
    def probabilities_and_flags(
        self, pixels: np.ndarray, *, cancel: CancelToken = NEVER_CANCELLED
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated class probabilities; whether each image is unlike the training images; and
        whether it is not a face at all (both False where the model has no such detector)."""
        return self.scores_of_inputs(self.head_inputs(pixels, cancel=cancel))

    @torch.inference_mode()
    def scores_of_inputs(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``probabilities_and_flags`` from what the head sees (embeddings or normalised pixels),
        for callers that already have them (the benchmarks score cached embeddings)."""
        logits = self._model(torch.from_numpy(np.asarray(inputs, np.float32))).numpy()
        probabilities = softmax(logits, self.loaded.temperature)
        novelty, scorer = self.loaded.novelty, self.loaded.face_likeness
        unlike = novelty.is_unlike(inputs) if novelty is not None else np.zeros(len(inputs), bool)
        not_a_face = scorer.is_not_a_face(inputs) if scorer is not None else np.zeros(len(inputs), bool)
        return probabilities, unlike, not_a_face

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Calibrated softmax for ``(N, size, size, 3)`` uint8 pixels."""
        return self.probabilities_and_flags(pixels)[0]
