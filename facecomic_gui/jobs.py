"""Work the GUI hands to a ``GeneratorWorker``. Each is a generator function taking ``cancel``;
trainer modules (and so torch) are imported here, in the worker thread, never at GUI start-up."""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from trainer.common.cancel import CancelToken

if TYPE_CHECKING:
    from trainer.common.configs import GridSpec, TrainConfig
    from trainer.data.dataset import DatasetScan
    from trainer.model.model_file import LoadedModel
    from trainer.prediction.predictor import Prediction
    from trainer.training.results import RunResult

Source = Path | Image.Image


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    result: RunResult
    model: LoadedModel  # ready for predictions; the saved copy when the save worked
    saved_to: Path | None
    save_error: str | None = None


@dataclass(frozen=True, slots=True)
class ImagesFound:
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class BatchPredicted:
    start: int  # index into the job's sources
    predictions: tuple[Prediction, ...]


def scan_job(path: str, *, cancel: CancelToken) -> Generator[None, None, DatasetScan]:
    from trainer.data.dataset import scan_dataset

    cancel.raise_if_cancelled()
    return scan_dataset(path)
    yield  # a generator, so it runs like every other job


def load_model_job(path: str, *, cancel: CancelToken) -> Generator[None, None, LoadedModel]:
    from trainer.model.model_file import load_model

    cancel.raise_if_cancelled()
    model = load_model(path)
    # Import the training and prediction code now, while the user looks around, rather than
    # beside the first run's busiest moment.
    import trainer.prediction.predictor
    import trainer.training.experiment  # noqa: F401

    return model
    yield


def training_job(
    data_dir: str, config: TrainConfig, grid: GridSpec, runs_dir: Path, *, cancel: CancelToken
) -> Generator[object, None, TrainingOutcome]:
    """The trainer's run, then an automatic, atomic save so a finished run is never lost. A failed
    save (full disk, read-only folder) keeps the model in memory rather than losing the run."""
    from trainer.model.model_file import load_model, model_from_result, save_model
    from trainer.training.experiment import run_experiment

    # One core stays free for the window, so it never waits for the CPU while training.
    threads = max(1, (os.cpu_count() or 1) - 1)
    result = yield from run_experiment(data_dir, config=config, grid=grid, cancel=cancel, cpu_threads=threads)
    cancel.raise_if_cancelled()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^\w.-]+", "_", Path(result.dataset_root).name) or "dataset"
    try:
        path = save_model(runs_dir / f"{stamp}-{name}.safetensors", result)
    except OSError as err:
        return TrainingOutcome(result, model_from_result(result), None, f"{err.strerror or err}")
    return TrainingOutcome(result, load_model(path), path)


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
    predictor = Predictor(model)
    start = 0
    for batch in predictor.predict_batches(sources, batch_size=batch_size, cancel=cancel):
        yield BatchPredicted(start, tuple(batch))
        start += len(batch)
    return len(sources)


def default_runs_dir() -> Path:
    """Where finished runs are saved automatically (``FACECOMIC_DATA_DIR`` overrides)."""
    override = os.environ.get("FACECOMIC_DATA_DIR")
    if override:
        return Path(override) / "runs"
    from PySide6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".local" / "share" / "FaceComic") / "runs"
