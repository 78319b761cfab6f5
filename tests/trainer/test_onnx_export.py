"""The ONNX export gives the app's calibrated probabilities with nothing but onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.conftest import REPO, SHARED
from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
from trainer.common.events import drain
from trainer.data.preprocess import decode_image
from trainer.data.synthetic import make_dataset
from trainer.export.cli import export_main
from trainer.export.onnx_export import export_onnx
from trainer.model.model_file import LoadedModel, load_model, save_model
from trainer.prediction.predictor import Predictor
from trainer.training.experiment import run_experiment

TOLERANCE = 1e-4


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def images_of(root: Path) -> list[Path]:
    return sorted(root.glob("faces/*"))[:3] + sorted(root.glob("comics/*"))[:2]


def assert_parity(loaded: LoadedModel, onnx_path: Path, files: list[Path]) -> np.ndarray:
    """onnxruntime on 5 images and on 1 (dynamic batch) against ``Predictor.probabilities``, and
    against ``Predictor.predict`` on the files."""
    pixels = np.stack([decode_image(f, loaded.preprocess) for f in files])
    expected = Predictor(loaded).probabilities(pixels)
    runner = session(onnx_path)
    (got,) = runner.run(["probabilities"], {"pixels": pixels})
    assert got.dtype == np.float32 and got.shape == (len(files), len(loaded.class_names))
    assert np.abs(got - expected).max() < TOLERANCE
    (one,) = runner.run(["probabilities"], {"pixels": pixels[:1]})
    assert one.shape == (1, len(loaded.class_names))
    assert np.abs(one - expected[:1]).max() < TOLERANCE
    # The whole app path from the files (the featurizer's lanes: onnxruntime for the backbone).
    predicted = Predictor(loaded).predict(files)
    whole = np.array([[p.probabilities[name] for name in loaded.class_names] for p in predicted])
    assert np.abs(whole - got).max() < TOLERANCE
    return got


def props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.fixture(scope="module")
def pixels_export(trained, tmp_path_factory):
    _, path, root = trained
    loaded = load_model(path)
    return loaded, export_onnx(loaded, tmp_path_factory.mktemp("onnx") / "pixels.onnx"), root


def test_pixels_model_matches_the_predictor(pixels_export):
    loaded, onnx_path, root = pixels_export
    assert loaded.feature_kind == "pixels" and loaded.temperature != 1.0
    assert_parity(loaded, onnx_path, images_of(root))


def test_metadata_tells_a_consumer_how_to_feed_the_model(pixels_export):
    loaded, onnx_path, _ = pixels_export
    meta = props(onnx_path)
    assert meta["facecomic.input_size"] == str(loaded.preprocess.size) == "24"
    assert json.loads(meta["facecomic.classes"]) == list(loaded.class_names)
    assert meta["facecomic.resample"] == loaded.preprocess.resample
    exported = json.loads(meta["facecomic.metadata"])
    # The scored holdout images (with their paths) stay behind; everything else travels.
    assert "evaluation" in loaded.metadata and "evaluation" not in exported
    assert exported == {k: v for k, v in loaded.metadata.items() if k != "evaluation"}
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model)
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [24, 24, 3]


def test_pretrained_model_matches_the_predictor(tmp_path: Path):
    root = make_dataset(tmp_path / "data", 10, seed=3)
    result = drain(
        run_experiment(
            root,
            config=TrainConfig(features="pretrained"),
            grid=GridSpec((0.1,), (3,)),
            decode=DecodeOptions(use_cache=False),
        )
    )
    loaded = load_model(save_model(tmp_path / "m.safetensors", result))
    onnx_path = export_onnx(loaded, tmp_path / "m.onnx")
    assert_parity(loaded, onnx_path, images_of(root))
    assert props(onnx_path)["facecomic.input_size"] == "160"
    assert props(onnx_path)["facecomic.resample"] == "bicubic"


def test_default_model_on_real_images(tmp_path: Path):
    samples = [SHARED / "data" / name for name in ("face2comics-sample", "diverse-sample")]
    if not all(s.is_dir() for s in samples):
        pytest.skip(f"the real samples in {SHARED} are not here")
    loaded = load_model(REPO / "assets" / "facecomic-default.safetensors")
    files = [f for s in samples for f in (sorted(s.glob("faces/*.jpg"))[:1] + sorted(s.glob("comics/*"))[:1])]
    assert len(files) == 4
    assert_parity(loaded, export_onnx(loaded, tmp_path / "default.onnx"), files)


def test_cli_exports_and_refuses_bad_input_in_one_line(trained, tmp_path: Path, capsys):
    _, model, _ = trained
    out = tmp_path / "m.onnx"
    assert export_main([str(model), str(out)]) == 0
    assert "Exported" in capsys.readouterr().out and session(out).get_inputs()[0].name == "pixels"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    assert export_main([str(bad), str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a valid FaceComic model" in err
    assert export_main([str(model), str(tmp_path / "missing" / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    assert not (tmp_path / "b.onnx").exists() and not (tmp_path / "missing").exists()
