"""How face-like an image is: a linear scorer trained against synthetic pictures that are not faces.

The k-NN novelty flag (``novelty.py``) cannot see flat graphics: a line chart or a chessboard sits
near the flat-vector drawings among the comics. Outlier exposure can: a logistic regression on
the head's own inputs learns the model's training images (faces and comics alike) against
generated non-faces (``trainer.data.non_faces``: charts, documents, UI layouts, patterns, noise,
...). An image scoring under the threshold is flagged "not a face".

The threshold is a low percentile (0.5th) of the training images' own cross-validated scores, so
about one in two hundred images like the training ones is flagged, whatever the features; and it
is never above 0, the scorer's own boundary, so a picture is only called "not a face" when it is
more like the non-faces than like the training images: a model trained on one narrow source then
never calls the real photos of another source "not a face" (``make cross``; docs/accuracy.md). Chosen on
pictures the generator never made (``make honesty``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.common.cancel import NEVER_CANCELLED, CancelToken

METHOD = "logistic-outlier-exposure"
NOT_A_FACE = "not a face"
DEFAULT_PERCENTILE = 0.5
MAX_THRESHOLD = 0.0  # the log-odds where "like the training images" and "a non-face" are even
DEFAULT_FOLDS = 5
L2 = 1e-2
STEPS = 150
STEP_SIZE = 2.0
PREFIX = "face_likeness."
MAX_POSITIVES = 1024  # a seeded sample of the training images is enough, and keeps the fit short


@dataclass(frozen=True, slots=True)
class FaceLikeness:
    mean: np.ndarray  # (D,) float32: feature mean used to standardise
    scale: np.ndarray  # (D,) float32: feature standard deviation
    weight: np.ndarray  # (D,) float32
    bias: float
    threshold: float  # a score below this is "not a face"
    percentile: float
    negatives: int  # how many synthetic pictures it was trained against
    generator: dict[str, Any]  # which generator made them (version, seed)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The log-odds that each row is like the training images rather than a non-face."""
        if len(features) == 0:
            return np.zeros(0, np.float32)
        standard = (np.asarray(features, np.float32) - self.mean) / self.scale
        return (standard @ self.weight + self.bias).astype(np.float32)

    def is_not_a_face(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features) < self.threshold

    # -- model-file form: small tensors plus JSON ------------------------------------------------

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            PREFIX + "mean": self.mean.astype(np.float32),
            PREFIX + "scale": self.scale.astype(np.float32),
            PREFIX + "weight": self.weight.astype(np.float32),
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "bias": self.bias,
            "threshold": self.threshold,
            "percentile": self.percentile,
            "negatives": self.negatives,
            "generator": self.generator,
        }

    @classmethod
    def from_parts(cls, metadata: dict[str, Any], tensors: dict[str, np.ndarray]) -> FaceLikeness:
        if metadata.get("method") != METHOD:
            raise ValueError(f"unknown face-likeness method {metadata.get('method')!r}")
        mean, scale, weight = (
            np.asarray(tensors[PREFIX + k], np.float32) for k in ("mean", "scale", "weight")
        )
        if not mean.ndim == 1 or not mean.shape == scale.shape == weight.shape:
            raise ValueError("the face-likeness tensors do not match each other")
        if not np.all(scale > 0):
            raise ValueError("the face-likeness scale must be positive")
        bias, threshold = float(metadata["bias"]), float(metadata["threshold"])
        if not (np.isfinite(bias) and np.isfinite(threshold)):
            raise ValueError("the face-likeness bias or threshold is not a number")
        generator = metadata.get("generator") or {}
        if not isinstance(generator, dict):
            raise ValueError("the face-likeness generator is not described")
        return cls(
            mean, scale, weight, bias, threshold,
            float(metadata.get("percentile", DEFAULT_PERCENTILE)), int(metadata.get("negatives", 0)), generator,
        )  # fmt: skip


def _fit_logistics(
    x: np.ndarray, is_positive: np.ndarray, used: list[np.ndarray], cancel: CancelToken = NEVER_CANCELLED
) -> list[tuple[np.ndarray, float]]:
    """L2-regularised logistic regressions, one per mask of ``used`` rows of ``x`` (standardised),
    both classes weighed equally within each, by full-batch gradient descent on one torch thread.

    150 plain steps of size 2 from zero, not a solver run to convergence: stopping early is the
    regularisation that generalises (run to a lower loss, it caught fewer of the non-face test
    pictures of ``make honesty``). All of them step together: a row a fit does not use weighs 0
    in it, so each fit is its own, and one matrix product per step serves all of them (the
    cross-validation folds and the final fit: about twice as fast as one product per fit).
    Deterministic, and no ``torch.optim``, which would cost a second of start-up."""
    import torch

    weights = []
    for rows in used:
        positives, negatives = np.count_nonzero(rows & is_positive), np.count_nonzero(rows & ~is_positive)
        weights.append(np.where(is_positive, 0.5 / positives, 0.5 / negatives) * rows)
    features = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    target = torch.from_numpy(is_positive.astype(np.float32))[:, None]
    row_weight = torch.from_numpy(np.stack(weights, axis=1).astype(np.float32))
    w = torch.zeros(features.shape[1], len(used))
    b = torch.zeros(len(used))
    for step in range(STEPS):
        if step % 50 == 0:
            cancel.raise_if_cancelled()
        residual = row_weight * (torch.sigmoid(features @ w + b) - target)
        w -= STEP_SIZE * (features.T @ residual + 2 * L2 * w)
        b -= STEP_SIZE * residual.sum(dim=0)
    return [(w[:, k].numpy().copy(), float(b[k])) for k in range(len(used))]


def fit_face_likeness(
    positives: np.ndarray,
    negatives: np.ndarray,
    *,
    seed: int,
    generator: dict[str, Any],
    percentile: float = DEFAULT_PERCENTILE,
    folds: int = DEFAULT_FOLDS,
    max_positives: int = MAX_POSITIVES,
    cancel: CancelToken = NEVER_CANCELLED,
) -> FaceLikeness:
    """Train on the images (a seeded sample of at most ``max_positives``) against the non-faces;
    set the threshold at ``percentile`` of the positives' scores from ``folds``-fold
    cross-validation (scores of images the fold's scorer did not train on), capped at
    ``MAX_THRESHOLD``. The training runs it on a lane (one torch thread, beside the final
    training's heads), so it gives the same numbers on any core count."""
    positives = np.asarray(positives, np.float32)
    negatives = np.asarray(negatives, np.float32)
    if len(positives) < folds or len(negatives) < folds:
        raise ValueError(f"face-likeness needs at least {folds} training images and {folds} non-faces")
    rng = np.random.default_rng(seed)
    if len(positives) > max_positives:
        positives = positives[np.sort(rng.permutation(len(positives))[:max_positives])]
    both = np.concatenate([positives, negatives])
    mean = both.mean(axis=0)
    scale = both.std(axis=0) + 1e-6
    standard = (both - mean) / scale
    fold = np.concatenate([rng.permutation(len(positives)) % folds, rng.permutation(len(negatives)) % folds])
    is_positive = np.arange(len(both)) < len(positives)
    results = _fit_logistics(standard, is_positive, [fold != k for k in range(folds + 1)], cancel)  # then all
    held_out_scores = np.empty(len(positives), np.float32)
    for k, (w, b) in enumerate(results[:folds]):
        rows = (fold == k) & is_positive
        held_out_scores[rows[: len(positives)]] = standard[rows] @ w + b
    threshold = min(float(np.percentile(held_out_scores, percentile)), MAX_THRESHOLD)
    w, b = results[folds]
    return FaceLikeness(
        mean.astype(np.float32), scale.astype(np.float32), w.astype(np.float32), b, threshold, percentile,
        len(negatives), dict(generator),
    )  # fmt: skip
