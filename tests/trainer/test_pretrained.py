"""The pretrained path end to end on tiny synthetic images: features, head, calibration, novelty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.trainer.helpers import collect
from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
from trainer.data.synthetic import make_dataset
from trainer.features.efficientnet import BACKBONE_NAME, EMBEDDING_SIZE
from trainer.model.model_file import load_model, save_model
from trainer.prediction.predictor import Predictor
from trainer.training import events as ev
from trainer.training.experiment import run_experiment

GRID = GridSpec((0.1,), (5, 10))


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("pre") / "data", 24, seed=4)
    cache = DecodeOptions(cache_dir=tmp_path_factory.mktemp("cache"))
    # Module-scoped, so it runs before the per-test cache fixture: give it its own cache.
    events, result = collect(
        run_experiment(root, config=TrainConfig(features="pretrained"), grid=GRID, decode=cache)
    )
    path = save_model(root.parent / "m.safetensors", result)
    return root, events, result, path, cache


def test_pretrained_run_extracts_features_once_and_records_them(pretrained_run):
    root, events, result, _, cache = pretrained_run
    progressed = [e for e in events if isinstance(e, ev.FeaturesProgressed)]
    finished = [e for e in events if isinstance(e, ev.FeaturesFinished)]
    assert finished[0].description == "EfficientNet-Lite0 embeddings"
    assert progressed[-1].done == progressed[-1].total == 48 and len(finished) == 1
    assert finished[0].extracted == 48 and finished[0].unreadable == ()
    assert result.architecture["input_size"] == EMBEDDING_SIZE
    assert result.features == {
        "kind": "pretrained",
        "backbone": BACKBONE_NAME,
        "weights_sha256": result.features["weights_sha256"],
        "embedding_size": EMBEDDING_SIZE,
        "precision": "fp32",
    }
    assert len(result.features["weights_sha256"]) == 64
    assert result.preprocess.size == 160
    # Separable synthetic classes: the frozen ImageNet features tell them apart outright.
    assert result.holdout.accuracy == 1.0
    # A second run reads every embedding from the cache.
    again, _ = collect(
        run_experiment(root, config=TrainConfig(features="pretrained"), grid=GRID, decode=cache)
    )
    assert next(e for e in again if isinstance(e, ev.FeaturesFinished)).from_cache == 48


def test_saved_pretrained_model_predicts_like_the_run(pretrained_run, tmp_path: Path):
    root, _, result, path, _ = pretrained_run
    loaded = load_model(path)
    assert loaded.feature_kind == "pretrained" and loaded.temperature == pytest.approx(result.temperature)
    assert loaded.novelty is not None and loaded.novelty.references.shape[1] == EMBEDDING_SIZE
    files = sorted((root / "faces").glob("*.png"))[:4] + sorted((root / "comics").glob("*.png"))[:4]
    predictions = Predictor(loaded).predict(files)
    assert [p.label for p in predictions] == ["faces"] * 4 + ["comics"] * 4
    assert all(p.flag == "" for p in predictions)  # training-like images are not flagged


def test_pictures_that_are_not_faces_are_flagged(pretrained_run, tmp_path: Path):
    _, _, _, path, _ = pretrained_run
    odd = []
    for text in ["Invoice 4411", "MEETING 3PM", "x = 42"]:
        image = Image.new("RGB", (160, 120), "white")
        ImageDraw.Draw(image).text((10, 50), text, fill="black")
        odd.append(image)
    rng = np.random.default_rng(0)
    odd.append(Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)))
    predictions = Predictor(load_model(path)).predict(odd)
    assert [p.flag for p in predictions] == ["not a face"] * 4  # the first of the flags that apply
    assert all(p.label in ("comics", "faces") for p in predictions)  # still answers, but says so
    scorer = load_model(path).face_likeness
    assert scorer is not None and scorer.threshold <= 0.0


def test_the_shipped_non_face_embeddings_are_those_the_generator_gives_now():
    """``assets/`` holds the default settings' non-face embeddings, so a first run need not
    compute them; named by the generator, the weights and the preprocessing, and equal to a fresh
    computation (else: ``make model`` writes them again)."""
    from trainer.common.assets import assets_dir
    from trainer.common.configs import TrainConfig
    from trainer.common.cpu import CpuBudget
    from trainer.features.non_face_rows import cached_non_face_rows, compute_non_face_rows, non_face_file_name
    from trainer.features.registry import featurizer_for

    featurizer = featurizer_for(TrainConfig().features)  # the default settings
    shipped = assets_dir() / non_face_file_name(featurizer)
    assert shipped.is_file(), f"{shipped.name} is missing from assets/; run make model"
    read, from_file = cached_non_face_rows(featurizer, options=DecodeOptions(use_cache=False))
    assert from_file
    fresh = compute_non_face_rows(featurizer, CpuBudget.all_cores())
    np.testing.assert_allclose(read, fresh, atol=1e-4, rtol=0)
