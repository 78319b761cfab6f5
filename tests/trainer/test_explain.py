""" "Why?": the map points where the answer rests, lines up with the picture the user sees, goes
through any head, and the CLI writes both PNGs at the image's size without replacing a file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.pointing_bench import CANVAS, compose, passes
from tests.conftest import REPO
from trainer.model.model_file import load_model
from trainer.prediction.explain import (
    Explainer,
    ExplainSettings,
    pointing_score,
)

DEFAULT_MODEL = REPO / "assets" / "facecomic-default.safetensors"
TOP_LEFT = (0, 0, CANVAS // 2, CANVAS // 2)


@pytest.fixture(scope="module")
def default_explainer() -> Explainer:
    return Explainer(load_model(DEFAULT_MODEL))


def quadrant_head(size: int, quadrant: tuple[int, int]) -> nn.Module:
    """A pixel head whose answer rests only on one quadrant's pixels (its log-odds is their sum)."""
    head = nn.Linear(3 * size * size, 2)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        mask = torch.zeros(3, size, size)
        top, left = quadrant[0] * size // 2, quadrant[1] * size // 2
        mask[:, top : top + size // 2, left : left + size // 2] = 1.0
        head.weight[1] = mask.flatten()  # class 1's logit: the quadrant's normalised pixels
    return head.eval()


def test_a_constant_or_flipped_map_fails_the_pointing_check():
    rng = np.random.default_rng(0)
    heats, boxes = [], []
    for _ in range(20):
        quadrant = int(rng.integers(4))
        left, top = (quadrant % 2) * 50, (quadrant // 2) * 50
        heat = rng.random((100, 100)) * 0.1
        heat[top : top + 50, left : left + 50] += 1.0  # a map that does point at the box
        heats.append(heat)
        boxes.append((left, top, left + 50, top + 50))
    assert passes([pointing_score(h, b) for h, b in zip(heats, boxes, strict=True)])
    constant = [pointing_score(np.ones((100, 100)), b) for b in boxes]
    assert constant == pytest.approx([0.25] * 20) and not passes(constant)
    assert not passes([pointing_score(h[::-1, ::-1], b) for h, b in zip(heats, boxes, strict=True)])
    assert pointing_score(np.zeros((100, 100)), boxes[0]) == 0.0


def test_the_default_model_points_at_a_pasted_face(default_explainer: Explainer, shared_sample: Path):
    rng = np.random.default_rng(17)
    paths = [p for folder in ("faces", "comics") for p in sorted((shared_sample / folder).iterdir())[:8]]
    pictures = [compose(p, rng) for p in paths]
    heats = [default_explainer.explain(c.picture).heat_at((CANVAS, CANVAS)) for c in pictures]
    scores = [pointing_score(h, c.box) for h, c in zip(heats, pictures, strict=True)]
    assert passes(scores), scores
    # The same maps turned upside down (onto the opposite quadrant), or flattened, must fail.
    flipped = [pointing_score(h[::-1, ::-1], c.box) for h, c in zip(heats, pictures, strict=True)]
    assert not passes(flipped)
    assert not passes([pointing_score(np.ones_like(h), c.box) for h, c in zip(heats, pictures, strict=True)])


def test_a_pixel_map_rests_where_the_head_looks(trained):
    _, path, _ = trained
    loaded = load_model(path)
    size = loaded.preprocess.size
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    for quadrant, box in (((0, 0), (0, 0, 48, 48)), ((1, 1), (48, 48, 96, 96))):
        explainer = Explainer(dataclasses.replace(loaded, model=quadrant_head(size, quadrant)))
        explanation = explainer.explain(picture, class_index=1)
        assert explanation.settings == ExplainSettings("input", "gradient_x_input")
        assert pointing_score(explanation.heat_at(), box) > 0.95  # bilinear stretch blurs the edge


def test_an_exif_rotated_picture_gets_a_map_in_the_frame_shown(trained, tmp_path: Path):
    _, path, _ = trained
    loaded = load_model(path)
    size = loaded.preprocess.size
    explainer = Explainer(dataclasses.replace(loaded, model=quadrant_head(size, (0, 0))))
    stored = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)  # 60 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: 40 wide, 60 high
    file = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(file, exif=exif.tobytes())
    explanation = explainer.explain(file, class_index=1)
    assert explanation.image_size == (40, 60)
    heat = explanation.heat_at()
    assert heat.shape == (60, 40)
    assert pointing_score(heat, (0, 0, 20, 30)) > 0.9  # the top-left of the picture as shown


class _EnsembleHead(nn.Module):
    """Like issue 13's head: the log of K heads' averaged probabilities."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([h(x).softmax(dim=1) for h in self.heads]).mean(0)
        return probabilities.log()


def test_any_differentiable_head_is_explained_through(default_explainer: Explainer):
    loaded = default_explainer.loaded
    heads = [loaded.model]
    other = load_model(DEFAULT_MODEL).model
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(0.9)
    heads.append(other)
    ensemble = dataclasses.replace(loaded, model=_EnsembleHead(heads).eval())
    picture = compose(sorted((REPO / "assets").glob("*.png"))[0], np.random.default_rng(0)).picture
    explanation = Explainer(ensemble).explain(picture)
    assert np.isfinite(explanation.heat).all() and explanation.heat.max() == pytest.approx(1.0)
    with torch.no_grad():
        from trainer.common.cpu import CpuBudget
        from trainer.data.preprocess import decode_image
        from trainer.model.calibration import softmax

        embedding = loaded.featurizer.rows_from_pixels(
            decode_image(picture, loaded.preprocess)[None], budget=CpuBudget.all_cores()
        )
        logits = ensemble.model(torch.from_numpy(embedding)).numpy()
    assert explanation.probabilities == pytest.approx(softmax(logits, loaded.temperature)[0], abs=1e-4)


def test_every_layer_and_method_gives_a_map(default_explainer: Explainer):
    pixels = np.random.default_rng(2).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    for settings in (
        ExplainSettings("head", "gradcam"),
        ExplainSettings("blocks.4", "layercam", 0.06),
        ExplainSettings("input", "saliency"),
    ):
        heat, probabilities, explained = Explainer(default_explainer.loaded, settings).explain_pixels(pixels)
        assert heat.shape == (160, 160) and heat.min() >= 0.0 and heat.max() <= 1.0
        assert explained == int(np.argmax(probabilities))
    with pytest.raises(ValueError, match="does not apply"):
        ExplainSettings("blocks.4", "saliency")


def test_a_map_after_predictions_loaded_the_backbone(monkeypatch, default_explainer: Explainer):
    """Prediction loads the shared backbone inside ``inference_mode``; autograd must still run."""
    from trainer.features import efficientnet as backbone
    from trainer.prediction.predictor import Predictor

    monkeypatch.setattr(backbone, "_loaded", {})
    pixels = np.random.default_rng(4).integers(0, 256, (1, 160, 160, 3), dtype=np.uint8)
    probabilities = Predictor(default_explainer.loaded).probabilities(pixels)
    _, explained_probabilities, _ = default_explainer.explain_pixels(pixels[0])
    assert explained_probabilities == pytest.approx(probabilities[0], abs=1e-4)
