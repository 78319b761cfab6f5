from __future__ import annotations

import numpy as np
import pytest

from trainer.model.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
    softmax,
)
from trainer.model.novelty import NoveltyDetector, fit_novelty


def overconfident(n: int, seed: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose true calibration temperature is ``scale``: labels drawn from softmax(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, size=(n, 2))
    p = softmax(z)
    labels = (rng.random(n) < p[:, 1]).astype(np.int64)
    return z * scale, labels


def test_temperature_recovers_known_overconfidence():
    logits, labels = overconfident(20_000, 0, scale=3.0)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    # It is the minimum: nudging it either way raises the NLL.
    assert nll(logits, labels, t) < nll(logits, labels, t * 1.1)
    assert nll(logits, labels, t) < nll(logits, labels, t / 1.1)


def test_calibration_lowers_ece_and_keeps_every_prediction():
    logits, labels = overconfident(5_000, 1, scale=4.0)
    t = fit_temperature(*overconfident(5_000, 2, scale=4.0))  # fitted on other data, as val
    before, after = softmax(logits), softmax(logits, t)
    assert expected_calibration_error(after, labels) < expected_calibration_error(before, labels) / 3
    assert (before.argmax(1) == after.argmax(1)).all()


def test_ece_by_hand():
    # Two images in the 0.9-ish bin, one right: |0.5 - 0.9| * 2/3; one at 0.6, right: |1-0.6| * 1/3.
    probs = np.array([[0.1, 0.9], [0.9, 0.1], [0.4, 0.6]])
    labels = np.array([1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4 * 2 / 3 + 0.4 / 3)
    table = reliability(probs, labels)
    assert len(table) == 15 and sum(b.count for b in table) == 3
    full = [b for b in table if b.count]
    assert [(b.count, b.accuracy) for b in full] == [(1, 1.0), (2, 0.5)]


def test_novelty_flags_far_points_not_training_like_ones():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(2, 64))
    train = np.concatenate([d + 0.3 * rng.normal(size=(300, 64)) for d in directions]).astype(np.float32)
    detector = fit_novelty(train, seed=0, max_references=200)
    like = np.concatenate([d + 0.3 * rng.normal(size=(100, 64)) for d in directions])
    unlike = rng.normal(size=(100, 64)) * 1.5
    assert detector.is_unlike(like).mean() < 0.05
    assert detector.is_unlike(unlike).mean() > 0.95
    # The threshold is the 99th percentile of leave-one-out distances: ~1% of training flagged.
    assert 0.0 < detector.is_unlike(train).mean() <= 0.03


def test_novelty_round_trips_through_model_file_parts():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(50, 16)).astype(np.float32)
    detector = fit_novelty(train, seed=3, max_references=20)
    again = NoveltyDetector.from_parts(detector.metadata(), detector.tensors())
    probe = rng.normal(size=(10, 16))
    assert np.allclose(again.distances(probe), detector.distances(probe), atol=2e-3)
    assert detector.references.shape == (20, 16)
    with pytest.raises(ValueError, match="method"):
        NoveltyDetector.from_parts({**detector.metadata(), "method": "magic"}, detector.tensors())
