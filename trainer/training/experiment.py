"""The paper's procedure as a generator of events, in named phases: rows for every image, split,
grid search, final training on train+val, calibration and the "unsure" detectors, one holdout
evaluation, and (with ``refit_all``) a refit on every image. Closing the generator or cancelling
the token stops it within one batch; it writes nothing except the (atomic) feature cache.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import DecodeOptions, GridSpec, PreprocessConfig, TrainConfig
from trainer.common.cpu import CpuBudget
from trainer.common.device import resolve_device
from trainer.data.dataset import DatasetScan, scan_dataset
from trainer.data.non_faces import generator_description
from trainer.data.splits import Split, check_class_sizes, make_split
from trainer.features.base import Featurizer
from trainer.features.registry import featurizer_for, resolved_config
from trainer.model.calibration import fit_temperature, softmax
from trainer.model.face_likeness import FaceLikeness, fit_face_likeness
from trainer.model.linear import linear_architecture
from trainer.model.mlp import MLPEnsemble, paper_architecture
from trainer.model.novelty import NoveltyDetector, fit_novelty
from trainer.model.results import (
    EpochPoint,
    EvaluatedImage,
    GridResult,
    HoldoutMetrics,
    RunResult,
    flag_for,
    pick_best,
)
from trainer.training.events import (
    DatasetScanned,
    Event,
    FeaturesFinished,
    FinalTrainingStarted,
    HoldoutEvaluated,
    NonFacesPrepared,
    RunFinished,
    SkippedFile,
    SplitMade,
)
from trainer.training.grid import grid_search, recording_epochs, train_final
from trainer.training.linear_training import fit_count, linear_grid_search, train_linear_final
from trainer.training.sgd import StepCounter, Tensors, logits_of

T = TypeVar("T")


@dataclass
class _Data:
    """The run's images as the head sees them, labelled and split."""

    scan: DatasetScan
    ok_paths: list[Path]
    labels: np.ndarray
    unreadable: tuple[SkippedFile, ...]
    split: Split
    x: torch.Tensor
    y: torch.Tensor
    keys: list[str]  # each image's pair key: a face and its comic share one

    def tensors(self, index: np.ndarray) -> Tensors:
        idx = torch.from_numpy(index).to(self.x.device)
        return Tensors(self.x[idx], self.y[idx])

    @property
    def num_classes(self) -> int:
        return len(self.scan.class_names)


@dataclass
class _Detectors:
    novelty: NoveltyDetector
    face_likeness: FaceLikeness | None

    def flags(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Per row: unlike the training images; not a face (all False without the scorer)."""
        rows = x.cpu().numpy()
        unlike = self.novelty.is_unlike(rows)
        scorer = self.face_likeness
        return unlike, scorer.is_not_a_face(rows) if scorer is not None else np.zeros(len(rows), bool)


def run_experiment(
    data_dir: str | os.PathLike[str],
    *,
    preprocess: PreprocessConfig | None = None,
    config: TrainConfig = TrainConfig(),
    grid: GridSpec = GridSpec(),
    decode: DecodeOptions = DecodeOptions(),
    budget: CpuBudget | None = None,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Generator[Event, None, RunResult]:
    """The whole paper procedure on one folder. Yields events; returns (and yields) the result.

    ``budget`` (default: from ``decode.threads`` and ``decode.workers``, all cores) sizes every
    thread the run starts; nothing process-wide is changed. ``preprocess`` defaults to what the
    feature kind needs. Every "auto" in ``config`` is resolved first; the result keeps it so.
    """
    start = time.perf_counter()
    config = resolved_config(config)
    featurizer = featurizer_for(config.features, preprocess)
    budget = budget or CpuBudget.from_options(decode)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    data = yield from _prepare(data_dir, featurizer, config, decode, budget, device, cancel)
    train, val, holdout = (data.tensors(part) for part in data.split.parts())
    train_val_index = np.concatenate([data.split.train, data.split.val])
    train_val = data.tensors(train_val_index)
    head_type = _LinearHead if config.head == "linear" else _MlpHead
    head = head_type(data, config, grid, budget.lanes, cancel, train, train_val)

    history: list[EpochPoint] = []
    grid_results = yield from recording_epochs(head.grid(train, val), history)
    best = pick_best(grid_results, config.select_by)
    head.chosen(best)

    negatives = yield from _non_face_rows(featurizer, decode, budget, device, cancel)
    yield FinalTrainingStarted(best.lr, best.epochs, len(train_val), l2=best.l2)
    head.train_val_keys = [data.keys[i] for i in train_val_index]
    everything = Tensors(data.x, data.y)
    # The refit's detectors depend only on every image, so they are fitted now, beside these.
    model, final_losses, (detectors, *refit_detectors), fitted = yield from _train_and_detect(
        head, train_val, best, config, negatives, also=[everything] if config.refit_all else []
    )
    # Calibration: one temperature, fitted on logits of data the model never trained on, applied
    # to the final model. It changes no prediction.
    temperature = head.temperature(best, val, train_val)
    metrics, holdout_images, val_images = _evaluate(data, model, best, temperature, detectors, holdout, val)
    yield HoldoutEvaluated(metrics)

    trained_on = train_val
    if config.refit_all:
        # The holdout has done its job (the figures above); the saved model learns from it too.
        trained_on = everything
        yield FinalTrainingStarted(best.lr, best.epochs, len(trained_on), phase="refit", l2=best.l2)
        model, final_losses, (detectors,), fitted = yield from _train_and_detect(
            head, trained_on, best, config, negatives, phase="refit", ready=refit_detectors[0]
        )

    result = _result(
        data, featurizer, config, grid, grid_results, best, metrics, final_losses, head.architecture, model,
        time.perf_counter() - start, device, temperature, detectors, holdout_images, val_images, history,
        trained_on, fitted,
    )  # fmt: skip
    yield RunFinished(result)
    return result


Trained = tuple[MLPEnsemble, list[float], list[T], dict]


class _Head:
    """What a run asks of its head: a grid scored on validation, a temperature, a final fit (with
    ``alongside`` work on its lanes). One step counter runs over all of it, for progress and ETA."""

    architecture: dict
    train_val_keys: list[str]  # each train+val image's pair key, set before the final training

    def __init__(
        self, data: _Data, config: TrainConfig, grid: GridSpec, lanes: int, cancel: CancelToken,
        train: Tensors, train_val: Tensors,
    ) -> None:  # fmt: skip
        self.data, self.config, self.grid_spec, self.lanes, self.cancel = data, config, grid, lanes, cancel
        self.steps = self._step_plan(train, train_val)

    def _step_plan(self, train: Tensors, train_val: Tensors) -> StepCounter:
        raise NotImplementedError

    def grid(self, train: Tensors, val: Tensors) -> Generator[Event, None, list[GridResult]]:
        raise NotImplementedError

    def chosen(self, best: GridResult) -> None:
        """The grid is done and ``best`` chosen (the MLP's remaining steps depend on it)."""

    def temperature(self, best: GridResult, val: Tensors, train_val: Tensors) -> float:
        raise NotImplementedError

    def train(
        self, data: Tensors, best: GridResult, phase: str, alongside: Sequence[Callable[[], T]]
    ) -> Generator[Event, None, Trained]:
        """Train on ``data``; run the ``alongside`` work (the detectors) on the same lanes
        meanwhile, and return its results in order."""
        raise NotImplementedError


class _MlpHead(_Head):
    """The paper's MLP (an ensemble of them on pretrained features): SGD over lr x epochs."""

    def _step_plan(self, train: Tensors, train_val: Tensors) -> StepCounter:
        self.architecture = paper_architecture(self.data.x.shape[1], self.data.num_classes, self.config.heads)
        self._train_val = train_val
        return _step_plan(self.grid_spec, self.config, train, train_val, len(self.data.y))

    def grid(self, train: Tensors, val: Tensors) -> Generator[Event, None, list[GridResult]]:
        return grid_search(
            train, val, self.grid_spec, self.config, self.architecture,
            steps=self.steps, cancel=self.cancel, lanes=self.lanes,
        )  # fmt: skip

    def chosen(self, best: GridResult) -> None:
        batches = _batches_after_grid(self.config, self._train_val, len(self.data.y))
        self.steps.total = self.steps.done + best.epochs * batches

    def temperature(self, best: GridResult, val: Tensors, train_val: Tensors) -> float:
        # The chosen setting's validation logits: data the grid model never trained on.
        return fit_temperature(best.val_logits, val.y.cpu().numpy())

    def train(self, data, best, phase, alongside) -> Generator[Event, None, Trained]:
        # One side task, filling the lane the heads' 3 + 2 split leaves idle.
        model, losses, sides = yield from train_final(
            data, best.lr, best.epochs, self.config, self.architecture,
            steps=self.steps, cancel=self.cancel, phase=phase, lanes=self.lanes,
            alongside=(lambda: [job() for job in alongside]) if alongside else None,
        )  # fmt: skip
        return model, losses, sides or [], {"kind": "mlp", "solver": "SGD", "heads": model.heads}


class _LinearHead(_Head):
    """Softmax regression with L2 (``trainer.model.linear``): a grid over L2 weights, cross-fitted
    calibration, one deterministic fit."""

    def _step_plan(self, train: Tensors, train_val: Tensors) -> StepCounter:
        self.architecture = linear_architecture(self.data.x.shape[1], self.data.num_classes)
        return StepCounter(total=fit_count(self.grid_spec, bool(self.config.refit_all)))

    def grid(self, train: Tensors, val: Tensors) -> Generator[Event, None, list[GridResult]]:
        return linear_grid_search(
            train, val, self.grid_spec, self.config, self.data.num_classes,
            steps=self.steps, cancel=self.cancel, lanes=self.lanes,
        )  # fmt: skip

    def temperature(self, best: GridResult, val: Tensors, train_val: Tensors) -> float:
        # Cross-fitted logits of train+val (from the final fit's folds): see linear_training.
        return fit_temperature(self._calibration_logits, train_val.y.cpu().numpy())

    def train(self, data, best, phase, alongside) -> Generator[Event, None, Trained]:
        final = yield from train_linear_final(
            data, best, self.config, self.data.num_classes,
            steps=self.steps, cancel=self.cancel, phase=phase, lanes=self.lanes, alongside=alongside,
            calibration_keys=self.train_val_keys if phase == "final" else None,
        )  # fmt: skip
        if final.calibration_logits is not None:
            self._calibration_logits = final.calibration_logits
        return final.model, list(final.fit.losses), final.sides, final.fit.metadata()


def _result(
    data: _Data,
    featurizer: Featurizer,
    config: TrainConfig,
    grid: GridSpec,
    grid_results: list[GridResult],
    best: GridResult,
    metrics: HoldoutMetrics,
    final_losses: list[float],
    architecture: dict,
    model: MLPEnsemble,
    seconds: float,
    device: torch.device,
    temperature: float,
    detectors: _Detectors,
    holdout_images: tuple[EvaluatedImage, ...],
    val_images: tuple[EvaluatedImage, ...],
    history: list[EpochPoint],
    trained_on: Tensors,
    fitted: dict,
) -> RunResult:
    """Everything the run found, in the one record that the CLI, the app and model files use."""
    return RunResult(
        dataset_root=str(data.scan.root),
        class_names=data.scan.class_names,
        counts=tuple(int(np.sum(data.labels == c)) for c in range(data.num_classes)),
        skipped=data.scan.skipped + data.unreadable,
        split_counts=data.split.counts(data.labels, data.num_classes),
        preprocess=featurizer.preprocess,
        train_config=config,
        grid=grid,
        grid_results=tuple(grid_results),
        best=best,
        holdout=metrics,
        final_train_losses=tuple(final_losses),
        architecture=architecture,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        seconds=seconds,
        device=str(device),
        features=featurizer.identity,
        temperature=temperature,
        novelty=detectors.novelty,
        holdout_images=holdout_images,
        val_images=val_images,
        history=tuple(history),
        face_likeness=detectors.face_likeness,
        class_offset=tuple(model.offset.tolist()) if model.has_offset else None,
        trained_on=tuple(int(v) for v in torch.bincount(trained_on.y.cpu(), minlength=data.num_classes)),
        head=fitted,
    )


def _prepare(
    data_dir: str | os.PathLike[str],
    featurizer: Featurizer,
    config: TrainConfig,
    decode: DecodeOptions,
    budget: CpuBudget,
    device: torch.device,
    cancel: CancelToken,
) -> Generator[Event, None, _Data]:
    """Scan the folder, get every readable image's row (cached or computed), split."""
    scan = scan_dataset(data_dir)
    yield DatasetScanned(str(scan.root), scan.class_names, scan.counts, scan.skipped, scan.ignored)
    check_class_sizes(scan.class_names, scan.counts, config.split_fractions)  # fail before decoding
    paths = [p for files in scan.files for p in files]
    labels = np.array([c for c, files in enumerate(scan.files) for _ in files], dtype=np.int64)
    keys = [scan.pair_key(c, p) for c, files in enumerate(scan.files) for p in files]
    features = yield from featurizer.extract(
        paths, root=scan.root, options=decode, budget=budget, device=device.type, cancel=cancel
    )
    ok = features.ok_indices
    unreadable = tuple(SkippedFile(str(paths[i]), reason) for i, reason in sorted(features.errors.items()))
    yield FeaturesFinished(len(ok), features.from_cache, unreadable, features.seconds, featurizer.description)
    labels, keys = labels[ok], [keys[i] for i in ok]
    split = make_split(
        labels, keys, scan.class_names, config.split, config.split_fractions, config.split_seed
    )
    yield SplitMade(config.split, scan.class_names, split.counts(labels, len(scan.class_names)))
    x = torch.from_numpy(features.rows).to(device)
    y = torch.from_numpy(labels).to(device)
    return _Data(scan, [paths[i] for i in ok], labels, unreadable, split, x, y, keys)


def _step_plan(
    grid: GridSpec, config: TrainConfig, train: Tensors, train_val: Tensors, everything: int
) -> StepCounter:
    """SGD steps of the whole run, for progress and ETA; refined once the best setting is known."""
    grid_steps = len(grid.learning_rates) * max(grid.epochs) * math.ceil(len(train) / config.batch_size)
    return StepCounter(
        total=grid_steps + max(grid.epochs) * _batches_after_grid(config, train_val, everything)
    )


def _batches_after_grid(config: TrainConfig, train_val: Tensors, everything: int) -> int:
    """Batches per epoch of the final training, plus the refit's when there is one."""
    batches = math.ceil(len(train_val) / config.batch_size)
    return batches + (math.ceil(everything / config.batch_size) if config.refit_all else 0)


def _non_face_rows(
    featurizer: Featurizer,
    decode: DecodeOptions,
    budget: CpuBudget,
    device: torch.device,
    cancel: CancelToken,
) -> Generator[Event, None, np.ndarray | None]:
    """The rows of the synthetic non-faces that the "not a face" scorer learns against; None
    where the featurizer has no such scorer."""
    began = time.perf_counter()
    found = featurizer.non_face_rows(options=decode, budget=budget, device=device.type, cancel=cancel)
    if found is None:
        return None
    rows, from_file = found
    yield NonFacesPrepared(len(rows), from_file, time.perf_counter() - began)
    return rows


def _train_and_detect(
    head: _Head,
    data: Tensors,
    best: GridResult,
    config: TrainConfig,
    negatives: np.ndarray | None,
    phase: str = "final",
    also: Sequence[Tensors] = (),
    ready: _Detectors | None = None,
) -> Generator[Event, None, tuple[MLPEnsemble, list[float], list[_Detectors], dict]]:
    """The chosen setting trained on ``data``, and the "unsure" detectors fitted on the same
    images (what the saved weights learned from) on the training's lanes, alongside it; and those
    of the rows in ``also`` (a refit's, ahead of it). ``ready``: detectors already fitted on
    ``data``. Returns the model, its loss per epoch (the linear head's: per iteration), the
    detectors (``data``'s, then ``also``'s) and how the head was fitted."""

    def detectors_of(rows: Tensors) -> Callable[[], _Detectors]:
        x = rows.x.cpu().numpy()

        def fit() -> _Detectors:
            novelty = fit_novelty(x, seed=config.seed)
            scorer = None
            if negatives is not None:
                scorer = fit_face_likeness(
                    x, negatives, seed=config.seed, generator=generator_description(), cancel=head.cancel
                )
            return _Detectors(novelty, scorer)

        return fit

    jobs = [detectors_of(rows) for rows in ([] if ready is not None else [data]) + list(also)]
    model, losses, fitted_detectors, fitted = yield from head.train(data, best, phase, jobs)
    head.cancel.raise_if_cancelled()
    return model, losses, ([ready] if ready is not None else []) + list(fitted_detectors), fitted


def _evaluate(
    data: _Data,
    model: MLPEnsemble,
    best: GridResult,
    temperature: float,
    detectors: _Detectors,
    holdout: Tensors,
    val: Tensors,
) -> tuple[HoldoutMetrics, tuple[EvaluatedImage, ...], tuple[EvaluatedImage, ...]]:
    """The holdout, once; and what the error gallery shows: every holdout image, and the
    validation images as the chosen grid checkpoint saw them, with calibrated probabilities and
    the flag prediction would give."""
    holdout_probs = softmax(logits_of(model, holdout.x), temperature)
    unlike, not_face = detectors.flags(holdout.x)
    metrics = HoldoutMetrics.from_probabilities(
        holdout.y.cpu().numpy(), holdout_probs, data.num_classes, unlike=unlike,
        not_a_face=not_face if detectors.face_likeness is not None else None,
    )  # fmt: skip
    holdout_images = evaluated_images(data, data.split.holdout, holdout_probs, unlike, not_face)
    val_images = evaluated_images(
        data, data.split.val, softmax(best.val_logits, temperature), *detectors.flags(val.x)
    )
    return metrics, holdout_images, val_images


def evaluated_images(
    data: _Data, index: np.ndarray, probs: np.ndarray, unlike: np.ndarray, not_face: np.ndarray
) -> tuple[EvaluatedImage, ...]:
    prefix = len(os.fspath(data.scan.root).rstrip(os.sep)) + 1
    return tuple(
        EvaluatedImage(
            os.fspath(data.ok_paths[i])[prefix:],
            int(data.labels[i]),
            tuple(float(v) for v in row),
            flag_for(row, bool(far), bool(odd)),
        )
        for i, row, far, odd in zip(index, probs, unlike, not_face, strict=True)
    )
