"""The Train tab's work for a worker: scanning a folder and a full run. Each is a generator
function taking ``cancel``; trainer modules (and so torch) are imported here, in the worker
thread, never at GUI start-up."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.common.cancel import CancelToken

if TYPE_CHECKING:
    from trainer.common.configs import GridSpec, TrainConfig
    from trainer.data.dataset import DatasetScan
    from trainer.model.model_file import LoadedModel
    from trainer.model.results import RunResult


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    result: RunResult
    model: LoadedModel  # ready for predictions; the saved copy when the save worked
    saved_to: Path | None
    save_error: str | None = None


def scan_job(path: str, *, cancel: CancelToken) -> Generator[None, None, DatasetScan]:
    from trainer.data.dataset import scan_dataset

    cancel.raise_if_cancelled()
    return scan_dataset(path)
    yield  # a generator, so it runs like every other job


def training_job(
    data_dir: str, config: TrainConfig, grid: GridSpec, runs_dir: Path, *, cancel: CancelToken
) -> Generator[object, None, TrainingOutcome]:
    """The trainer's run, then an automatic, atomic save so a finished run is never lost. A failed
    save (full disk, read-only folder) keeps the model in memory rather than losing the run. The
    save never replaces a file: two runs finished within a second get ``NAME (2)``."""
    from facecomic_gui.common.cpu import training_budget
    from trainer.common.errors import FaceComicError
    from trainer.common.new_files import write_new
    from trainer.model.model_file import load_model, model_bytes, model_from_result
    from trainer.training.experiment import run_experiment

    result = yield from run_experiment(
        data_dir, config=config, grid=grid, budget=training_budget(), cancel=cancel
    )
    cancel.raise_if_cancelled()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^\w.-]+", "_", Path(result.dataset_root).name)[:100] or "dataset"
    try:
        path = write_new(runs_dir, f"{stamp}-{name}.safetensors", model_bytes(result), make_folders=True)
    except OSError as err:
        return TrainingOutcome(result, model_from_result(result), None, f"{err.strerror or err}")
    except FaceComicError as err:
        return TrainingOutcome(result, model_from_result(result), None, str(err).rstrip("."))
    return TrainingOutcome(result, load_model(path), path)
