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


@dataclass(frozen=True, slots=True)
class EpochPoint:
    """One epoch of a grid run, as the plots show it: mean training loss, then validation."""

    lr: float
    epoch: int
    train_loss: float
    val_accuracy: float | None
    val_loss: float | None

    def to_list(self) -> list[Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 6)

        return [self.lr, self.epoch, r(self.train_loss), r(self.val_accuracy), r(self.val_loss)]

    @classmethod
    def from_list(cls, row: list[Any]) -> EpochPoint:
        lr, epoch, loss, accuracy, val_loss = row
        if not isinstance(epoch, int) or epoch < 1:
            raise ValueError("a history entry has a bad epoch")
        return cls(
            float(lr),
            epoch,
            float(loss),
            None if accuracy is None else float(accuracy),
            None if val_loss is None else float(val_loss),
        )


@dataclass(frozen=True, slots=True)
class LrCurves:
    """One learning rate's grid run per epoch, as the plots draw it."""

    lr: float
    epochs: tuple[int, ...]
    train_loss: tuple[float, ...]
    val_epochs: tuple[int, ...]  # the epochs that have a validation accuracy
    val_accuracy: tuple[float, ...]


def curves_by_lr(history: Sequence[EpochPoint]) -> list[LrCurves]:
    """The grid's history grouped per learning rate, in the order the rates first appear."""
    grouped: dict[float, list[EpochPoint]] = {}
    for point in history:
        grouped.setdefault(point.lr, []).append(point)
    curves = []
    for lr, points in grouped.items():
        scored = [p for p in points if p.val_accuracy is not None]
        curves.append(
            LrCurves(
                lr,
                tuple(p.epoch for p in points),
                tuple(p.train_loss for p in points),
                tuple(p.epoch for p in scored),
                tuple(p.val_accuracy for p in scored),
            )
        )
    return curves


@dataclass(frozen=True, slots=True)
class GridResult:
    lr: float
    epochs: int
    val_accuracy: float
    val_loss: float
    # The checkpoint's validation logits, kept to fit the temperature of the chosen setting.
    val_logits: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Each head's own validation accuracy, for an ensemble (empty for one head).
    head_accuracies: tuple[float, ...] = ()

    @property
    def head_spread(self) -> tuple[float, float] | None:
        """The lowest and highest accuracy of a single head, or None for one head."""
        return (min(self.head_accuracies), max(self.head_accuracies)) if self.head_accuracies else None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "lr": self.lr,
            "epochs": self.epochs,
            "val_accuracy": self.val_accuracy,
            "val_loss": self.val_loss,
        }
        if self.head_accuracies:
            out["head_accuracies"] = list(self.head_accuracies)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridResult:
        return cls(
            float(data["lr"]),
            int(data["epochs"]),
            float(data["val_accuracy"]),
            float(data["val_loss"]),
            head_accuracies=tuple(float(a) for a in data.get("head_accuracies") or ()),
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
    # Per learning rate and epoch of the grid: train loss, validation accuracy and loss.
    history: tuple[EpochPoint, ...] = field(default=(), repr=False)
    face_likeness: FaceLikeness | None = field(default=None, repr=False)
    # Minus the log class prior added to the logits (balanced prior), or None.
    class_offset: tuple[float, ...] | None = None
    # Images per class the saved weights were trained on: train+val, or every image with refit_all.
    trained_on: tuple[int, ...] = ()

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
            "best": {"lr": self.best.lr, "epochs": self.best.epochs},
            "holdout": self.holdout.to_dict(self.class_names),
            "seconds": self.seconds,
            "device": self.device,
            "seed": self.train_config.seed,
            "features": self.features,
            "temperature": self.temperature,
            "heads": self.architecture.get("heads", 1),
            "select_by": self.train_config.select_by,
            "class_prior": self.train_config.class_prior,
            "refit_all": self.train_config.refit_all,
            "trained_on": dict(zip(self.class_names, self.trained_on, strict=True)),
        }
