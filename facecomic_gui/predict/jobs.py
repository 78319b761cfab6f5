"""The Predict tab's work for a worker: expand inputs and predict them batch by batch. Trainer
modules (and so torch) are imported in the worker thread, never at GUI start-up."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from trainer.common.cancel import CancelToken

if TYPE_CHECKING:
    from trainer.model.model_file import LoadedModel
    from trainer.prediction.predictor import Prediction

Source = Path | Image.Image


@dataclass(frozen=True, slots=True)
class ImagesFound:
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class BatchPredicted:
    start: int  # index into the job's sources
    predictions: tuple[Prediction, ...]


def predict_job(
    model: LoadedModel, inputs: Sequence[Source], batch_size: int = 64, *, cancel: CancelToken
) -> Generator[ImagesFound | BatchPredicted, None, int]:
    """Expand folders (recursively), announce the images, then predict them batch by batch."""
    from trainer.data.dataset import collect_image_paths
    from trainer.prediction.predictor import Predictor

    sources: list[Source] = []
    for item in inputs:
        cancel.raise_if_cancelled()
        if isinstance(item, Image.Image):
            sources.append(item)
        else:
            sources.extend(collect_image_paths([item]))
    yield ImagesFound(tuple(sources))
    from facecomic_gui.common.cpu import prediction_budget

    predictor = Predictor(model, prediction_budget())
    start = 0
    for batch in predictor.predict_batches(sources, batch_size=batch_size, cancel=cancel):
        yield BatchPredicted(start, tuple(batch))
        start += len(batch)
    return len(sources)
