"""What a run produces: grid scores, the chosen setting, holdout metrics and the trained weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.common.configs import SPLIT_NAMES, GridSpec, PreprocessConfig, TrainConfig
from trainer.data.dataset import SkippedFile

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, slots=True)
class GridResult:
    lr: float
    epochs: int
    val_accuracy: float
    val_loss: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "epochs": self.epochs,
            "val_accuracy": self.val_accuracy,
            "val_loss": self.val_loss,
        }


def pick_best(results: list[GridResult]) -> GridResult:
    """Highest validation accuracy; ties go to the lower loss, then to the earlier setting."""
    return min(results, key=lambda r: (-r.val_accuracy, r.val_loss))


@dataclass(frozen=True, slots=True)
class HoldoutMetrics:
    accuracy: float
    loss: float
    confusion_matrix: tuple[tuple[int, ...], ...]  # [true class][predicted class]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    size: int

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
        }
