"""Training the MLP heads: plain SGD written out, one batched step for an ensemble, on lanes.

The step is the paper's plain SGD (no momentum), forward and backward by hand (tests check them
against autograd and ``torch.optim.SGD``): each weight's gradient goes straight into its update,
and ``torch.optim`` would import ``torch._dynamo``, 1.5 s of start-up. Runs are single-threaded
and seeded through explicit generators, so a seed gives bit-identical losses on any machine.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.lanes import Lanes
from trainer.model.mlp import MLPEnsemble, build_model, combine_heads, head_seed
from trainer.training.events import BatchFinished, EpochFinished, Event

EVAL_BATCH = 8192
# Offsets keep the init and shuffle streams independent while both follow from one seed.
SHUFFLE_SEED_OFFSET = 1_000_003


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
    cancel: CancelToken = NEVER_CANCELLED,
    first_head: int = 0,
) -> Generator[Event, None, list[float]]:
    """Plain SGD (no momentum, as the paper) on cross-entropy, every head at once, each on its own
    shuffling of ``train``; returns the per-epoch train loss (the mean over the heads).
    ``first_head`` numbers the heads of a group that is part of a larger ensemble. Batch events
    count this run's steps; a caller running several renumbers them over the whole job."""
    steps = StepCounter(total=epochs * math.ceil(len(train) / batch_size))
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
            value = sgd_step(model, rows(train.x, index), rows(train.y, index), lr)
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


def rows(data: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``data[index]`` for a 2-D ``index``: ``index_select`` copies the rows 5x faster than
    advanced indexing (``make bench`` section 5), and the values are the same."""
    return data.index_select(0, index.reshape(-1)).view(*index.shape, *data.shape[1:])


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
    faces were the likelier answer in its folder (face2comics -> diverse: 0.81 -> 0.85, docs/accuracy.md)."""
    if prior != "balanced":
        return None
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double().clamp(min=1)
    return [float(v) for v in -torch.log(counts / counts.sum())]


def training_lanes(device: torch.device, runs: int, lanes: int) -> Lanes:
    """Where the MLP trains: on the CPU, lanes of one torch thread each, one per run up to
    ``lanes`` (the job's ``CpuBudget``). A tiny MLP's steps gain nothing from two threads in one op (``make bench``),
    while two runs side by side take half the time; and a single-threaded run gives the same
    numbers on any machine, whatever its core count. Elsewhere, the caller's thread."""
    if device.type != "cpu":
        return InlineLanes()
    return Lanes(max(1, min(lanes, runs)))


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
class EpochRunner:
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
