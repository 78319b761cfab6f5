"""The events of a training run, in one namespace: those that carry the run's data and results
(defined here, above ``trainer.data`` and ``trainer.model``, whose types they hold) and the plain
ones every layer may yield (``trainer.common.events``, named here too). ``Event`` is any of them.
Only ``RunFinished.result`` holds tensors; it is also the run's return value."""

from __future__ import annotations

from dataclasses import dataclass

from trainer.common.events import (
    BatchFinished,
    CacheDiscarded,
    ConfigFinished,
    EpochFinished,
    FeaturesProgressed,
    FinalTrainingStarted,
    LinearFitFinished,
    NonFacesPrepared,
    SplitMade,
    drain,
    run_events,
)
from trainer.data.walk import SkippedFile
from trainer.model.results import HoldoutMetrics, RunResult

__all__ = [
    "BatchFinished", "CacheDiscarded", "ConfigFinished", "DatasetScanned", "EpochFinished", "Event",
    "FeaturesFinished", "FeaturesProgressed", "FinalTrainingStarted", "HoldoutEvaluated",
    "LinearFitFinished", "NonFacesPrepared", "RunFinished", "SkippedFile", "SplitMade", "drain",
    "run_events",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class DatasetScanned:
    root: str
    class_names: tuple[str, ...]
    counts: tuple[int, ...]
    skipped: tuple[SkippedFile, ...]
    ignored: tuple[str, ...] = ()  # image folders beside the two classes, not used (``other``)


@dataclass(frozen=True, slots=True)
class FeaturesFinished:
    """Every file has its row for the head (computed or cached) or a reason it has none."""

    extracted: int  # files with a row, cached ones included
    from_cache: int
    unreadable: tuple[SkippedFile, ...]
    seconds: float
    description: str = ""  # what the rows are: "EfficientNet-Lite0 embeddings", "24x24 pixels"


@dataclass(frozen=True, slots=True)
class HoldoutEvaluated:
    metrics: HoldoutMetrics


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: RunResult


Event = (
    DatasetScanned
    | SplitMade
    | BatchFinished
    | EpochFinished
    | LinearFitFinished
    | ConfigFinished
    | FinalTrainingStarted
    | NonFacesPrepared
    | HoldoutEvaluated
    | RunFinished
    | FeaturesProgressed
    | FeaturesFinished
    | CacheDiscarded
)
