"""The real face2comics sample from ../shared (skipped without it, except under CI=true)."""

from __future__ import annotations

from pathlib import Path

from tests.trainer.helpers import collect
from trainer.common import events as ev
from trainer.common.configs import PAPER_GRID, GridSpec, TrainConfig
from trainer.training.experiment import run_experiment


def test_random_split_reaches_085_on_the_holdout(shared_sample: Path):
    # The paper's 5-epoch grid under-trains on 413 images; 50 epochs at lr 0.01 does not.
    events, result = collect(
        run_experiment(
            shared_sample,
            config=TrainConfig(features="pixels", split="random", seed=0),
            grid=GridSpec((0.01,), (20, 50)),
        )
    )
    assert result.counts == (84, 329)
    assert result.holdout.accuracy >= 0.85, result.holdout
    split = next(e for e in events if isinstance(e, ev.SplitMade))
    assert split.counts == ((42, 164), (16, 65), (26, 100))


def test_paper_grid_runs_on_the_paper_split(shared_sample: Path):
    _, result = collect(
        run_experiment(shared_sample, config=TrainConfig(features="pixels", split="paper"), grid=PAPER_GRID)
    )
    assert len(result.grid_results) == 6
    assert sum(map(sum, result.split_counts)) == 413


def test_pretrained_default_generalises_to_other_sources(shared_sample: Path):
    """Trained on face2comics alone, right on most of diverse-sample: the point of pretrained."""
    from trainer.model.model_file import model_from_result
    from trainer.prediction.predictor import Predictor

    _, result = collect(run_experiment(shared_sample))  # the defaults: pretrained, random split
    assert result.features["kind"] == "pretrained"
    assert result.holdout.accuracy >= 0.97, result.holdout
    assert result.holdout.ece is not None and result.holdout.ece < 0.05
    diverse = shared_sample.parent / "diverse-sample"
    predictions = Predictor(model_from_result(result)).predict(
        sorted((diverse / "faces").glob("*.jpg")) + sorted((diverse / "comics").glob("*.jpg"))
    )
    right = sum(("/faces/" in p.source) == (p.label == "faces") for p in predictions)
    assert len(predictions) == 460
    assert right / len(predictions) >= 0.78  # 0.80 measured; the pixel MLP gets 0.39
