from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from trainer.cli import predict_main
from trainer.common import outputs
from trainer.common.errors import ModelFileError
from trainer.features.backbone_spec import WEIGHTS_SHA256
from trainer.model.model_file import FORMAT_VERSION, load_model, model_from_result, save_model
from trainer.prediction.predictor import Predictor

REQUIRED = {
    "format_version", "architecture", "class_names", "preprocess", "train_config", "grid",
    "grid_results", "best", "holdout", "seed", "split", "class_counts", "created", "package_version",
}  # fmt: skip


def test_round_trip_keeps_weights_metadata_and_predictions(trained):
    result, path, root = trained
    loaded = load_model(path)
    assert set(loaded.metadata) >= REQUIRED
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert loaded.class_names == ("comics", "faces")
    assert loaded.display_names == ("Comic", "Real face")
    assert loaded.preprocess == result.preprocess
    assert loaded.holdout == result.holdout
    assert loaded.grid_results == result.grid_results
    for name, tensor in result.state_dict.items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)
    images = sorted((root / "faces").iterdir())[:5]
    from_file = Predictor(loaded).predict(images)
    in_memory = Predictor(model_from_result(result)).predict(images)
    assert [p.probabilities for p in from_file] == [p.probabilities for p in in_memory]


def test_save_is_atomic(trained, tmp_path: Path, monkeypatch):
    result, _, _ = trained
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"previous model")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(target, result)
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_crafted_pickle_is_rejected_without_running(tmp_path: Path, writer: str):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(_Exploit(marker)))
    else:
        torch.save({"weights": _Exploit(marker)}, path)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="is not a valid FaceComic model"):
        load_model(path)
    assert not marker.exists()


def _safetensors_with(tmp_path: Path, metadata: dict | None, tensors=None) -> Path:
    path = tmp_path / "x.safetensors"
    tensors = tensors or {"w": torch.zeros(2)}
    save_file(tensors, path, metadata=None if metadata is None else {"facecomic": json.dumps(metadata)})
    return path


def test_bad_files_give_one_sentence(trained, tmp_path: Path):
    _, good, _ = trained
    meta = load_model(good).metadata
    cases = {
        "random bytes": (tmp_path / "r.safetensors", b"\x00\x01garbage" * 10),
        "empty": (tmp_path / "e.safetensors", b""),
    }
    for path, content in cases.values():
        path.write_bytes(content)
    expectations = [
        (cases["random bytes"][0], "is not a safetensors file"),
        (cases["empty"][0], "too short"),
        (_safetensors_with(tmp_path, None), "without FaceComic metadata"),
        (tmp_path / "missing.safetensors", "does not exist"),
        (tmp_path, "is a folder"),
    ]
    for path, expected in expectations:
        with pytest.raises(ModelFileError, match=expected) as info:
            load_model(path)
        assert "\n" not in str(info.value)
        assert str(path) in str(info.value)
    newer = _safetensors_with(tmp_path, {**meta, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(ModelFileError, match="newer than this app"):
        load_model(newer)
    wrong_shapes = _safetensors_with(tmp_path, meta, {"layers.0.weight": torch.zeros(3, 3)})
    with pytest.raises(ModelFileError, match="do not match the architecture"):
        load_model(wrong_shapes)


def test_saved_files_get_normal_permissions(trained, tmp_path: Path):
    import os

    result, _, _ = trained
    mask = os.umask(0)
    os.umask(mask)
    path = save_model(tmp_path / "m.safetensors", result)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    path.chmod(0o640)
    save_model(path, result)
    assert path.stat().st_mode & 0o777 == 0o640


def test_damaged_metadata_is_refused_at_load(trained, tmp_path: Path):
    _, good, _ = trained
    meta = load_model(good).metadata
    tensors = load_model(good).tensors()
    cases = [
        ({**meta, "architecture": "mlp"}, "lacks a valid 'architecture'"),
        (
            {**meta, "architecture": {**meta["architecture"], "name": "cnn"}},
            "architecture is not one this app can build",
        ),
        (
            {**meta, "preprocess": {**meta["preprocess"], "resample": "magic"}},
            "preprocessing settings are invalid",
        ),
        ({**meta, "preprocess": {**meta["preprocess"], "mean": [0.5]}}, "preprocessing settings are invalid"),
        ({**meta, "holdout": {"accuracy": 0.9}}, "metadata is damaged"),
        ({**meta, "class_names": ["only one"]}, "class names do not match"),
    ]
    for metadata, expected in cases:
        path = _safetensors_with(tmp_path, metadata, tensors)
        with pytest.raises(ModelFileError, match=expected):
            load_model(path)


def _crafted(trained, tmp_path: Path, *, meta_change=None, tensor_change=None) -> Path:
    """The trained model's file with its metadata and/or tensors changed."""
    _, good, _ = trained
    loaded = load_model(good)
    meta = json.loads(json.dumps(loaded.metadata))
    tensors = {k: v.clone() for k, v in loaded.tensors().items()}
    if meta_change:
        meta_change(meta)
    if tensor_change:
        tensor_change(tensors)
    return _safetensors_with(tmp_path, meta, tensors)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(meta):
        for key in keys[:-1]:
            meta = meta[key]
        meta[keys[-1]] = value

    return change


def _nan(tensors):
    tensors["weights.1"][0, 3, 5] = float("nan")


def _inf(tensors):
    tensors["biases.2"][0, 0] = float("-inf")


def _float64(tensors):
    tensors["biases.0"] = tensors["biases.0"].double()


def _extra(tensors):
    tensors["weights.3"] = torch.zeros(1, 2, 2)


def _drop_preprocess_key(meta):
    del meta["preprocess"]["resample"]


@pytest.mark.parametrize(
    ("meta_change", "tensor_change", "reason"),
    [
        (
            _set("architecture", "hidden_sizes", [1_000_000_000]),
            None,
            "its architecture's hidden size is 1000000000, not a whole number from 1 to 65,536",
        ),
        (
            _set("architecture", "hidden_sizes", [65_536, 65_536]),
            None,
            "its architecture has 4,408,475,650 weights, far more than any FaceComic model",
        ),
        (
            _set("architecture", "hidden_sizes", [128] * 5),
            None,
            "its architecture's hidden_sizes must be a list of at most 4 sizes",
        ),
        (_set("architecture", "hidden_sizes", [128, True]), None, "its architecture's hidden size is True"),
        (_set("architecture", "num_classes", 1), None, "its architecture's num_classes is 1"),
        (_set("architecture", "dropout", 0.5), None, "its architecture has an unknown field 'dropout'"),
        (
            _set("architecture", "input_size", 3 * 32 * 32),
            None,
            "its architecture takes 3,072 inputs, but its features give 1,728 values per image",
        ),
        (
            _set("architecture", "hidden_sizes", [64, 128]),
            None,
            "the weights do not match the architecture it declares ('weights.0' has shape "
            "[1, 128, 1728], not [1, 64, 1728])",
        ),
        (
            None,
            _extra,
            "the weights do not match the architecture it declares (unexpected tensor 'weights.3')",
        ),
        (
            None,
            _float64,
            "the weights do not match the architecture it declares ('biases.0' is stored as F64, not F32)",
        ),
        (None, _nan, "the weights in 'weights.1' include NaN or infinite values"),
        (None, _inf, "the weights in 'biases.2' include NaN or infinite values"),
        (
            _set("preprocess", "grayscale", True),
            None,
            "its preprocessing settings are invalid (unknown setting 'grayscale')",
        ),
        (_drop_preprocess_key, None, "its preprocessing settings are invalid (missing setting 'resample')"),
        (
            _set("preprocess", "mean", [0.5, float("nan"), 0.5]),
            None,
            "its preprocessing settings are invalid (mean must be three finite numbers",
        ),
        (_set("class_names", ["faces", "faces"]), None, "its class names repeat (faces, faces)"),
        (_set("class_names", ["faces", " "]), None, "its class names must be non-empty text"),
        (
            _set("class_names", ["faces\t0.99", "comics"]),
            None,
            "its class names contain control characters (faces\\t0.99, comics)",
        ),
        (
            _set("class_names", ["\x1b[31mfaces", "comics\r\n"]),
            None,
            "its class names contain control characters (\\x1b[31mfaces, comics\\r\\n)",
        ),
        (
            _set(
                "features",
                {"kind": "pretrained", "backbone": "efficientnet-lite0", "weights_sha256": "0" * 64},
            ),
            None,
            "it was trained on other backbone weights (SHA-256 000000000…0000000000, this app's are "
            "579344248a93…)",
        ),
        (
            _set("features", {"kind": "pretrained", "backbone": "efficientnet-lite0"}),
            None,
            "it does not record the SHA-256 of the backbone weights it was trained on",
        ),
        (
            _set(
                "features",
                {
                    "kind": "pretrained",
                    "backbone": "efficientnet-lite0",
                    "weights_sha256": WEIGHTS_SHA256,
                    "precision": "int8",
                },
            ),
            None,
            "it needs the int8 backbone, which is not built here",
        ),
    ],
)
def test_crafted_model_files_give_one_sentence(
    trained, tmp_path: Path, capsys, meta_change, tensor_change, reason
):
    path = _crafted(trained, tmp_path, meta_change=meta_change, tensor_change=tensor_change)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a valid FaceComic model: {reason}"), message
    assert message.endswith(".") and "\n" not in message
    assert predict_main(["--model", str(path), str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"facecomic-predict: error: {message}\n"


def test_an_untouched_crafted_copy_still_loads(trained, tmp_path: Path):
    """The crafting above changes only what each case says: the unchanged copy is valid."""
    path = _crafted(trained, tmp_path)
    assert load_model(path).class_names == ("comics", "faces")


def test_a_model_file_from_before_ensembles_loads_as_one_head_and_predicts_the_same(trained, tmp_path: Path):
    """Format 2 stored one MLP as ``layers.{2i}.weight`` with no ``heads``: it still loads, as an
    ensemble of one, and answers exactly as the same weights stored the new way."""
    _, good, root = trained
    current = load_model(good)
    meta = json.loads(json.dumps(current.metadata))
    del meta["architecture"]["heads"]
    meta["format_version"] = 2
    tensors = {
        k: v.clone() for k, v in current.tensors().items() if not k.startswith(("weights.", "biases."))
    }
    for i, (w, b) in enumerate(zip(current.model.weights, current.model.biases, strict=True)):
        tensors[f"layers.{2 * i}.weight"] = w[0].detach().clone()
        tensors[f"layers.{2 * i}.bias"] = b[0].detach().clone()
    legacy = load_model(_safetensors_with(tmp_path, meta, tensors))
    assert legacy.heads == 1
    images = sorted((root / "comics").iterdir())[:4]
    assert [p.probabilities for p in Predictor(legacy).predict(images)] == [
        p.probabilities for p in Predictor(current).predict(images)
    ]
    resaved = load_model(save_model(tmp_path / "resaved.safetensors", legacy))  # now the new form
    assert (
        resaved.metadata["format_version"] == FORMAT_VERSION
        and resaved.metadata["architecture"]["heads"] == 1
    )


def test_an_ensemble_round_trips_with_its_class_prior_and_scorer(tmp_path: Path):
    from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
    from trainer.common.events import drain
    from trainer.data.synthetic import make_dataset
    from trainer.training.experiment import run_experiment

    root = make_dataset(tmp_path / "data", 12, seed=3)
    for extra in range(4):  # 12 faces against 8 comics: a prior to balance
        (root / "comics" / f"{extra}.png").unlink()
    result = drain(
        run_experiment(
            root, config=TrainConfig(features="pixels", heads=3, class_prior="balanced"),
            grid=GridSpec((0.05,), (2,)), decode=DecodeOptions(use_cache=False),
        )
    )  # fmt: skip
    loaded = load_model(save_model(tmp_path / "m.safetensors", result))
    assert loaded.heads == 3 and loaded.metadata["architecture"]["heads"] == 3
    assert loaded.model.has_offset and loaded.metadata["class_prior"]["method"] == "balanced"
    torch.testing.assert_close(loaded.model.offset, torch.tensor(result.class_offset))
    images = sorted((root / "faces").iterdir())[:5]
    assert [p.probabilities for p in Predictor(loaded).predict(images)] == [
        p.probabilities for p in Predictor(model_from_result(result)).predict(images)
    ]


def test_a_huge_name_in_damaged_metadata_is_shortened(trained, tmp_path: Path, capsys):
    """A KeyError on a crafted 10,000-character class name is one short sentence, not 10 KB."""
    path = _crafted(trained, tmp_path, meta_change=_set("class_names", ["c" * 10_000, "faces"]))
    with pytest.raises(ModelFileError, match=r"its metadata is damaged \('ccc") as info:
        load_model(path)
    assert len(str(info.value)) < 300 and "…" in str(info.value)
    assert predict_main(["--model", str(path), str(tmp_path)]) == 2
    assert len(capsys.readouterr().err) < 350


def test_a_fifo_named_like_a_model_is_refused_without_waiting(tmp_path: Path):
    import os

    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match=r"m\.safetensors is not a model file: it is not a regular file"):
        load_model(fifo)
