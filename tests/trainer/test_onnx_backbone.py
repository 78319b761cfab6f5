"""The backbone on onnxruntime: parity with PyTorch, the cached file (written once, rebuilt when
damaged, never trusted), single-threaded sessions, the PyTorch fallback, and the precision a model
records."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.cpu import CpuBudget
from trainer.common.errors import FaceComicError
from trainer.common.events import drain
from trainer.data.synthetic import make_dataset
from trainer.features import onnx_backbone
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.efficientnet import EMBEDDING_SIZE, backbone_preprocess
from trainer.features.registry import for_model

PARITY = 1e-4  # onnxruntime fp32 against the PyTorch backbone, per embedding value (measured ~5e-6)
BUDGET = CpuBudget(lanes=2, decode_workers=2)


def pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


_exported: dict[PreprocessConfig, bytes] = {}
_export = onnx_backbone.export_fp32


def _export_once(preprocess: PreprocessConfig) -> bytes:
    """The real export, once per setting for this module: a rebuild still writes and loads it."""
    if preprocess not in _exported:
        _exported[preprocess] = _export(preprocess)
    return _exported[preprocess]


@pytest.fixture
def own_sessions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache folder of this test's own and no sessions loaded before it (the process's others
    come back afterwards, so later tests do not export again)."""
    monkeypatch.setattr(onnx_backbone, "_sessions", {})
    monkeypatch.setattr(onnx_backbone, "export_fp32", _export_once)
    cache = tmp_path / "cache"
    monkeypatch.setenv("FACECOMIC_CACHE_DIR", str(cache))
    return cache


@pytest.mark.parametrize("size", [160, 64])
def test_onnxruntime_embeddings_equal_the_pytorch_backbone(size: int):
    images = pixels(6, size, seed=size)
    config = backbone_preprocess(size)
    fast = BackboneFeaturizer(config)
    assert fast.runtime_name == "onnxruntime"
    got = fast.rows_from_pixels(images, budget=BUDGET, batch_size=4)  # a full batch and a short one
    expected = BackboneFeaturizer(config, runtime="torch").rows_from_pixels(images, budget=BUDGET)
    assert got.shape == (6, EMBEDDING_SIZE) and got.dtype == np.float32
    assert np.abs(got - expected).max() < PARITY
    assert np.abs(expected).max() > 1  # real embeddings, not zeros on both sides


def test_extraction_on_lanes_equals_pytorch_and_leaves_torch_threads_alone(tmp_path: Path):
    root = make_dataset(tmp_path / "data", 6)
    paths = sorted(root.rglob("*.png"))
    config = backbone_preprocess(64)
    before = torch.get_num_threads()
    options = DecodeOptions(use_cache=False)
    fast = drain(BackboneFeaturizer(config).extract(paths, options=options, budget=BUDGET))
    slow = drain(BackboneFeaturizer(config, runtime="torch").extract(paths, options=options, budget=BUDGET))
    assert len(fast.rows) == len(paths) and np.abs(fast.rows - slow.rows).max() < PARITY
    assert torch.get_num_threads() == before
    session = BackboneFeaturizer(config).ort_backbone().session
    assert session.get_session_options().intra_op_num_threads == 1  # lanes are the parallelism


def test_exported_once_then_read_from_the_cache_folder(own_sessions: Path, monkeypatch: pytest.MonkeyPatch):
    config = backbone_preprocess(48)
    first = BackboneFeaturizer(config).ort_backbone()
    path = first.path
    assert path.parent == own_sessions / "backbones" and path.name.endswith(".onnx")
    assert "-48-fp32-" in path.name and Path(f"{path}.sha256").is_file()
    assert BackboneFeaturizer(config).ort_backbone() is first  # one session per process

    onnx_backbone.forget_sessions()
    monkeypatch.setattr(onnx_backbone, "export_fp32", _no_export)
    again = BackboneFeaturizer(config).ort_backbone()  # a new process would read the file
    assert again is not first and again.path == path
    images = pixels(2, 48)
    assert np.array_equal(again.embed(images), first.embed(images))


def _no_export(*_args):
    raise AssertionError("exported again although a healthy file was cached")


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a weight changed: still a loadable model, but not ours
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _drop_checksum(path: Path) -> None:
    Path(f"{path}.sha256").unlink()


def _garbage(path: Path) -> None:
    path.write_bytes(b"not an onnx file")
    Path(f"{path}.sha256").write_text("0" * 64)


@pytest.mark.parametrize("damage", [_flip_byte, _truncate, _drop_checksum, _garbage])
def test_a_damaged_cached_file_is_rebuilt_not_trusted(
    own_sessions: Path, damage, caplog: pytest.LogCaptureFixture
):
    config = backbone_preprocess(48)
    images = pixels(3, 48, seed=1)
    expected = BackboneFeaturizer(config, runtime="torch").rows_from_pixels(images, budget=BUDGET)
    path = BackboneFeaturizer(config).ort_backbone().path
    healthy = path.read_bytes()
    damage(path)
    onnx_backbone.forget_sessions()
    with caplog.at_level(logging.WARNING, logger=onnx_backbone.__name__):
        rebuilt = BackboneFeaturizer(config).rows_from_pixels(images, budget=BUDGET)
    assert np.abs(rebuilt - expected).max() < PARITY
    assert "could not be used" in caplog.text and "it was rebuilt" in caplog.text
    data, problem = onnx_backbone.read_verified(path)  # healthy again on disk
    assert problem is None and len(data) == len(healthy)


def test_an_unwritable_cache_folder_only_costs_the_export(
    own_sessions: Path, caplog: pytest.LogCaptureFixture
):
    own_sessions.mkdir()
    (own_sessions / "backbones").write_text("a file where the folder should be")
    config = backbone_preprocess(48)
    with caplog.at_level(logging.WARNING, logger=onnx_backbone.__name__):
        featurizer = BackboneFeaturizer(config)
        rows = featurizer.rows_from_pixels(pixels(2, 48), budget=BUDGET)
    assert featurizer.runtime_name == "onnxruntime" and rows.shape == (2, EMBEDDING_SIZE)
    assert "Could not write the cached backbone" in caplog.text


def test_without_onnxruntime_pytorch_runs_and_the_log_says_so_once(
    own_sessions: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    images = pixels(2, 48)
    config = backbone_preprocess(48)
    expected = BackboneFeaturizer(config, runtime="torch").rows_from_pixels(images, budget=BUDGET)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    monkeypatch.setattr(onnx_backbone, "_said_missing", False)
    with caplog.at_level(logging.WARNING, logger=onnx_backbone.__name__):
        for _ in range(2):
            featurizer = BackboneFeaturizer(config)
            rows = featurizer.rows_from_pixels(images, budget=BUDGET)
            assert featurizer.runtime_name == "torch"
            assert np.array_equal(rows, expected)
    assert caplog.text.count("onnxruntime is not installed") == 1
    assert not (own_sessions / "backbones").exists()
    with pytest.raises(ValueError, match="onnxruntime is not installed"):
        BackboneFeaturizer(config, runtime="onnxruntime").ort_backbone()


def test_int8_is_never_exported_here(own_sessions: Path):
    with pytest.raises(FaceComicError, match="int8 backbone is not built here"):
        BackboneFeaturizer(backbone_preprocess(48), precision="int8").ort_backbone()


def test_a_model_is_served_only_with_the_precision_its_head_was_trained_on(own_sessions: Path):
    config = backbone_preprocess(160)
    fp32 = BackboneFeaturizer(config)
    identity = fp32.identity
    assert identity["precision"] == "fp32"
    assert for_model(identity, config).precision == "fp32"
    # Files from before the field were trained on fp32 (PyTorch) embeddings.
    older = {k: v for k, v in identity.items() if k != "precision"}
    assert for_model(older, config).precision == "fp32"
    with pytest.raises(ValueError, match="trained on 'int8' backbone embeddings, and these are fp32"):
        fp32.check_identity({**identity, "precision": "int8"})
    with pytest.raises(ValueError, match="it needs the int8 backbone, which is not built here"):
        for_model({**identity, "precision": "int8"}, config)
    with pytest.raises(ValueError, match="precision 'fp16'; this app computes fp32, int8"):
        for_model({**identity, "precision": "fp16"}, config)


def test_when_onnxruntime_fails_here_pytorch_runs_instead(
    own_sessions: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def broken_export(_preprocess):
        raise RuntimeError("the exporter broke")

    monkeypatch.setattr(onnx_backbone, "export_fp32", broken_export)
    images = pixels(2, 48)
    config = backbone_preprocess(48)
    with caplog.at_level(logging.WARNING, logger=onnx_backbone.__name__):
        featurizer = BackboneFeaturizer(config)
        rows = featurizer.rows_from_pixels(images, budget=BUDGET)
        assert featurizer.runtime_name == "torch"
        assert BackboneFeaturizer(config).runtime_name == "torch"  # tried once per process
    expected = BackboneFeaturizer(config, runtime="torch").rows_from_pixels(images, budget=BUDGET)
    assert np.array_equal(rows, expected)
    assert caplog.text.count("onnxruntime could not run the backbone (RuntimeError: the exporter broke)") == 1
