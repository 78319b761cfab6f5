"""Progress events: small frozen facts, named in the past tense, yielded by long work, and the
two ways to run such a generator to its end (``run_events``, ``drain``).

These events hold plain values only, so every layer may yield them; the events of a training run
that carry its results (``DatasetScanned``, ``FeaturesFinished``, ``HoldoutEvaluated``,
``RunFinished``) live with the run, in ``trainer.training.events``, which also names them all.
The CLI prints them; the GUI worker forwards them unchanged as a Qt signal.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True, slots=True)
class SplitMade:
    method: str
    class_names: tuple[str, ...]
    # counts[split][class] for split in ("train", "val", "holdout")
    counts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class BatchFinished:
    phase: str  # "grid" or "final"
    lr: float
    epoch: int
    batch: int
    batches_per_epoch: int
    loss: float
    step: int  # 1-based over all training in the run, for progress and ETA
    total_steps: int


@dataclass(frozen=True, slots=True)
class EpochFinished:
    phase: str
    lr: float
    epoch: int
    train_loss: float
    val_accuracy: float | None  # None in the final training, which has no validation set
    val_loss: float | None
    head_accuracies: tuple[float, ...] = ()  # each head's own validation accuracy (ensembles)


@dataclass(frozen=True, slots=True)
class LinearFitFinished:
    """One fit of the linear head ended: converged, or at its iteration cap. Fits take tens of
    milliseconds, so one event per fit (with its objective per iteration) is live enough."""

    phase: str  # "grid", "calibration" (a fold of train+val), "final" or "refit"
    l2: float
    losses: tuple[float, ...]  # the objective after each iteration
    converged: bool
    step: int  # 1-based over every fit of the run, for progress and ETA
    total_steps: int


@dataclass(frozen=True, slots=True)
class ConfigFinished:
    lr: float | None  # None for the linear head, whose setting is ``l2``
    epochs: int | None
    val_accuracy: float
    val_loss: float
    index: int  # 1-based position in the grid
    total: int
    head_accuracies: tuple[float, ...] = ()  # each head's own validation accuracy (ensembles)
    l2: float | None = None  # the linear head's L2 weight


@dataclass(frozen=True, slots=True)
class FinalTrainingStarted:
    lr: float | None  # None for the linear head
    epochs: int | None
    train_size: int
    phase: str = "final"  # "final": on train+val; "refit": on every image, after the holdout
    l2: float | None = None


@dataclass(frozen=True, slots=True)
class NonFacesPrepared:
    """The synthetic non-face pictures that the "not a face" scorer learns against are ready."""

    count: int
    from_cache: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class FeaturesProgressed:
    """The head's rows are ready (computed or cached) for ``done`` of ``total`` files."""

    done: int
    total: int
    from_cache: int


@dataclass(frozen=True, slots=True)
class CacheDiscarded:
    """A decode or feature cache could not be used (damaged, not a regular file, wrong shapes):
    it was treated as empty, and ``rewritten`` says whether a good one replaced it."""

    path: str
    reason: str
    rewritten: bool


T = TypeVar("T")
E = TypeVar("E")


def run_events(generator: Generator[E, None, T], handle: Callable[[E], object]) -> T:
    """Run an event generator to the end, handing each event to ``handle``; return its result
    (the value a ``for`` loop would drop)."""
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            return stop.value
        handle(event)


def drain(generator: Generator[object, None, T]) -> T:
    """Run an event generator to the end, ignoring its events; return its result."""
    return run_events(generator, lambda _event: None)
