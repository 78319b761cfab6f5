"""What a run produces: grid scores, the chosen setting, holdout metrics and the trained weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.common.configs import SPLIT_NAMES, GridSpec, PreprocessConfig, TrainConfig
from trainer.data.dataset import SkippedFile
from trainer.model.calibration import ReliabilityBin, expected_calibration_error, reliability

if TYPE_CHECKING:
    import torch

    from trainer.model.face_likeness import FaceLikeness
    from trainer.model.novelty import NoveltyDetector


@dataclass(frozen=True, slots=True)
class EvaluatedImage:
    """One scored image of a split, as the error gallery shows it."""

    path: str  # relative to the dataset folder
    true_label: int
    probabilities: tuple[float, ...]  # calibrated
    flag: str = ""

    @property
    def predicted(self) -> int:
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.predicted]

    def to_list(self) -> list[Any]:
        return [self.path, self.true_label, [round(p, 6) for p in self.probabilities], self.flag]

    @classmethod
    def from_list(cls, row: list[Any], num_classes: int) -> EvaluatedImage:
        path, label, probabilities, flag = row
        if not isinstance(path, str) or not isinstance(label, int) or not 0 <= label < num_classes:
            raise ValueError("an evaluated image has a bad path or label")
        if len(probabilities) != num_classes or not isinstance(flag, str):
            raise ValueError("an evaluated image has bad probabilities or flag")
        return cls(path, label, tuple(float(p) for p in probabilities), flag)


def flag_for(probabilities: Any, unlike: bool, not_a_face: bool = False) -> str:
    """The prediction flag, in this order: not a face, unlike the training images, unsure."""
    from trainer.model.calibration import LOW_CONFIDENCE
    from trainer.model.face_likeness import NOT_A_FACE
    from trainer.model.novelty import LOW_CONFIDENCE as LOW_CONFIDENCE_FLAG
    from trainer.model.novelty import UNLIKE_TRAINING

    if not_a_face:
        return NOT_A_FACE
    if unlike:
        return UNLIKE_TRAINING
    return LOW_CONFIDENCE_FLAG if float(max(probabilities)) < LOW_CONFIDENCE else ""


def run_label(lr: float | None, l2: float | None = None) -> str:
    """A grid run's name in tables, plots and logs: one per learning rate, or per L2 weight."""
    return f"L2 {l2:g}" if l2 is not None else f"lr {lr:g}"


@dataclass(frozen=True, slots=True)
class EpochPoint:
    """One epoch of an MLP grid run, or one iteration of a linear fit (``l2`` set, ``lr`` None),
    as the plots show it: training loss, then validation where it was scored."""

    lr: float | None
    epoch: int  # the linear head's iteration
    train_loss: float
    val_accuracy: float | None
    val_loss: float | None
    l2: float | None = None

    def to_list(self) -> list[Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 6)

        row = [self.lr, self.epoch, r(self.train_loss), r(self.val_accuracy), r(self.val_loss)]
        return row if self.l2 is None else [*row, self.l2]

    @classmethod
    def from_list(cls, row: list[Any]) -> EpochPoint:
        lr, epoch, loss, accuracy, val_loss, *rest = row
        if not isinstance(epoch, int) or epoch < 1 or len(rest) > 1:
            raise ValueError("a history entry has a bad epoch")
        l2 = float(rest[0]) if rest and rest[0] is not None else None
        if (lr is None) == (l2 is None):
            raise ValueError("a history entry needs a learning rate or an L2 weight")
        return cls(
            None if lr is None else float(lr),
            epoch,
            float(loss),
            None if accuracy is None else float(accuracy),
            None if val_loss is None else float(val_loss),
            l2,
        )


@dataclass(frozen=True, slots=True)
class RunCurves:
    """One grid run (a learning rate's, or an L2 weight's fit) per epoch or iteration, as the
    plots draw it."""

    label: str
    epochs: tuple[int, ...]
    train_loss: tuple[float, ...]
    val_epochs: tuple[int, ...]  # the epochs that have a validation accuracy
    val_accuracy: tuple[float, ...]


def curves_by_run(history: Sequence[EpochPoint]) -> list[RunCurves]:
    """The grid's history grouped per run, in the order the runs first appear."""
    grouped: dict[tuple[float | None, float | None], list[EpochPoint]] = {}
    for point in history:
        grouped.setdefault((point.lr, point.l2), []).append(point)
    curves = []
    for (lr, l2), points in grouped.items():
        scored = [p for p in points if p.val_accuracy is not None]
        curves.append(
            RunCurves(
                run_label(lr, l2),
                tuple(p.epoch for p in points),
                tuple(p.train_loss for p in points),
                tuple(p.epoch for p in scored),
                tuple(p.val_accuracy for p in scored),
            )
        )
    return curves


@dataclass(frozen=True, slots=True)
class GridResult:
    """One scored setting: (lr, epochs) of the MLP, or the linear head's ``l2`` (lr and epochs
    None)."""

    lr: float | None
    epochs: int | None
    val_accuracy: float
    val_loss: float
    # The checkpoint's validation logits, kept for the gallery (and the MLP's temperature).
    val_logits: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Each head's own validation accuracy, for an ensemble (empty for one head).
    head_accuracies: tuple[float, ...] = ()
    l2: float | None = None
    # The linear head's fit on train (a later fit at the same L2 starts from it); never saved.
    fit: Any = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> SettingKey:
        return (self.lr, self.epochs, self.l2)

    @property
    def label(self) -> str:
        """``lr 0.3, 6 epochs`` or ``L2 0.1``."""
        if self.l2 is not None:
            return run_label(None, self.l2)
        return f"lr {self.lr:g}, {self.epochs} epoch{'s' if self.epochs != 1 else ''}"

    @property
    def head_spread(self) -> tuple[float, float] | None:
        """The lowest and highest accuracy of a single head, or None for one head."""
        return (min(self.head_accuracies), max(self.head_accuracies)) if self.head_accuracies else None

    def setting(self) -> dict[str, Any]:
        """The setting alone, as model files and ``--json`` name the chosen one."""
        return {"l2": self.l2} if self.l2 is not None else {"lr": self.lr, "epochs": self.epochs}

    def to_dict(self) -> dict[str, Any]:
        out = {**self.setting(), "val_accuracy": self.val_accuracy, "val_loss": self.val_loss}
        if self.head_accuracies:
            out["head_accuracies"] = list(self.head_accuracies)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridResult:
        l2 = data.get("l2")
        return cls(
            None if l2 is not None else float(data["lr"]),
            None if l2 is not None else int(data["epochs"]),
            float(data["val_accuracy"]),
            float(data["val_loss"]),
            head_accuracies=tuple(float(a) for a in data.get("head_accuracies") or ()),
            l2=None if l2 is None else float(l2),
        )


SettingKey = tuple[float | None, int | None, float | None]


@dataclass(frozen=True, slots=True)
class GridLayout:
    """Where each setting sits in the grid's table (the CLI's and the app's): the MLP's lr rows x
    epoch columns, as in the paper, or the linear head's L2 rows in one column."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[tuple[SettingKey, ...], ...]  # per row, the setting of each column

    def position(self, key: SettingKey) -> tuple[int, int] | None:
        for r, keys in enumerate(self.cells):
            if key in keys:
                return r, keys.index(key)
        return None


def grid_layout(grid: GridSpec, head: str) -> GridLayout:
    if head == "linear":  # fitted to convergence: one column, a row per L2 weight
        return GridLayout(
            tuple(run_label(None, l2) for l2 in grid.l2),
            ("linear head",),
            tuple(((None, None, l2),) for l2 in grid.l2),
        )
    return GridLayout(
        tuple(run_label(lr) for lr in grid.learning_rates),
        tuple(f"{e} epoch{'s' if e != 1 else ''}" for e in grid.epochs),
        tuple(tuple((lr, e, None) for e in grid.epochs) for lr in grid.learning_rates),
    )


def pick_best(results: list[GridResult], select_by: str = "accuracy") -> GridResult:
    """By ``"accuracy"`` (the paper): highest validation accuracy, ties to the lower loss. By
    ``"loss"``: the lowest validation loss (NLL), ties to the higher accuracy; far steadier than
    accuracy on small validation sets, where one image decides between settings. Remaining ties go
    to the earlier setting."""
    if select_by == "loss":
        return min(results, key=lambda r: (r.val_loss, -r.val_accuracy))
    return min(results, key=lambda r: (-r.val_accuracy, r.val_loss))


@dataclass(frozen=True, slots=True)
class HoldoutMetrics:
    accuracy: float
    loss: float
    confusion_matrix: tuple[tuple[int, ...], ...]  # [true class][predicted class]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    size: int
    ece: float | None = None  # expected calibration error of the calibrated probabilities
    reliability: tuple[ReliabilityBin, ...] = ()
    unlike_fraction: float | None = None  # share of holdout images flagged "unlike training images"
    not_a_face_fraction: float | None = None  # share of holdout images flagged "not a face"

    @classmethod
    def from_probabilities(
        cls,
        labels: np.ndarray,
        probabilities: np.ndarray,
        num_classes: int,
        unlike: np.ndarray | None = None,
        not_a_face: np.ndarray | None = None,
    ) -> HoldoutMetrics:
        """Metrics of calibrated probabilities: loss is their cross-entropy, plus ECE."""
        labels = np.asarray(labels, np.int64)
        n = len(labels)
        picked = np.clip(probabilities[np.arange(n), labels], 1e-12, 1.0) if n else np.zeros(0)
        loss = float(-np.log(picked).mean()) if n else 0.0
        base = cls.from_predictions(labels, probabilities.argmax(axis=1), loss, num_classes)
        return cls(
            base.accuracy,
            base.loss,
            base.confusion_matrix,
            base.precision,
            base.recall,
            base.size,
            ece=expected_calibration_error(probabilities, labels),
            reliability=tuple(reliability(probabilities, labels)),
            unlike_fraction=float(np.mean(unlike)) if unlike is not None and n else None,
            not_a_face_fraction=float(np.mean(not_a_face)) if not_a_face is not None and n else None,
        )

    @classmethod
    def from_predictions(
        cls, labels: np.ndarray, predicted: np.ndarray, loss: float, num_classes: int
    ) -> HoldoutMetrics:
        cm = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(cm, (labels, predicted), 1)
        diag = np.diag(cm).astype(float)
        predicted_totals = cm.sum(axis=0)
        true_totals = cm.sum(axis=1)
        precision = np.divide(diag, predicted_totals, out=np.zeros_like(diag), where=predicted_totals > 0)
        recall = np.divide(diag, true_totals, out=np.zeros_like(diag), where=true_totals > 0)
        n = int(cm.sum())
        return cls(
            accuracy=float(diag.sum() / n) if n else 0.0,
            loss=float(loss),
            confusion_matrix=tuple(tuple(int(v) for v in row) for row in cm),
            precision=tuple(float(p) for p in precision),
            recall=tuple(float(r) for r in recall),
            size=n,
        )

    def to_dict(self, class_names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "precision": dict(zip(class_names, self.precision, strict=True)),
            "recall": dict(zip(class_names, self.recall, strict=True)),
            "size": self.size,
            "ece": self.ece,
            "reliability": [b.to_dict() for b in self.reliability],
            "unlike_fraction": self.unlike_fraction,
            "not_a_face_fraction": self.not_a_face_fraction,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], class_names: tuple[str, ...]) -> HoldoutMetrics:
        return cls(
            accuracy=float(data["accuracy"]),
            loss=float(data["loss"]),
            confusion_matrix=tuple(tuple(int(v) for v in row) for row in data["confusion_matrix"]),
            precision=tuple(float(data["precision"][c]) for c in class_names),
            recall=tuple(float(data["recall"][c]) for c in class_names),
            size=int(data.get("size", 0)),
            ece=None if data.get("ece") is None else float(data["ece"]),
            reliability=tuple(ReliabilityBin.from_dict(b) for b in data.get("reliability") or ()),
            unlike_fraction=None if data.get("unlike_fraction") is None else float(data["unlike_fraction"]),
            not_a_face_fraction=(
                None if data.get("not_a_face_fraction") is None else float(data["not_a_face_fraction"])
            ),
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    dataset_root: str
    class_names: tuple[str, ...]
    counts: tuple[int, ...]  # usable images per class
    skipped: tuple[SkippedFile, ...]
    split_counts: tuple[tuple[int, ...], ...]  # [split][class]
    preprocess: PreprocessConfig
    train_config: TrainConfig
    grid: GridSpec
    grid_results: tuple[GridResult, ...]
    best: GridResult
    holdout: HoldoutMetrics
    final_train_losses: tuple[float, ...]
    architecture: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    seconds: float
    device: str
    features: dict[str, Any] = field(default_factory=lambda: {"kind": "pixels"})
    temperature: float = 1.0
    novelty: NoveltyDetector | None = field(default=None, repr=False)
    holdout_images: tuple[EvaluatedImage, ...] = field(default=(), repr=False)
    val_images: tuple[EvaluatedImage, ...] = field(default=(), repr=False)
    # Per learning rate and epoch of the grid (or L2 weight and iteration): train loss, validation.
    history: tuple[EpochPoint, ...] = field(default=(), repr=False)
    face_likeness: FaceLikeness | None = field(default=None, repr=False)
    # Minus the log class prior added to the logits (balanced prior), or None.
    class_offset: tuple[float, ...] | None = None
    # Images per class the saved weights were trained on: train+val, or every image with refit_all.
    trained_on: tuple[int, ...] = ()
    # How the saved head was fitted (``LinearFit.metadata()``, or the MLP's solver and heads).
    head: dict[str, Any] = field(default_factory=dict)

    def split_dict(self) -> dict[str, Any]:
        return {
            "method": self.train_config.split,
            "fractions": list(self.train_config.split_fractions),
            "seed": self.train_config.seed,
            "counts": {
                name: dict(zip(self.class_names, counts, strict=True))
                for name, counts in zip(SPLIT_NAMES, self.split_counts, strict=True)
            },
        }

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` report."""
        return {
            "classes": list(self.class_names),
            "counts": dict(zip(self.class_names, self.counts, strict=True)),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "split": self.split_dict(),
            "grid": [r.to_dict() for r in self.grid_results],
            "best": self.best.setting(),
            "holdout": self.holdout.to_dict(self.class_names),
            "seconds": self.seconds,
            "device": self.device,
            "seed": self.train_config.seed,
            "features": self.features,
            "temperature": self.temperature,
            "head": self.train_config.head,
            "heads": self.architecture.get("heads", 1),
            "select_by": self.train_config.select_by,
            "class_prior": self.train_config.class_prior,
            "refit_all": self.train_config.refit_all,
            "trained_on": dict(zip(self.class_names, self.trained_on, strict=True)),
        }
