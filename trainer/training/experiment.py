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
from torch import nn

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
    RunFinished,
    SplitMade,
)
from trainer.common.lanes import Lanes, cpu_lanes
from trainer.data.dataset import SkippedFile, scan_dataset
from trainer.data.decoding import decode_files
from trainer.data.preprocess import to_model_input
from trainer.data.splits import check_class_sizes, make_split
from trainer.model.calibration import fit_temperature, softmax
from trainer.model.mlp import build_model, paper_architecture
from trainer.model.novelty import fit_novelty
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
    model: nn.Module,
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
) -> Generator[Event, None, list[float]]:
    """Plain SGD (no momentum, as the paper) on cross-entropy; returns the per-epoch train loss."""
    steps = steps or StepCounter(total=epochs * math.ceil(len(train) / batch_size))
    linears = mlp_linears(model)
    shuffle = torch.Generator().manual_seed(seed + SHUFFLE_SEED_OFFSET)
    n = len(train)
    batches = math.ceil(n / batch_size)
    num_classes = model.layers[-1].out_features
    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=shuffle).to(train.x.device)
        model.train()
        loss_sum = 0.0
        for batch in range(batches):
            cancel.raise_if_cancelled()
            index = order[batch * batch_size : (batch + 1) * batch_size]
            value = sgd_batch(linears, train.x[index], train.y[index], lr)
            loss_sum += value * len(index)
            steps.done += 1
            yield BatchFinished(phase, lr, epoch, batch + 1, batches, value, steps.done, steps.total)
        losses.append(loss_sum / n)
        cancel.raise_if_cancelled()
        val_accuracy = val_loss = None
        if val is not None:
            val_accuracy, val_loss, _ = evaluate(model, val, num_classes)
        yield EpochFinished(phase, lr, epoch, losses[-1], val_accuracy, val_loss)
    return losses


def mlp_linears(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers of an ``MLP`` (Linear, ReLU, ..., Linear), which ``sgd_batch`` trains."""
    layers = list(model.layers)
    linears = layers[0::2]
    if not all(isinstance(m, nn.Linear) for m in linears) or not all(
        isinstance(m, nn.ReLU) for m in layers[1::2]
    ):
        raise TypeError("sgd_batch trains an MLP of Linear layers with ReLU between them")
    return linears


@torch.no_grad()
def sgd_batch(linears: list[nn.Linear], x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    """One step of the paper's plain SGD, w <- w - lr * dL/dw on the mean cross-entropy; returns
    the loss before the step.

    Forward and backward are written out (a test checks them against autograd and torch.optim):
    each weight's gradient goes straight into its update as one ``addmm_`` (a 1280-128-128-2 step
    on 64 images: 1.74 -> 1.16 ms, bench/micro_bench.py; a warm pretrained run is mostly these steps), and ``torch.optim``
    would import ``torch._dynamo`` on first use, 1.5 s of start-up."""
    inputs = []
    h = x
    for i, layer in enumerate(linears):
        inputs.append(h)
        h = torch.addmm(layer.bias, h, layer.weight.t())
        if i < len(linears) - 1:
            h = h.relu_()
    log_probs = torch.log_softmax(h, dim=1)
    loss = -log_probs.gather(1, y[:, None]).mean()
    grad = log_probs.exp_()  # d(mean CE)/d(logits) = (softmax - one-hot) / batch
    grad[torch.arange(len(y), device=y.device), y] -= 1.0
    grad /= len(y)
    for i in reversed(range(len(linears))):
        layer, below = linears[i], inputs[i]
        grad_below = (grad @ layer.weight).mul_(below > 0) if i > 0 else None  # before the update
        layer.weight.addmm_(grad.t(), below, alpha=-lr)
        layer.bias.add_(grad.sum(dim=0), alpha=-lr)
        grad = grad_below
    return float(loss)


@torch.inference_mode()
def evaluate(model: nn.Module, data: Tensors, num_classes: int) -> tuple[float, float, np.ndarray]:
    """Accuracy, mean cross-entropy and predicted labels."""
    model.eval()
    loss_sum = 0.0
    predicted = []
    for start in range(0, len(data), EVAL_BATCH):
        logits = model(data.x[start : start + EVAL_BATCH])
        target = data.y[start : start + EVAL_BATCH]
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        predicted.append(logits.argmax(dim=1).cpu())
    pred = torch.cat(predicted).numpy() if predicted else np.zeros(0, np.int64)
    n = max(len(data), 1)
    accuracy = float((pred == data.y.cpu().numpy()).sum() / n)
    return accuracy, loss_sum / n, pred


@torch.inference_mode()
def logits_of(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    parts = [model(x[start : start + EVAL_BATCH]).float().cpu() for start in range(0, len(x), EVAL_BATCH)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, model.layers[-1].out_features), np.float32)


def evaluated_images(
    root: Path,
    ok_paths: list[Path],
    index: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    unlike: np.ndarray,
) -> tuple[EvaluatedImage, ...]:
    prefix = len(os.fspath(root).rstrip(os.sep)) + 1
    return tuple(
        EvaluatedImage(
            os.fspath(ok_paths[i])[prefix:],
            int(labels[i]),
            tuple(float(v) for v in row),
            flag_for(row, bool(far)),
        )
        for i, row, far in zip(index, probs, unlike, strict=True)
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


def new_model(architecture: dict, seed: int, device: torch.device) -> nn.Module:
    return build_model(architecture, torch.Generator().manual_seed(seed)).to(device)


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
    for lr in grid.learning_rates:
        model = new_model(architecture, config.seed, train.x.device)
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
                                run.lr, event.epoch, event.val_accuracy, event.val_loss, val_logits
                            )
                            results[(run.lr, event.epoch)] = result
                            yield ConfigFinished(
                                run.lr, event.epoch, result.val_accuracy, result.val_loss, len(results),
                                len(grid.settings),
                            )  # fmt: skip
        finally:
            pool.shutdown(wait=True)  # after a failed round, the other runs finish theirs first
            for run in runs:
                run.events.close()
    return [results[setting] for setting in grid.settings]


def train_final(
    model: nn.Module, train_val: Tensors, lr: float, epochs: int, config: TrainConfig, *,
    steps: StepCounter, cancel: CancelToken = NEVER_CANCELLED,
) -> Generator[Event, None, list[float]]:  # fmt: skip
    """The best setting retrained on train+val, on one lane, so it runs as the grid's runs do."""
    run = _Run(lr, model, fit(
        model, train_val, lr=lr, epochs=epochs, batch_size=config.batch_size, seed=config.seed,
        phase="final", steps=steps, cancel=cancel,
    ))  # fmt: skip
    with training_lanes(train_val.x.device, 1) as pool:
        try:
            for _ in range(epochs):
                events, _ = pool.submit(run.next_epoch).result()
                for event in events:
                    cancel.raise_if_cancelled()
                    yield event
            return run.finish()
        finally:
            pool.shutdown(wait=True)
            run.events.close()


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
    model: nn.Module
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
    """
    start = time.perf_counter()
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
    if config.features == "pretrained":
        from trainer.data.features import extract_features

        extracted = yield from extract_features(
            paths,
            backbone_input=preprocess,
            options=decode,
            cancel=cancel,
            root=scan.root,
            device=device.type,
        )
        ok_indices, errors = extracted.ok_indices, extracted.errors
        unreadable = tuple(SkippedFile(str(paths[i]), reason) for i, reason in sorted(errors.items()))
        yield FeaturesFinished(len(ok_indices), extracted.from_cache, unreadable, extracted.seconds)
        x_all = torch.from_numpy(extracted.features).to(device)
    else:
        decoded = yield from decode_files(paths, preprocess, decode, root=scan.root, cancel=cancel)
        ok_indices, errors = decoded.ok_indices, decoded.errors
        unreadable = tuple(SkippedFile(str(paths[i]), reason) for i, reason in sorted(errors.items()))
        yield DecodeFinished(len(ok_indices), decoded.from_cache, unreadable, decoded.seconds)
        x_all = to_model_input(decoded.pixels, preprocess).to(device)

    labels = labels[ok_indices]
    keys = [keys[i] for i in ok_indices]
    split = make_split(labels, keys, scan.class_names, config.split, config.split_fractions, config.seed)
    num_classes = len(scan.class_names)
    split_counts = split.counts(labels, num_classes)
    yield SplitMade(config.split, scan.class_names, split_counts)

    y_all = torch.from_numpy(labels).to(device)

    def tensors(index: np.ndarray) -> Tensors:
        idx = torch.from_numpy(index).to(device)
        return Tensors(x_all[idx], y_all[idx])

    train, val, holdout = (tensors(part) for part in split.parts())
    train_val = tensors(np.concatenate([split.train, split.val]))
    architecture = paper_architecture(x_all.shape[1], num_classes)

    max_epochs = max(grid.epochs)
    grid_steps = len(grid.learning_rates) * max_epochs * math.ceil(len(train) / config.batch_size)
    final_batches = math.ceil(len(train_val) / config.batch_size)
    steps = StepCounter(total=grid_steps + max_epochs * final_batches)  # refined once best is known
    history: list[EpochPoint] = []
    grid_results = yield from recording_epochs(
        grid_search(train, val, grid, config, architecture, steps=steps, cancel=cancel), history
    )
    best = pick_best(grid_results)

    steps.total = grid_steps + best.epochs * final_batches
    yield FinalTrainingStarted(best.lr, best.epochs, len(train_val))
    model = new_model(architecture, config.seed, device)
    final_losses = yield from train_final(
        model, train_val, best.lr, best.epochs, config, steps=steps, cancel=cancel
    )
    cancel.raise_if_cancelled()

    # Calibration: one temperature, fitted on the chosen setting's validation logits (data the
    # grid model never trained on), applied to the final model. It changes no prediction.
    temperature = fit_temperature(best.val_logits, val.y.cpu().numpy())
    novelty = fit_novelty(train_val.x.cpu().numpy(), seed=config.seed)
    holdout_probs = softmax(logits_of(model, holdout.x), temperature)
    holdout_unlike = novelty.is_unlike(holdout.x.cpu().numpy())
    metrics = HoldoutMetrics.from_probabilities(
        holdout.y.cpu().numpy(), holdout_probs, num_classes, unlike=holdout_unlike
    )
    yield HoldoutEvaluated(metrics)
    # What the error gallery shows: every holdout image, and the validation images as the chosen
    # grid checkpoint saw them, with calibrated probabilities and the flag prediction would give.
    ok_paths = [paths[i] for i in ok_indices]
    holdout_images = evaluated_images(
        scan.root, ok_paths, split.holdout, labels, holdout_probs, holdout_unlike
    )
    val_probs = softmax(best.val_logits, temperature)
    val_images = evaluated_images(
        scan.root, ok_paths, split.val, labels, val_probs, novelty.is_unlike(val.x.cpu().numpy())
    )

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
    )
    yield RunFinished(result)
    return result
