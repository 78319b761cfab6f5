"""The linear head's part of a run, as generators of events: the grid over L2 weights scored on
validation, then the cross-fitted logits its temperature is fitted on together with the final fit.

Every fit is independent and takes tens of milliseconds, so each batch of fits runs side by side
on lanes and their events come in a fixed order (the grid's L2 order, then the folds), the same
on any core count. Each fit checks the cancel token once per iteration (``fit_linear``).

Calibration differs from the MLP's on purpose: the final fit learns from train+val, so the
temperature comes from out-of-fold logits on train+val (5 folds, pairs kept whole) at the chosen
L2 weight, a model of the same kind and nearly the same size as the saved one; the grid's model,
fitted on train alone, is less sure of itself than the final one and would over-soften it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import GridSpec, TrainConfig
from trainer.data.splits import group_folds
from trainer.model.linear import LinearFit, fit_linear
from trainer.model.mlp import MLPEnsemble
from trainer.model.results import GridResult
from trainer.training.events import ConfigFinished, Event, LinearFitFinished
from trainer.training.sgd import StepCounter, Tensors, class_offset, training_lanes

CALIBRATION_FOLDS = 5
T = TypeVar("T")


@dataclass(frozen=True)
class _FitTask:
    """One fit: the rows it learns from, its L2 weight, and the rows it then scores (with the
    class prior's offset of its own training rows)."""

    data: Tensors
    l2: float
    score: torch.Tensor | None
    offset: list[float] | None
    start: LinearFit | None = None  # a solution to start from (the grid's, at the same L2)


@dataclass(frozen=True)
class _Scored:
    fit: LinearFit
    logits: np.ndarray  # of the task's ``score`` rows, offset included


def fit_count(grid: GridSpec, refit_all: bool) -> int:
    """Fits in a run: the grid, the calibration folds, the final fit and the refit."""
    return len(grid.l2) + CALIBRATION_FOLDS + 1 + int(refit_all)


def linear_grid_search(
    train: Tensors,
    val: Tensors,
    grid: GridSpec,
    config: TrainConfig,
    num_classes: int,
    *,
    steps: StepCounter,
    cancel: CancelToken = NEVER_CANCELLED,
    lanes: int = 1,
) -> Generator[Event, None, list[GridResult]]:
    """Fit every L2 weight on train and score it on validation (accuracy and mean cross-entropy
    with the class prior's offset, as the MLP's grid scores)."""
    offset = class_offset(train.y, num_classes, config.class_prior)
    tasks = [_FitTask(train, l2, val.x, offset) for l2 in grid.l2]
    truth = val.y.cpu()
    results = []
    with training_lanes(train.x.device, len(tasks), lanes) as pool:
        for index, scored in enumerate(_fits_in_order(pool, tasks, num_classes, cancel), start=1):
            yield _finished("grid", scored.fit, steps)
            logits = torch.from_numpy(scored.logits).double()
            accuracy = float((logits.argmax(dim=1) == truth).double().mean()) if len(val) else 0.0
            loss = float(F.cross_entropy(logits, truth)) if len(val) else 0.0
            l2 = scored.fit.l2
            results.append(
                GridResult(None, None, accuracy, loss, val_logits=scored.logits, l2=l2, fit=scored.fit)
            )
            yield ConfigFinished(None, None, accuracy, loss, index, len(tasks), l2=l2)
    return results


@dataclass(frozen=True)
class FinalFit(Generic[T]):
    """The linear head's final (or refit) fit and what came with it."""

    model: MLPEnsemble
    fit: LinearFit
    sides: list[T]  # the ``alongside`` work's results (the detectors), in order
    calibration_logits: np.ndarray | None  # cross-fitted logits of every row, when asked for


def train_linear_final(
    data: Tensors,
    best: GridResult,
    config: TrainConfig,
    num_classes: int,
    *,
    steps: StepCounter,
    cancel: CancelToken = NEVER_CANCELLED,
    phase: str = "final",
    lanes: int = 1,
    alongside: Sequence[Callable[[], T]] = (),
    calibration_keys: Sequence[str] | None = None,
) -> Generator[Event, None, FinalFit[T]]:
    """The chosen L2 weight (``best``'s) fitted on ``data``, from the grid's solution. With ``calibration_keys`` (each row's pair key),
    first the cross-fitted logits the temperature is fitted on: each row scored by a fit on the
    other folds (5, pairs kept whole, offsets included). The ``alongside`` work (the detectors,
    each longer than a fit) starts first, each on a lane, the fits taking the lanes as they free,
    so on two cores the fits and the detectors overlap instead of waiting on each other."""
    l2, start = best.l2, best.fit
    tasks, held_out = [], []
    if calibration_keys is not None:
        folds = torch.from_numpy(group_folds(calibration_keys, CALIBRATION_FOLDS, config.seed)).to(
            data.x.device
        )
        for k in range(CALIBRATION_FOLDS):
            rest, held = torch.nonzero(folds != k).flatten(), torch.nonzero(folds == k).flatten()
            fitted_on = Tensors(data.x[rest], data.y[rest])
            offset = class_offset(fitted_on.y, num_classes, config.class_prior)
            tasks.append(_FitTask(fitted_on, l2, data.x[held], offset, start))
            held_out.append(held.cpu().numpy())
    offset = class_offset(data.y, num_classes, config.class_prior)
    tasks.append(_FitTask(data, l2, None, offset, start))
    logits = np.zeros((len(data), num_classes), np.float32) if held_out else None
    with training_lanes(data.x.device, len(tasks) + len(alongside), lanes) as pool:
        sides = [pool.submit(job) for job in alongside]
        for index, scored in enumerate(_fits_in_order(pool, tasks, num_classes, cancel)):
            if index < len(held_out):
                yield _finished("calibration", scored.fit, steps)
                logits[held_out[index]] = scored.logits
            else:
                yield _finished(phase, scored.fit, steps)
                final = scored.fit
        side_results = [side.result() for side in sides]
    return FinalFit(final.to_model(offset), final, side_results, logits)


def _fits_in_order(pool, tasks: list[_FitTask], num_classes: int, cancel: CancelToken) -> Iterator[_Scored]:
    """Start every fit on ``pool``'s lanes at once; give their results in task order. Leaving
    early (a failure, a cancel, a closed generator) drops the fits not yet started; the pool's
    exit waits for the running ones, which stop at their next iteration on a cancel."""

    def run(task: _FitTask) -> _Scored:
        fit = fit_linear(task.data.x, task.data.y, num_classes, task.l2, cancel=cancel, start=task.start)
        logits = np.zeros((0, num_classes), np.float32)
        if task.score is not None:
            shift = torch.tensor(task.offset or [0.0] * num_classes, device=task.score.device)
            logits = (fit.logits(task.score) + shift).cpu().numpy()
        return _Scored(fit, logits)

    futures = [pool.submit(run, task) for task in tasks]
    try:
        for future in futures:
            scored = future.result()
            cancel.raise_if_cancelled()
            yield scored
    finally:
        for future in futures:
            future.cancel()


def _finished(phase: str, fit: LinearFit, steps: StepCounter) -> LinearFitFinished:
    steps.done += 1
    return LinearFitFinished(phase, fit.l2, fit.losses, fit.converged, steps.done, steps.total)
