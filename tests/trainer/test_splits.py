from __future__ import annotations

import numpy as np
import pytest

from trainer.common.errors import DatasetError
from trainer.data.splits import make_split, quotas

FRACTIONS = (0.5, 0.2, 0.3)
NAMES = ("comics", "faces")


def paired_dataset(n: int, missing: tuple[int, ...] = ()) -> tuple[np.ndarray, list[str]]:
    labels, keys = [], []
    for c in (0, 1):
        for i in range(n):
            if c == 0 and i in missing:
                continue
            labels.append(c)
            keys.append(str(i))
    return np.array(labels), keys


def split_of(split, index: int) -> int:
    return next(s for s, part in enumerate(split.parts()) if index in set(part.tolist()))


def test_paper_split_is_exactly_5k_2k_3k_and_takes_first_files():
    labels, keys = paired_dataset(10_000)
    split = make_split(labels, keys, NAMES, "paper", FRACTIONS, seed=0)
    assert split.counts(labels, 2) == ((5000, 5000), (2000, 2000), (3000, 3000))
    # Per class, the first 5k files in order are train, the next 2k val.
    assert sorted(split.train[labels[split.train] == 1] - 10_000) == list(range(5000))
    assert sorted(split.val[labels[split.val] == 0]) == list(range(5000, 7000))


@pytest.mark.parametrize("method", ["paper", "random"])
def test_pairs_never_cross_splits(method: str):
    rng = np.random.default_rng(1)
    labels, keys = paired_dataset(300, missing=tuple(rng.choice(300, 40, replace=False)))
    # Singletons too: faces that have no comic.
    labels = np.concatenate([labels, np.ones(50, int)])
    keys = keys + [f"solo{i}" for i in range(50)]
    split = make_split(labels, keys, NAMES, method, FRACTIONS, seed=3)
    where = {}
    for s, part in enumerate(split.parts()):
        for i in part:
            assert where.setdefault(keys[i], s) == s, f"pair {keys[i]} split across {where[keys[i]]} and {s}"
    assert sorted(np.concatenate(split.parts()).tolist()) == list(range(len(labels)))


def test_random_split_is_stratified_exact_and_seeded():
    labels, keys = paired_dataset(200, missing=(1, 5, 9))
    a = make_split(labels, keys, NAMES, "random", FRACTIONS, seed=7)
    b = make_split(labels, keys, NAMES, "random", FRACTIONS, seed=7)
    c = make_split(labels, keys, NAMES, "random", FRACTIONS, seed=8)
    expected = tuple(zip(quotas(197, FRACTIONS), quotas(200, FRACTIONS), strict=True))
    assert a.counts(labels, 2) == expected
    assert all(np.array_equal(x, y) for x, y in zip(a.parts(), b.parts(), strict=True))
    assert not np.array_equal(a.train, c.train)
    # Random, not the first files.
    assert not np.array_equal(np.sort(a.train[labels[a.train] == 1]) - 197, np.arange(100))


def test_class_too_small_is_one_clear_sentence():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    keys = [str(i) for i in range(9)]
    with pytest.raises(
        DatasetError,
        match=r"The class 'comics' has 3 usable images; a 50/20/30 split needs at least 5 per class\.",
    ):
        make_split(labels, keys, NAMES, "random", FRACTIONS, seed=0)
