"""The paper's grid search and final training, as generators of events.

Settings that differ only in epochs share one run per learning rate; the runs advance in rounds
of one epoch, side by side on lanes, so events come in the same order on any core count.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import TypeVar

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import GridSpec, TrainConfig
from trainer.model.mlp import MLPEnsemble, head_count, head_groups, stack_heads
from trainer.model.results import EpochPoint, GridResult
from trainer.training.events import BatchFinished, ConfigFinished, EpochFinished, Event, LinearFitFinished
from trainer.training.sgd import (
    EpochRunner,
    StepCounter,
    Tensors,
    class_offset,
    fit,
    new_model,
    training_lanes,
)

T = TypeVar("T")


def grid_search(
    train: Tensors,
    val: Tensors,
    grid: GridSpec,
    config: TrainConfig,
    architecture: dict,
    *,
    steps: StepCounter | None = None,
    cancel: CancelToken = NEVER_CANCELLED,
    lanes: int = 1,
) -> Generator[Event, None, list[GridResult]]:
    """Score every (lr, epochs) on validation. Settings that differ only in epochs share one run:
    the epoch-e checkpoint of a longer run is exactly a separate e-epoch run with the same seed.

    The learning rates' runs are independent, so they advance in rounds of one epoch each, side
    by side on lanes (see ``training_lanes``); events come in the same order however many lanes
    there are (each round, in the grid's lr order), so the stream never depends on the machine."""
    max_epochs = max(grid.epochs)
    steps = steps or StepCounter(
        total=len(grid.learning_rates) * max_epochs * math.ceil(len(train) / config.batch_size)
    )
    runs = []
    offset = class_offset(train.y, architecture["num_classes"], config.class_prior)
    for lr in grid.learning_rates:
        model = new_model(architecture, config.seed, train.x.device, offset)
        events = fit(
            model, train, lr=lr, epochs=max_epochs, batch_size=config.batch_size, seed=config.seed,
            phase="grid", val=val, cancel=cancel,
        )  # fmt: skip
        runs.append(EpochRunner(lr, model, events))
    results: dict[tuple[float, int], GridResult] = {}
    with training_lanes(train.x.device, len(runs), lanes) as pool:
        try:
            for _ in range(max_epochs):
                rounds = [f.result() for f in [pool.submit(run.next_epoch, grid.epochs, val) for run in runs]]
                for run, (events, val_logits) in zip(runs, rounds, strict=True):
                    for event in events:
                        cancel.raise_if_cancelled()  # a round runs ahead; stop at once all the same
                        if isinstance(event, BatchFinished):  # numbered in the order they are yielded
                            steps.done += 1
                            event = dataclasses.replace(event, step=steps.done, total_steps=steps.total)
                        yield event
                        if isinstance(event, EpochFinished) and event.epoch in grid.epochs:
                            result = GridResult(
                                run.lr, event.epoch, event.val_accuracy, event.val_loss, val_logits,
                                event.head_accuracies,
                            )  # fmt: skip
                            results[(run.lr, event.epoch)] = result
                            yield ConfigFinished(
                                run.lr, event.epoch, result.val_accuracy, result.val_loss, len(results),
                                len(grid.settings), event.head_accuracies,
                            )  # fmt: skip
        finally:
            pool.shutdown(wait=True)  # after a failed round, the other runs finish theirs first
            for run in runs:
                run.events.close()
    return [results[setting] for setting in grid.settings]


def train_final(
    data: Tensors, lr: float, epochs: int, config: TrainConfig, architecture: dict, *,
    steps: StepCounter, cancel: CancelToken = NEVER_CANCELLED, phase: str = "final", lanes: int = 1,
    alongside: Callable[[], T] | None = None,
) -> Generator[Event, None, tuple[MLPEnsemble, list[float], T | None]]:  # fmt: skip
    """The best setting retrained on ``data`` (train+val, or every image for a refit) from a
    fresh init. An ensemble's heads train in two fixed groups, side by side on lanes (there is no
    validation here to combine them for), in rounds of one epoch; one head runs on one lane.

    ``alongside`` (work that needs only ``data``, such as fitting the detectors) runs on the same
    lanes while the heads train: five heads split three and two, so one lane would otherwise
    wait at every round. Returns its result third."""
    offset = class_offset(data.y, architecture["num_classes"], config.class_prior)
    groups = head_groups(head_count(architecture))
    models = [
        new_model({**architecture, "heads": end - first}, config.seed, data.x.device, offset, first)
        for first, end in groups
    ]
    runs = [
        EpochRunner(lr, model, fit(
            model, data, lr=lr, epochs=epochs, batch_size=config.batch_size, seed=config.seed,
            phase=phase, cancel=cancel, first_head=first,
        ))
        for model, (first, _) in zip(models, groups, strict=True)
    ]  # fmt: skip
    sizes = [model.heads for model in models]
    side: Future | None = None
    losses: list[float] = []  # per epoch, the mean over all heads (as the merged events carry it)
    with training_lanes(data.x.device, len(runs), lanes) as pool:
        try:
            for _ in range(epochs):
                futures = [pool.submit(run.next_epoch) for run in runs]
                if side is None and alongside is not None:  # queued behind the first round's runs
                    side = pool.submit(alongside)
                rounds = [f.result() for f in futures]
                for event in merge_group_events([events for events, _ in rounds], sizes):
                    cancel.raise_if_cancelled()
                    if isinstance(event, BatchFinished):
                        steps.done += 1
                        event = dataclasses.replace(event, step=steps.done, total_steps=steps.total)
                    elif isinstance(event, EpochFinished):
                        losses.append(event.train_loss)
                    yield event
            side_result = side.result() if side is not None else alongside() if alongside else None
        finally:
            pool.shutdown(wait=True)
            for run in runs:
                run.events.close()
    return stack_heads(models), losses, side_result


def merge_group_events(per_group: list[list[Event]], sizes: list[int]) -> list[Event]:
    """The events of head groups that trained one epoch side by side, as one ensemble's: each
    batch and epoch once, its loss the mean over all heads."""
    if len(per_group) == 1:
        return per_group[0]
    total = sum(sizes)

    def mean(values: list[float]) -> float:
        return sum(size * value for size, value in zip(sizes, values, strict=True)) / total

    merged: list[Event] = []
    for events in zip(*per_group, strict=True):
        first = events[0]
        if isinstance(first, BatchFinished):
            merged.append(dataclasses.replace(first, loss=mean([e.loss for e in events])))
        elif isinstance(first, EpochFinished):
            merged.append(dataclasses.replace(first, train_loss=mean([e.train_loss for e in events])))
        else:  # pragma: no cover - fit yields only these two
            merged.append(first)
    return merged


def recording_epochs(
    events: Generator[Event, None, list[GridResult]], history: list[EpochPoint]
) -> Generator[Event, None, list[GridResult]]:
    """Pass the grid's events on, keeping each epoch's scores in ``history`` (saved with the
    model, so a reopened run redraws its curves); for the linear head, each fit's objective per
    iteration, with the validation scores on its last one."""
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, EpochFinished):
                history.append(
                    EpochPoint(event.lr, event.epoch, event.train_loss, event.val_accuracy, event.val_loss)
                )
            elif isinstance(event, LinearFitFinished):
                history.extend(
                    EpochPoint(None, i, loss, None, None, event.l2) for i, loss in enumerate(event.losses, 1)
                )
            elif isinstance(event, ConfigFinished) and event.l2 is not None and history:
                last = history[-1]  # the fit just reported: a grid's fit is followed by its scores
                history[-1] = dataclasses.replace(
                    last, val_accuracy=event.val_accuracy, val_loss=event.val_loss
                )
            yield event
    finally:
        events.close()  # closing this generator stops the grid within a batch, as before
