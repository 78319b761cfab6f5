"""The real face2comics sample from ../shared (skipped without it, except under CI=true)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.helpers import collect
from trainer.common.configs import PAPER_GRID, GridSpec, TrainConfig
from trainer.training import events as ev
from trainer.training.experiment import run_experiment


@pytest.fixture(scope="module")
def _sample_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-sample-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(_sample_cache: Path, monkeypatch):
    """One decode and feature cache for this module's runs on the same 413 images (still never
    the user's): the sample is decoded and its features extracted once, not once a test. A
    cache hit gives the same arrays as a miss (test_cache_damage.py, test_pretrained.py)."""
    monkeypatch.setenv("FACECOMIC_CACHE_DIR", str(_sample_cache))


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
    assert right / len(predictions) >= 0.82  # 0.846 measured (seed 0); the pixel MLP gets 0.39
    # "Not a face" only where the scorer finds a picture more like its non-faces: never a photo.
    assert not any(p.flag == "not a face" for p in predictions if "/faces/" in p.source)


def test_a_generated_non_face_is_flagged_and_a_real_face_is_not(shared_sample: Path):
    """The "not a face" scorer on pictures it never trained on: generator pictures of another
    seed than the training negatives, and the real faces and comics of face2comics' holdout."""
    from trainer.data.non_faces import NEGATIVES_SEED, non_face_pictures
    from trainer.model.model_file import model_from_result
    from trainer.prediction.predictor import Predictor

    _, result = collect(run_experiment(shared_sample, grid=GridSpec((0.1,), (10,))))
    predictor = Predictor(model_from_result(result))
    pictures = non_face_pictures(20, seed=NEGATIVES_SEED + 1)
    flags = [p.flag for p in predictor.predict(pictures)]
    assert flags.count("not a face") >= 18, flags
    holdout = [shared_sample / image.path for image in result.holdout_images]
    assert not any(p.flag == "not a face" for p in predictor.predict(holdout))
    assert result.holdout.not_a_face_fraction == 0.0
