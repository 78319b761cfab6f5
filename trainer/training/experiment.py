"""The paper's procedure as a generator of events: scan, decode, split, grid search, final
training on train+val, one holdout evaluation. Closing the generator or cancelling the token stops
it within one batch; it writes nothing except the (atomic) decode cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Generator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import DecodeOptions, GridSpec, PreprocessConfig, TrainConfig
from trainer.common.errors import FaceComicError
from trainer.common.events import (
    BatchFinished,
    ConfigFinished,
    DatasetScanned,
    DecodeFinished,
    EpochFinished,
    Event,
    FeaturesFinished,
    FinalTrainingStarted,
    HoldoutEvaluated,
    NonFacesPrepared,
    RunFinished,
    SplitMade,
)
from trainer.common.lanes import Lanes, cpu_lanes
from trainer.data.dataset import SkippedFile, scan_dataset
from trainer.data.decoding import decode_files
from trainer.data.non_faces import generator_description
from trainer.data.preprocess import to_model_input
from trainer.data.splits import check_class_sizes, make_split
from trainer.model.calibration import fit_temperature, softmax
from trainer.model.face_likeness import FaceLikeness, fit_face_likeness
from trainer.model.mlp import (
    MLPEnsemble,
    build_model,
    combine_heads,
    head_groups,
    head_seed,
    paper_architecture,
    stack_heads,
)
from trainer.model.novelty import NoveltyDetector, fit_novelty
from trainer.training.results import (
    EpochPoint,
    EvaluatedImage,
    GridResult,
    HoldoutMetrics,
    RunResult,
    flag_for,
    pick_best,
)

EVAL_BATCH = 8192
# Offsets keep the init and shuffle streams independent while both follow from one seed.
SHUFFLE_SEED_OFFSET = 1_000_003


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FaceComicError("CUDA was requested (--device cuda) but no CUDA device is available.")
    return torch.device(name)


def set_cpu_threads(threads: int = 0) -> None:
    """0 means one per core. Results do not depend on it (tested), only speed does."""
    torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))


@dataclass
class StepCounter:
    """Counts optimiser steps over the whole run so every batch event carries progress."""

    done: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class Tensors:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


def fit(
    model: MLPEnsemble,
    train: Tensors,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    phase: str,
    val: Tensors | None = None,
    steps: StepCounter | None = None,
    cancel: CancelToken = NEVER_CANCELLED,
    first_head: int = 0,
) -> Generator[Event, None, list[float]]:
    """Plain SGD (no momentum, as the paper) on cross-entropy, every head at once, each on its own
    shuffling of ``train``; returns the per-epoch train loss (the mean over the heads).
    ``first_head`` numbers the heads of a group that is part of a larger ensemble."""
    steps = steps or StepCounter(total=epochs * math.ceil(len(train) / batch_size))
    shuffles = [
        torch.Generator().manual_seed(head_seed(seed, first_head + head) + SHUFFLE_SEED_OFFSET)
        for head in range(model.heads)
    ]
    n = len(train)
    batches = math.ceil(n / batch_size)
    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        orders = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(train.x.device)
        model.train()
        loss_sum = 0.0
        for batch in range(batches):
            cancel.raise_if_cancelled()
            index = orders[:, batch * batch_size : (batch + 1) * batch_size]  # (heads, batch)
            value = sgd_step(model, train.x[index], train.y[index], lr)
            loss_sum += value * index.shape[1]
            steps.done += 1
            yield BatchFinished(phase, lr, epoch, batch + 1, batches, value, steps.done, steps.total)
        losses.append(loss_sum / n)
        cancel.raise_if_cancelled()
        val_accuracy = val_loss = None
        head_accuracies: tuple[float, ...] = ()
        if val is not None:
            val_accuracy, val_loss, per_head = evaluate(model, val)
            head_accuracies = tuple(float(a) for a in per_head) if model.heads > 1 else ()
        yield EpochFinished(phase, lr, epoch, losses[-1], val_accuracy, val_loss, head_accuracies)
    return losses


@torch.no_grad()
def sgd_step(model: MLPEnsemble, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    """One step of the paper's plain SGD for every head, w <- w - lr * dL/dw on each head's mean
    cross-entropy over its own batch; ``x`` is ``(heads, batch, in)``, ``y`` ``(heads, batch)``.
    Returns the loss before the step, averaged over the heads.

    Forward and backward are written out (tests check them against autograd and ``torch.optim``):
    each weight's gradient goes straight into its update as one ``addmm_`` (one head) or
    ``baddbmm_`` (all heads in one batched product), and ``torch.optim`` would import
    ``torch._dynamo`` on first use, 1.5 s of start-up. One head runs the 2-D ops of the paper's
    single MLP, so its numbers are exactly those of the MLP before ensembles."""
    if model.heads == 1:
        return _sgd_step_one_head([w[0] for w in model.weights], [b[0] for b in model.biases], x[0], y[0], lr)
    heads, batch = y.shape
    inputs = []
    h = x
    last = len(model.weights) - 1
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        inputs.append(h)
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if i < last:
            h = h.relu_()
    log_probs = torch.log_softmax(h, dim=2)
    loss = -log_probs.gather(2, y.unsqueeze(2)).mean()
    grad = log_probs.exp_()  # d(mean CE)/d(logits) = (softmax - one-hot) / batch, per head
    grad.scatter_add_(2, y.unsqueeze(2), torch.full((heads, batch, 1), -1.0, device=grad.device))
    grad /= batch
    for i in reversed(range(len(model.weights))):
        w, below = model.weights[i], inputs[i]
        grad_below = torch.bmm(grad, w).mul_(below > 0) if i > 0 else None  # before the update
        w.baddbmm_(grad.transpose(1, 2), below, alpha=-lr)
        model.biases[i].add_(grad.sum(dim=1), alpha=-lr)
        grad = grad_below
    return float(loss)


def _sgd_step_one_head(
    weights: list[torch.Tensor], biases: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, lr: float
) -> float:
    inputs = []
    h = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inputs.append(h)
        h = torch.addmm(b, h, w.t())
        if i < len(weights) - 1:
            h = h.relu_()
    log_probs = torch.log_softmax(h, dim=1)
    loss = -log_probs.gather(1, y[:, None]).mean()
    grad = log_probs.exp_()
    grad[torch.arange(len(y), device=y.device), y] -= 1.0
    grad /= len(y)
    for i in reversed(range(len(weights))):
        w, below = weights[i], inputs[i]
        grad_below = (grad @ w).mul_(below > 0) if i > 0 else None
        w.addmm_(grad.t(), below, alpha=-lr)
        biases[i].add_(grad.sum(dim=0), alpha=-lr)
        grad = grad_below
    return float(loss)


@torch.inference_mode()
def evaluate(model: MLPEnsemble, data: Tensors) -> tuple[float, float, np.ndarray]:
    """The ensemble's accuracy and mean cross-entropy, and each head's accuracy alone."""
    model.eval()
    loss_sum = 0.0
    predicted, head_predicted = [], []
    for start in range(0, len(data), EVAL_BATCH):
        per_head = model.head_logits(data.x[start : start + EVAL_BATCH])
        logits = combine_heads(per_head)
        if model.has_offset:  # each head alone is judged with the same class prior as the whole
            logits, per_head = logits + model.offset, per_head + model.offset
        target = data.y[start : start + EVAL_BATCH]
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        predicted.append(logits.argmax(dim=1).cpu())
        head_predicted.append(per_head.argmax(dim=2).cpu())
    truth = data.y.cpu().numpy()
    n = max(len(data), 1)
    if not predicted:
        return 0.0, 0.0, np.zeros(model.heads)
    accuracy = float((torch.cat(predicted).numpy() == truth).sum() / n)
    head_accuracy = (torch.cat(head_predicted, dim=1).numpy() == truth).sum(axis=1) / n
    return accuracy, loss_sum / n, head_accuracy


@torch.inference_mode()
def logits_of(model: MLPEnsemble, x: torch.Tensor) -> np.ndarray:
    model.eval()
    parts = [model(x[start : start + EVAL_BATCH]).float().cpu() for start in range(0, len(x), EVAL_BATCH)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, model.num_classes), np.float32)


def evaluated_images(
    root: Path,
    ok_paths: list[Path],
    index: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    unlike: np.ndarray,
    not_a_face: np.ndarray,
) -> tuple[EvaluatedImage, ...]:
    prefix = len(os.fspath(root).rstrip(os.sep)) + 1
    return tuple(
        EvaluatedImage(
            os.fspath(ok_paths[i])[prefix:],
            int(labels[i]),
            tuple(float(v) for v in row),
            flag_for(row, bool(far), bool(odd)),
        )
        for i, row, far, odd in zip(index, probs, unlike, not_a_face, strict=True)
    )


def feature_preprocess(features: str) -> PreprocessConfig:
    """Decoding for each feature kind: the paper's 24x24 pixels, or the backbone's input."""
    if features == "pretrained":
        from trainer.model.backbone import RECOMMENDED_SIZE, backbone_preprocess

        return backbone_preprocess(RECOMMENDED_SIZE)
    return PreprocessConfig()


def feature_metadata(features: str) -> dict:
    """What a model file records about its inputs, so prediction rebuilds them exactly."""
    if features == "pretrained":
        from trainer.model.backbone import BACKBONE_NAME, EMBEDDING_SIZE, WEIGHTS_SHA256

        return {
            "kind": "pretrained",
            "backbone": BACKBONE_NAME,
            "weights_sha256": WEIGHTS_SHA256,
            "embedding_size": EMBEDDING_SIZE,
        }
    return {"kind": "pixels"}


def new_model(
    architecture: dict,
    seed: int,
    device: torch.device,
    offset: list[float] | None = None,
    first_head: int = 0,
) -> MLPEnsemble:
    return build_model(architecture, seed, offset=offset, first_head=first_head).to(device)


def class_offset(labels: torch.Tensor, num_classes: int, prior: str) -> list[float] | None:
    """Minus the log of each class's share of ``labels`` for a balanced prior; None for "data".

    Adding it to the logits (logit adjustment, Menon et al., 2021) answers as if both classes were
    equally common: a model trained on 4 faces per comic no longer calls a drawing a face because
    faces were the likelier answer in its folder (face2comics -> diverse: 0.81 -> 0.85, README)."""
    if prior != "balanced":
        return None
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double().clamp(min=1)
    return [float(v) for v in -torch.log(counts / counts.sum())]


def grid_search(
    train: Tensors,
    val: Tensors,
    grid: GridSpec,
    config: TrainConfig,
    architecture: dict,
    *,
    steps: StepCounter | None = None,
    cancel: CancelToken = NEVER_CANCELLED,
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
            phase="grid", val=val, steps=StepCounter(total=steps.total), cancel=cancel,
        )  # fmt: skip
        runs.append(_Run(lr, model, events))
    results: dict[tuple[float, int], GridResult] = {}
    with training_lanes(train.x.device, len(runs)) as pool:
        try:
            for _ in range(max_epochs):
                rounds = [f.result() for f in [pool.submit(run.next_epoch, grid.epochs, val) for run in runs]]
                for run, (events, val_logits) in zip(runs, rounds, strict=True):
                    for event in events:
                        cancel.raise_if_cancelled()  # a round runs ahead; stop at once all the same
                        if isinstance(event, BatchFinished):  # numbered in the order they are yielded
                            steps.done += 1
                            event = dataclasses.replace(event, step=steps.done)
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
    steps: StepCounter, cancel: CancelToken = NEVER_CANCELLED, phase: str = "final",
) -> Generator[Event, None, tuple[MLPEnsemble, list[float]]]:  # fmt: skip
    """The best setting retrained on ``data`` (train+val, or every image for a refit) from a
    fresh init. An ensemble's heads train in two fixed groups, side by side on lanes (there is no
    validation here to combine them for), in rounds of one epoch; one head runs on one lane."""
    offset = class_offset(data.y, architecture["num_classes"], config.class_prior)
    groups = head_groups(architecture.get("heads", 1))
    models = [
        new_model({**architecture, "heads": end - first}, config.seed, data.x.device, offset, first)
        for first, end in groups
    ]
    runs = [
        _Run(lr, model, fit(
            model, data, lr=lr, epochs=epochs, batch_size=config.batch_size, seed=config.seed,
            phase=phase, steps=StepCounter(total=steps.total), cancel=cancel, first_head=first,
        ))
        for model, (first, _) in zip(models, groups, strict=True)
    ]  # fmt: skip
    sizes = [model.heads for model in models]
    with training_lanes(data.x.device, len(runs)) as pool:
        try:
            for _ in range(epochs):
                rounds = [f.result() for f in [pool.submit(run.next_epoch) for run in runs]]
                for event in merge_group_events([events for events, _ in rounds], sizes):
                    cancel.raise_if_cancelled()
                    if isinstance(event, BatchFinished):
                        steps.done += 1
                        event = dataclasses.replace(event, step=steps.done, total_steps=steps.total)
                    yield event
            per_group = [run.finish() for run in runs]
        finally:
            pool.shutdown(wait=True)
            for run in runs:
                run.events.close()
    losses = [
        sum(s * loss for s, loss in zip(sizes, epoch, strict=True)) / sum(sizes)
        for epoch in zip(*per_group, strict=True)
    ]
    return stack_heads(models), losses


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


def training_lanes(device: torch.device, runs: int) -> Lanes:
    """Where the MLP trains: on the CPU, lanes of one torch thread each, one per run up to the
    threads allowed. A tiny MLP's steps gain nothing from two threads in one op (``make bench``),
    while two runs side by side take half the time; and a single-threaded run gives the same
    numbers on any machine, whatever its core count. Elsewhere, the caller's thread."""
    if device.type != "cpu":
        return InlineLanes()
    return Lanes(min(cpu_lanes(), runs))


class InlineLanes(contextlib.AbstractContextManager):
    """``Lanes``' interface, run in the caller's thread (for CUDA, whose work is asynchronous)."""

    def submit(self, fn, *args):
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # Cancelled included; re-raised by ``result()``, as a lane's
            future.set_exception(err)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class _Run:
    """One ``fit`` driven an epoch at a time, possibly from a lane's thread."""

    lr: float
    model: MLPEnsemble
    events: Generator[Event, None, list[float]]

    def next_epoch(
        self, checkpoints: tuple[int, ...] = (), val: Tensors | None = None
    ) -> tuple[list[Event], np.ndarray | None]:
        """Advance to the next epoch's end; at a checkpoint epoch, also the validation logits
        (``fit`` is paused there, so the model is exactly that checkpoint)."""
        events: list[Event] = []
        for event in self.events:
            events.append(event)
            if isinstance(event, EpochFinished):
                at_checkpoint = event.epoch in checkpoints and val is not None
                return events, logits_of(self.model, val.x) if at_checkpoint else None
        raise RuntimeError("fit had no epoch left")

    def finish(self) -> list[float]:
        """``fit``'s per-epoch losses, once its last epoch is done."""
        try:
            next(self.events)
        except StopIteration as done:
            return done.value
        raise RuntimeError("fit went on past its last epoch")


def recording_epochs(
    events: Generator[Event, None, list[GridResult]], history: list[EpochPoint]
) -> Generator[Event, None, list[GridResult]]:
    """Pass the grid's events on, keeping each epoch's scores in ``history`` (saved with the
    model, so a reopened run redraws its curves)."""
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
            yield event
    finally:
        events.close()  # closing this generator stops the grid within a batch, as before


def run_experiment(
    data_dir: str | os.PathLike[str],
    *,
    preprocess: PreprocessConfig | None = None,
    config: TrainConfig = TrainConfig(),
    grid: GridSpec = GridSpec(),
    decode: DecodeOptions = DecodeOptions(),
    cancel: CancelToken = NEVER_CANCELLED,
) -> Generator[Event, None, RunResult]:
    """The whole paper procedure on one folder. Yields events; returns (and yields) the result.

    ``decode.threads`` (0: all cores) lets the desktop app keep a core free for its window.
    ``preprocess`` defaults to what ``config.features`` needs (see ``feature_preprocess``).
    Every "auto" in ``config`` is resolved first (``TrainConfig.resolved``); the result keeps it so.
    """
    start = time.perf_counter()
    config = config.resolved()
    preprocess = preprocess or feature_preprocess(config.features)
    device = resolve_device(config.device)
    if device.type == "cpu":
        set_cpu_threads(decode.threads)
    torch.manual_seed(config.seed)

    scan = scan_dataset(data_dir)
    yield DatasetScanned(str(scan.root), scan.class_names, scan.counts, scan.skipped, scan.ignored)
    check_class_sizes(scan.class_names, scan.counts, config.split_fractions)  # fail before decoding

    paths = [p for files in scan.files for p in files]
    labels = np.array([c for c, files in enumerate(scan.files) for _ in files], dtype=np.int64)
    keys = [scan.pair_key(c, p) for c, files in enumerate(scan.files) for p in files]
    x_all, ok_indices, unreadable = yield from _head_inputs(
        paths, config, preprocess, decode, scan.root, device, cancel
    )

    labels = labels[ok_indices]
    keys = [keys[i] for i in ok_indices]
    split = make_split(
        labels, keys, scan.class_names, config.split, config.split_fractions, config.split_seed
    )
    num_classes = len(scan.class_names)
    split_counts = split.counts(labels, num_classes)
    yield SplitMade(config.split, scan.class_names, split_counts)

    y_all = torch.from_numpy(labels).to(device)

    def tensors(index: np.ndarray) -> Tensors:
        idx = torch.from_numpy(index).to(device)
        return Tensors(x_all[idx], y_all[idx])

    train, val, holdout = (tensors(part) for part in split.parts())
    train_val = tensors(np.concatenate([split.train, split.val]))
    everything = Tensors(x_all, y_all)
    architecture = paper_architecture(x_all.shape[1], num_classes, config.heads)

    max_epochs = max(grid.epochs)
    grid_steps = len(grid.learning_rates) * max_epochs * math.ceil(len(train) / config.batch_size)
    final_batches = math.ceil(len(train_val) / config.batch_size)
    refit_batches = math.ceil(len(everything) / config.batch_size) if config.refit_all else 0
    # Refined once best is known.
    steps = StepCounter(total=grid_steps + max_epochs * (final_batches + refit_batches))
    history: list[EpochPoint] = []
    grid_results = yield from recording_epochs(
        grid_search(train, val, grid, config, architecture, steps=steps, cancel=cancel), history
    )
    best = pick_best(grid_results, config.select_by)

    steps.total = grid_steps + best.epochs * (final_batches + refit_batches)
    negatives = yield from _non_face_inputs(config, preprocess, decode, device, cancel)
    yield FinalTrainingStarted(best.lr, best.epochs, len(train_val))
    model, final_losses, (novelty, face_likeness) = yield from _train_final_and_detectors(
        train_val, best.lr, best.epochs, config, architecture, negatives, steps, cancel
    )

    # Calibration: one temperature, fitted on the chosen setting's validation logits (data the
    # grid model never trained on), applied to the final model. It changes no prediction.
    temperature = fit_temperature(best.val_logits, val.y.cpu().numpy())
    holdout_probs = softmax(logits_of(model, holdout.x), temperature)
    holdout_unlike = novelty.is_unlike(holdout.x.cpu().numpy())
    holdout_not_face = not_a_face(face_likeness, holdout.x)
    metrics = HoldoutMetrics.from_probabilities(
        holdout.y.cpu().numpy(), holdout_probs, num_classes, unlike=holdout_unlike,
        not_a_face=holdout_not_face if face_likeness is not None else None,
    )  # fmt: skip
    yield HoldoutEvaluated(metrics)
    # What the error gallery shows: every holdout image, and the validation images as the chosen
    # grid checkpoint saw them, with calibrated probabilities and the flag prediction would give.
    ok_paths = [paths[i] for i in ok_indices]
    holdout_images = evaluated_images(
        scan.root, ok_paths, split.holdout, labels, holdout_probs, holdout_unlike, holdout_not_face
    )
    val_x = val.x.cpu().numpy()
    val_images = evaluated_images(
        scan.root, ok_paths, split.val, labels, softmax(best.val_logits, temperature),
        novelty.is_unlike(val_x), not_a_face(face_likeness, val.x),
    )  # fmt: skip

    trained_on = train_val
    if config.refit_all:
        # The holdout has done its job (the figures above); the saved model learns from it too.
        yield FinalTrainingStarted(best.lr, best.epochs, len(everything), phase="refit")
        model, final_losses, (novelty, face_likeness) = yield from _train_final_and_detectors(
            everything, best.lr, best.epochs, config, architecture, negatives, steps, cancel, phase="refit"
        )
        trained_on = everything

    result = RunResult(
        dataset_root=str(scan.root),
        class_names=scan.class_names,
        counts=tuple(int(np.sum(labels == c)) for c in range(num_classes)),
        skipped=scan.skipped + unreadable,
        split_counts=split_counts,
        preprocess=preprocess,
        train_config=config,
        grid=grid,
        grid_results=tuple(grid_results),
        best=best,
        holdout=metrics,
        final_train_losses=tuple(final_losses),
        architecture=architecture,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        seconds=time.perf_counter() - start,
        device=str(device),
        features=feature_metadata(config.features),
        temperature=temperature,
        novelty=novelty,
        holdout_images=holdout_images,
        val_images=val_images,
        history=tuple(history),
        face_likeness=face_likeness,
        class_offset=tuple(model.offset.tolist()) if model.has_offset else None,
        trained_on=tuple(int(v) for v in torch.bincount(trained_on.y.cpu(), minlength=num_classes)),
    )
    yield RunFinished(result)
    return result


def not_a_face(scorer: FaceLikeness | None, x: torch.Tensor) -> np.ndarray:
    """The "not a face" flag of each row; all False for a model without the scorer."""
    return scorer.is_not_a_face(x.cpu().numpy()) if scorer is not None else np.zeros(len(x), bool)


def _head_inputs(
    paths: list[Path],
    config: TrainConfig,
    preprocess: PreprocessConfig,
    decode: DecodeOptions,
    root: Path,
    device: torch.device,
    cancel: CancelToken,
) -> Generator[Event, None, tuple[torch.Tensor, np.ndarray, tuple[SkippedFile, ...]]]:
    """What the head learns from, for every readable file: backbone embeddings or the paper's
    normalised pixels; also which files were readable and why the others were not."""
    if config.features == "pretrained":
        from trainer.data.features import extract_features

        extracted = yield from extract_features(
            paths, backbone_input=preprocess, options=decode, cancel=cancel, root=root, device=device.type
        )
        ok_indices, errors = extracted.ok_indices, extracted.errors
        unreadable = tuple(SkippedFile(str(paths[i]), reason) for i, reason in sorted(errors.items()))
        yield FeaturesFinished(len(ok_indices), extracted.from_cache, unreadable, extracted.seconds)
        return torch.from_numpy(extracted.features).to(device), ok_indices, unreadable
    decoded = yield from decode_files(paths, preprocess, decode, root=root, cancel=cancel)
    ok_indices, errors = decoded.ok_indices, decoded.errors
    unreadable = tuple(SkippedFile(str(paths[i]), reason) for i, reason in sorted(errors.items()))
    yield DecodeFinished(len(ok_indices), decoded.from_cache, unreadable, decoded.seconds)
    return to_model_input(decoded.pixels, preprocess).to(device), ok_indices, unreadable


def _non_face_inputs(
    config: TrainConfig,
    preprocess: PreprocessConfig,
    decode: DecodeOptions,
    device: torch.device,
    cancel: CancelToken,
) -> Generator[Event, None, np.ndarray | None]:
    """The backbone embeddings of the synthetic non-faces that the "not a face" scorer learns
    against; None for pixel models, where that scorer does not work (README, "Not a face")."""
    if config.features != "pretrained":
        return None
    from trainer.data.features import non_face_embeddings

    began = time.perf_counter()
    inputs, from_cache = non_face_embeddings(preprocess, options=decode, device=device.type, cancel=cancel)
    yield NonFacesPrepared(len(inputs), from_cache, time.perf_counter() - began)
    return inputs


def _train_final_and_detectors(
    data: Tensors,
    lr: float,
    epochs: int,
    config: TrainConfig,
    architecture: dict,
    negatives: np.ndarray | None,
    steps: StepCounter,
    cancel: CancelToken,
    phase: str = "final",
) -> Generator[Event, None, tuple[MLPEnsemble, list[float], tuple[NoveltyDetector, FaceLikeness | None]]]:
    """``train_final`` on ``data``, then the "unsure" detectors fitted on the same images: what
    the saved weights learned from. (Fitting them in a side thread during the final training was
    measured no faster on 2 cores: both keep the cores busy.)"""
    model, losses = yield from train_final(
        data, lr, epochs, config, architecture, steps=steps, cancel=cancel, phase=phase
    )
    cancel.raise_if_cancelled()
    return model, losses, _fit_detectors(data, negatives, config, cancel)


def _fit_detectors(
    data: Tensors, negatives: np.ndarray | None, config: TrainConfig, cancel: CancelToken = NEVER_CANCELLED
) -> tuple[NoveltyDetector, FaceLikeness | None]:
    """The "unsure" detectors, on the images the saved weights learned from."""
    x = data.x.cpu().numpy()
    novelty = fit_novelty(x, seed=config.seed)
    if negatives is None:
        return novelty, None
    face_likeness = fit_face_likeness(
        x, negatives, seed=config.seed, generator=generator_description(), cancel=cancel
    )
    return novelty, face_likeness
