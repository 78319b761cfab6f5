"""EfficientNet-Lite0: parity with the reference implementation, and the weights file checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from trainer.common.errors import FaceComicError
from trainer.features import efficientnet as backbone
from trainer.features.efficientnet import (
    EMBEDDING_SIZE,
    EfficientNetLite0,
    backbone_preprocess,
    load_backbone,
    load_weights,
    weights_path,
)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    return efficientnet.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(weights_path())
    ).eval()


@pytest.mark.parametrize("size", [224, 160])
def test_logits_match_the_reference_implementation(reference: torch.nn.Module, size: int):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.inference_mode():
        expected = reference(x)
        assert (load_weights()(x) - expected).abs().max().item() < 1e-4
        assert (load_backbone()(x) - expected).abs().max().item() < 1e-4  # BN folded


def test_embedding_is_the_pooled_head_before_the_classifier():
    model = load_backbone()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        features = model.embed(x)
        assert features.shape == (3, EMBEDDING_SIZE)
        assert torch.allclose(model.classifier(features), model(x))
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_loaded_once_per_process():
    assert load_backbone() is load_backbone("cpu")


def test_tampered_weights_are_rejected(tmp_path: Path):
    copy = tmp_path / "weights.pth"
    shutil.copyfile(weights_path(), copy)
    with copy.open("r+b") as handle:
        handle.seek(-10, 2)
        handle.write(b"0123456789")
    with pytest.raises(FaceComicError, match="SHA-256"):
        load_weights(copy)


def test_missing_weights_are_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(backbone, "WEIGHTS_FILE", "nothing-here.pth")
    with pytest.raises(FaceComicError, match="missing; reinstall"):
        weights_path()


def test_weights_are_found_in_a_pyinstaller_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bundled = tmp_path / backbone.WEIGHTS_PACKAGE / "models" / backbone.WEIGHTS_FILE
    bundled.parent.mkdir(parents=True)
    bundled.write_bytes(b"x")
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    assert weights_path() == bundled


def test_same_padding_matches_tf_for_odd_sizes():
    # TF "SAME": 7 -> 4 with stride 2 and kernel 3 pads 1 on the far side only.
    assert backbone._same_padding(7, 3, 2) == (1, 1)
    assert backbone._same_padding(8, 3, 2) == (0, 1)
    assert backbone._same_padding(14, 5, 2) == (1, 2)
    model = EfficientNetLite0().eval()
    with torch.inference_mode():
        assert model.embed(torch.zeros(1, 3, 57, 61)).shape == (1, EMBEDDING_SIZE)


def test_preprocess_is_the_tf_lite_normalisation():
    config = backbone_preprocess(192)
    assert config.size == 192
    assert config.mean == pytest.approx((127 / 255,) * 3)
    assert config.std == pytest.approx((128 / 255,) * 3)
