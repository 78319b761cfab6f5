"""Train/validation/holdout splits that never separate a face from its comic.

Files whose names match across the two classes (``faces/123.jpg`` and ``comics/123.jpg``) show the
same person; they form one group and always land in the same split, or the holdout would leak.
Per class, the split sizes are ``floor(0.5 n)``, ``floor(0.2 n)`` and the rest: exactly
5,000/2,000/3,000 for 10,000 images, as in the paper.

- ``paper``: groups in natural file-name order, so each class's first files go to train.
- ``random``: groups shuffled by the seed, cross-class pairs placed first so the per-class
  quotas still come out exact (stratified).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.common.configs import SPLIT_NAMES
from trainer.common.errors import DatasetError
from trainer.data.dataset import natural_key


@dataclass(frozen=True, slots=True)
class Split:
    train: np.ndarray  # indices into the sample list
    val: np.ndarray
    holdout: np.ndarray

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.train, self.val, self.holdout

    def counts(self, labels: np.ndarray, num_classes: int) -> tuple[tuple[int, ...], ...]:
        return tuple(
            tuple(int(np.sum(labels[part] == c)) for c in range(num_classes)) for part in self.parts()
        )


def quotas(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    train = math.floor(n * fractions[0] + 1e-9)
    val = math.floor(n * fractions[1] + 1e-9)
    return train, val, n - train - val


def minimum_class_size(fractions: Sequence[float]) -> int:
    n = 1
    while min(quotas(n, fractions)) < 1:
        n += 1
    return n


def check_class_sizes(class_names: Sequence[str], counts: Sequence[int], fractions: Sequence[float]) -> None:
    need = minimum_class_size(fractions)
    for name, n in zip(class_names, counts, strict=True):
        if n < need:
            pct = "/".join(f"{round(f * 100)}" for f in fractions)
            raise DatasetError(
                f"The class '{name}' has {n} usable image{'s' if n != 1 else ''}; a {pct} split "
                f"needs at least {need} per class."
            )


def make_split(
    labels: Sequence[int],
    pair_keys: Sequence[str],
    class_names: Sequence[str],
    method: str,
    fractions: Sequence[float],
    seed: int,
) -> Split:
    """Assign every sample to one split; raises ``DatasetError`` when a class is too small."""
    labels = np.asarray(labels)
    num_classes = len(class_names)
    counts = [int(np.sum(labels == c)) for c in range(num_classes)]
    check_class_sizes(class_names, counts, fractions)
    remaining = np.array([quotas(n, fractions) for n in counts], dtype=np.int64).T  # [split][class]

    groups: dict[str, list[int]] = {}
    for i, key in enumerate(pair_keys):
        groups.setdefault(key, []).append(i)
    keys = sorted(groups, key=natural_key)
    if method == "random":
        rng = np.random.default_rng(seed)
        keys = [keys[i] for i in rng.permutation(len(keys))]
        # Cross-class groups first: they need room in every class at once.
        keys.sort(key=lambda k: -len({int(labels[i]) for i in groups[k]}))
    elif method != "paper":
        raise ValueError(f"Unknown split method {method!r}")

    assignment = np.empty(len(labels), dtype=np.int64)
    for key in keys:
        members = groups[key]
        need_per_class = np.bincount(labels[members], minlength=num_classes)
        overflow = [int(np.maximum(need_per_class - remaining[s], 0).sum()) for s in range(3)]
        # The first split with room for the whole group; else the one it overfills least.
        target = overflow.index(min(overflow))
        assignment[members] = target
        remaining[target] -= need_per_class
    parts = [np.flatnonzero(assignment == s) for s in range(len(SPLIT_NAMES))]
    for name, part in zip(SPLIT_NAMES, parts, strict=True):
        if len(part) == 0:  # pragma: no cover - quotas of at least 1 make this unreachable
            raise DatasetError(f"The {name} split came out empty; add more images.")
    return Split(*parts)


def group_folds(pair_keys: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """A fold number per sample for cross-fitting, ``folds`` of them (fewer when there are fewer
    groups); a face and its comic (one pair key) share a fold, as they share a split, so no fold
    is scored by a model that saw the other half of a pair. Seeded, and the same on any machine."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(pair_keys):
        groups.setdefault(key, []).append(i)
    keys = sorted(groups, key=natural_key)
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of = np.empty(len(pair_keys), dtype=np.int64)
    parts = max(1, min(folds, len(keys)))
    for rank, index in enumerate(order):
        fold_of[groups[keys[index]]] = rank % parts
    return fold_of
