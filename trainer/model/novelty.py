"""How unlike the training images a new image is: k-nearest-neighbour cosine distance.

A classifier with two classes must answer one of them, even for a landscape. This scores each
input by its mean cosine distance to the ``k`` nearest of a stored set of training features
(centred on the training mean, so the common part of all images does not dominate), and flags it
when that distance is beyond what the training images themselves show: the threshold is a high
percentile of their leave-one-out distances. The stored set is capped (``MAX_REFERENCES``) so a
model trained on 20,000 images stays a few MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METHOD = "knn-cosine"
MAX_REFERENCES = 1024
DEFAULT_K = 3
DEFAULT_PERCENTILE = 99.0
UNLIKE_TRAINING = "unlike training images"
LOW_CONFIDENCE = "low confidence"


@dataclass(frozen=True, slots=True)
class NoveltyDetector:
    center: np.ndarray  # (D,) float32: mean training feature
    references: np.ndarray  # (M, D) float32, centred and L2-normalised
    k: int
    threshold: float  # a distance above this is "unlike training images"
    percentile: float

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mean cosine distance of each row to its ``k`` nearest references."""
        if len(features) == 0:
            return np.zeros(0, np.float32)
        unit = _normalise(np.asarray(features, np.float32) - self.center)
        similarity = unit @ self.references.T
        k = min(self.k, self.references.shape[0])
        nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
        return (1.0 - nearest.mean(axis=1)).astype(np.float32)

    def is_unlike(self, features: np.ndarray) -> np.ndarray:
        return self.distances(features) > self.threshold

    # -- model-file form: small tensors plus JSON ------------------------------------------------

    def tensors(self) -> dict[str, np.ndarray]:
        # float16 halves the size; distances move by ~1e-3, far below any threshold's precision.
        return {
            "novelty.center": self.center.astype(np.float32),
            "novelty.references": self.references.astype(np.float16),
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "k": self.k,
            "threshold": self.threshold,
            "percentile": self.percentile,
            "references": int(self.references.shape[0]),
        }

    @classmethod
    def from_parts(cls, metadata: dict[str, Any], tensors: dict[str, np.ndarray]) -> NoveltyDetector:
        if metadata.get("method") != METHOD:
            raise ValueError(f"unknown novelty method {metadata.get('method')!r}")
        references = np.asarray(tensors["novelty.references"], np.float32)
        center = np.asarray(tensors["novelty.center"], np.float32)
        if references.ndim != 2 or center.shape != (references.shape[1],) or references.shape[0] < 1:
            raise ValueError("the novelty references do not match their centre")
        k = int(metadata["k"])
        if not 1 <= k <= references.shape[0]:
            raise ValueError(f"novelty k={k} is out of range")
        threshold = float(metadata["threshold"])
        if not np.isfinite(threshold):
            raise ValueError("the novelty threshold is not a number")
        return cls(center, references, k, threshold, float(metadata.get("percentile", DEFAULT_PERCENTILE)))


def fit_novelty(
    features: np.ndarray,
    *,
    seed: int,
    k: int = DEFAULT_K,
    percentile: float = DEFAULT_PERCENTILE,
    max_references: int = MAX_REFERENCES,
) -> NoveltyDetector:
    """Keep up to ``max_references`` training features (a seeded sample) and set the threshold at
    ``percentile`` of the training images' leave-one-out distances to them."""
    features = np.asarray(features, np.float32)
    if len(features) < 2:
        raise ValueError("novelty needs at least two training images")
    center = features.mean(axis=0)
    unit = _normalise(features - center)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(len(unit))[:max_references])
    references = unit[chosen]
    k = min(k, len(references) - 1)
    # Leave one out: a reference is not its own neighbour.
    similarity = unit @ references.T
    similarity[chosen, np.arange(len(chosen))] = -np.inf
    nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
    loo = 1.0 - nearest.mean(axis=1)
    threshold = float(np.percentile(loo, percentile))
    return NoveltyDetector(center, references, k, threshold, percentile)


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
