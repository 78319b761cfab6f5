from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.trainer.helpers import collect
from trainer.common.configs import DecodeOptions
from trainer.data.dataset import scan_dataset
from trainer.data.synthetic import comic_like
from trainer.features.pixels import PixelFeaturizer
from trainer.prediction.predictor import Predictor


def test_predicts_paths_and_images_with_an_error_per_item(trained, tmp_path: Path):
    _, path, root = trained
    predictor = Predictor.from_file(path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    items = [root / "faces" / "0.png", comic_like(np.random.default_rng(9)), bad, tmp_path / "missing.jpg"]
    results = predictor.predict(items)
    assert [r.ok for r in results] == [True, True, False, False]
    assert results[2].error == "not a readable image (unknown format or corrupt header)"
    assert results[3].error == "the file does not exist"
    for r in results[:2]:
        assert list(r.probabilities) == ["comics", "faces"]
        assert r.label == max(r.probabilities, key=r.probabilities.get)
        assert r.display_label == {"comics": "Comic", "faces": "Real face"}[r.label]
        assert sum(r.probabilities.values()) == pytest.approx(1.0)
        assert r.confidence == r.probabilities[r.label] > 0.5
    alone = predictor.predict([root / "faces" / "0.png"]) + predictor.predict(
        [comic_like(np.random.default_rng(9))]
    )
    assert [r.label for r in results[:2]] == [p.label for p in alone]
    assert [r.confidence for r in results[:2]] == pytest.approx([p.confidence for p in alone], abs=1e-6)
    assert [r.label for r in results[2:]] == [None, None] and results[2].confidence is None
    assert results[0].source == str(root / "faces" / "0.png")


def test_batches_do_not_change_results(trained):
    _, path, root = trained
    predictor = Predictor.from_file(path)
    images = sorted((root / "comics").iterdir())
    one_go = predictor.predict(images, batch_size=256)
    batched = list(predictor.predict_batches(images, batch_size=5))
    assert [len(b) for b in batched] == [5, 5, 5, 5, 4]
    flat = [p for b in batched for p in b]
    assert [(p.source, p.label) for p in flat] == [(p.source, p.label) for p in one_go]
    # Same inputs; only BLAS blocking differs with the batch shape.
    assert [p.confidence for p in flat] == pytest.approx([p.confidence for p in one_go], abs=1e-6)


def test_training_and_prediction_share_preprocessing(trained):
    """What the model saw in training equals what prediction feeds it, for the same file."""
    result, path, root = trained
    predictor = Predictor.from_file(path)
    files = [p for f in scan_dataset(root).files for p in f][:6]
    _, features = collect(
        PixelFeaturizer(result.preprocess).extract(files, options=DecodeOptions(use_cache=False))
    )
    with torch.inference_mode():
        logits = predictor.loaded.model(torch.from_numpy(features.rows))
        training_view = torch.softmax(logits / predictor.loaded.temperature, 1)  # calibrated
    predicted = predictor.predict(files)
    assert np.allclose([list(p.probabilities.values()) for p in predicted], training_view.numpy(), atol=1e-6)


def test_pil_image_in_other_modes(trained):
    _, path, _ = trained
    predictor = Predictor.from_file(path)
    results = predictor.predict(
        [
            Image.new("RGBA", (50, 50), (0, 0, 0, 0)),
            Image.new("L", (10, 10), 77),
            comic_like(np.random.default_rng(3)),
        ]
    )
    same = predictor.predict(
        [Image.new("RGB", (50, 50), (255, 255, 255)), Image.new("RGB", (10, 10), (77, 77, 77))]
    )
    # Transparent composites on white, grey becomes three equal channels: the same model input.
    assert [r.probabilities for r in results[:2]] == [s.probabilities for s in same]
    assert results[0].probabilities != results[1].probabilities != results[2].probabilities
