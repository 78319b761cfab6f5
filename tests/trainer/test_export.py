from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from trainer import __version__
from trainer.prediction.export import UNSAVED_MODEL_NOTE, csv_sidecar, write_predictions_csv
from trainer.prediction.predictor import Prediction


def test_sidecar_of_an_unsaved_model_says_so():
    sidecar = csv_sidecar(None, 3, now=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))
    assert sidecar == {
        "model": {"file": None, "sha256": None, "note": UNSAVED_MODEL_NOTE},
        "facecomic_version": __version__,
        "created": "2024-05-06T07:08:09Z",
        "rows": 3,
        "columns": ["path", "label", "confidence", "flag", "error"],
        "excel_safe": False,
    }


def test_sidecar_of_a_model_file_that_is_gone_keeps_the_name(tmp_path: Path):
    model = csv_sidecar(tmp_path / "gone.safetensors", 0)["model"]
    assert model["file"] == "gone.safetensors" and model["sha256"] is None
    assert model["note"].startswith("could not read the model file")


def test_csv_and_sidecar_are_written_side_by_side(tmp_path: Path):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"not really a model")
    out = tmp_path / "out.csv"
    made = [Prediction("a.png", "faces", "Real face", 0.9, {"faces": 0.9, "comics": 0.1})]
    assert write_predictions_csv(out, made, model) == tmp_path / "out.csv.json"
    assert out.read_text().splitlines()[0] == "path,label,confidence,flag,error"
    sidecar = json.loads((tmp_path / "out.csv.json").read_text())
    assert sidecar["model"] == {
        "file": "m.safetensors",
        "sha256": hashlib.sha256(b"not really a model").hexdigest(),
    }
    assert sidecar["rows"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.safetensors",
        "out.csv",
        "out.csv.json",
    ]  # no temp files
