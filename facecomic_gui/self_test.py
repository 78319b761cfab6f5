"""``facecomic --self-test``: prove an installation (packaged or not) works end to end, offscreen,
with nothing from outside it: the bundled model predicts, the app's own training path (worker
thread, decode pool, automatic save) trains and saves a model that loads again, and the window
opens and closes. Training uses the default pretrained features, so it also proves the bundled
EfficientNet-Lite0 weights load and pass their checksum, and that onnxruntime runs the backbone
(exported at first use into the self-test's own cache folder). Prints a JSON summary; on failure exits 1 and names the step that failed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trainer import __version__
from trainer.common.configs import TrainConfig

SELF_TEST_IMAGES_PER_CLASS = 20  # 40 files: more than one decode chunk, so the decode pool really runs
SELF_TEST_FEATURES = TrainConfig().features  # the app's default, whatever it becomes
TIMEOUT_S = 300


class StepFailed(Exception):
    pass


def run_self_test() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from facecomic_gui.common import dialogs

    dialogs.interactive = False  # a failure is reported in the JSON, never in a dialog
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "facecomic": __version__,
        "frozen": bool(getattr(sys, "frozen", False)),
        "python": platform.python_version(),
        "steps": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="facecomic-self-test-"))
    # Keep the user's cache and saved runs untouched.
    os.environ["FACECOMIC_CACHE_DIR"] = str(tmp / "cache")
    step = "start"
    try:
        for step, action in (
            ("load the bundled model", _load_bundled_model),
            ("predict on generated images", _predict_generated),
            ("train a short grid through the app's worker", _train_short_grid),
            ("reload the saved model and predict", _reload_saved_model),
            ("export the trained model as ONNX", _export_onnx),
            ("open and close the main window", _open_window),
        ):
            t = time.perf_counter()
            action(summary, tmp)
            summary["steps"].append({"step": step, "ok": True, "seconds": round(time.perf_counter() - t, 3)})
    except Exception as err:  # any failure is reported as the step that failed, in one line
        summary.update(ok=False, failed_step=step, error=f"{type(err).__name__}: {err}")
        print(json.dumps(summary, indent=2, default=str))
        print(f"facecomic: self-test failed at '{step}': {err}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.update(ok=True, seconds=round(time.perf_counter() - started, 3))
    summary.pop("_model", None)
    summary.pop("_outcome", None)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _load_bundled_model(summary: dict, _tmp: Path) -> None:
    import torch

    from trainer.common.assets import default_model_path
    from trainer.model.model_file import load_model

    path = default_model_path()
    model = load_model(path)
    summary["_model"] = model
    holdout = model.holdout
    summary["bundled_model"] = {
        "file": path.name,
        "classes": list(model.class_names),
        "holdout_accuracy": holdout.accuracy if holdout else None,
    }
    summary["torch"] = torch.__version__


def _predict_generated(summary: dict, _tmp: Path) -> None:
    import numpy as np

    from trainer.data.synthetic import comic_like, face_like
    from trainer.prediction.predictor import Predictor

    rng = np.random.default_rng(0)
    images = [face_like(rng, 96), comic_like(rng, 96)]
    predictions = Predictor(summary["_model"]).predict(images)
    for p in predictions:
        if not p.ok:
            raise StepFailed(p.error)
        if (
            abs(sum(p.probabilities.values()) - 1) > 1e-4
            or p.label not in summary["bundled_model"]["classes"]
        ):
            raise StepFailed(f"implausible prediction {p}")
    # Generated shapes are not faces, so the labels only show the pipeline runs, not accuracy.
    summary["prediction"] = [
        {"image": f"generated image {i}", "label": p.display_label, "confidence": round(p.confidence, 4)}
        for i, p in enumerate(predictions, start=1)
    ]


def _train_short_grid(summary: dict, tmp: Path) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    from facecomic_gui.common.worker import GeneratorWorker
    from facecomic_gui.launch import create_app
    from facecomic_gui.train import jobs
    from trainer.common.configs import GridSpec, TrainConfig
    from trainer.data.synthetic import make_dataset

    create_app([])
    data = make_dataset(tmp / "dataset", SELF_TEST_IMAGES_PER_CLASS, seed=7)
    grid = GridSpec(l2=(0.1, 1.0))  # two settings of the default (linear) head: quick
    config = TrainConfig(features=SELF_TEST_FEATURES, seed=0)
    worker = GeneratorWorker(jobs.training_job, str(data), config, grid, tmp / "runs")
    outcome: list = []
    errors: list = []
    worker.returned.connect(outcome.append)
    worker.errored.connect(errors.append)
    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    QTimer.singleShot(TIMEOUT_S * 1000, loop.quit)
    worker.start()
    loop.exec()
    if errors:
        raise errors[0]
    if not outcome:
        worker.cancel_and_join()
        raise StepFailed(f"training did not finish within {TIMEOUT_S} s")
    result = outcome[0].result
    summary["_outcome"] = outcome[0]
    if result.features.get("kind") != SELF_TEST_FEATURES:
        raise StepFailed(f"trained on {result.features.get('kind')!r} features, not {SELF_TEST_FEATURES!r}")
    summary["training"] = {
        "features": result.features["kind"],
        "images": sum(result.counts),
        "grid": [r.to_dict() for r in result.grid_results],
        "head": result.train_config.head,
        "best": result.best.setting(),
        "holdout_accuracy": result.holdout.accuracy,
        "device": result.device,
    }


def _reload_saved_model(summary: dict, _tmp: Path) -> None:
    import numpy as np

    from trainer.data.synthetic import comic_like, face_like
    from trainer.model.model_file import load_model
    from trainer.prediction.predictor import Predictor

    outcome = summary["_outcome"]
    reloaded = load_model(outcome.saved_to)
    if reloaded.holdout != outcome.result.holdout:
        raise StepFailed("the reloaded model's metadata differs from the trained one")
    if reloaded.feature_kind != SELF_TEST_FEATURES:
        raise StepFailed(
            f"the reloaded model has {reloaded.feature_kind!r} features, not {SELF_TEST_FEATURES!r}"
        )
    # Predicting runs the backbone again, now on the prediction path.
    rng = np.random.default_rng(1)
    for p in Predictor(reloaded).predict([face_like(rng, 96), comic_like(rng, 96)]):
        if not p.ok or abs(sum(p.probabilities.values()) - 1) > 1e-4:
            raise StepFailed(f"the reloaded model predicted implausibly: {p}")
    summary["training"]["saved_and_reloaded"] = True
    # The installation carries onnxruntime, and the backbone's first-use export to it works.
    runtime = reloaded.featurizer.runtime_name
    summary["training"]["backbone_runtime"] = runtime
    if runtime not in (None, "onnxruntime"):
        raise StepFailed(f"the backbone ran on {runtime}: onnxruntime is missing from the installation")


def _export_onnx(summary: dict, tmp: Path) -> None:
    """The bundle carries torch.onnx and onnx: the export traces, passes onnx's checker and reloads."""
    import onnx

    from trainer.export.onnx_export import META_CLASSES, export_onnx
    from trainer.model.model_file import load_model

    path = export_onnx(load_model(summary["_outcome"].saved_to), tmp / "model.onnx")
    proto = onnx.load(str(path))
    classes = json.loads({p.key: p.value for p in proto.metadata_props}[META_CLASSES])
    if classes != list(summary["_outcome"].result.class_names):
        raise StepFailed(f"the exported model names the classes {classes}")
    summary["onnx"] = {"bytes": path.stat().st_size, "opset": proto.opset_import[0].version}


def _open_window(summary: dict, tmp: Path) -> None:
    from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QTimer

    from facecomic_gui.launch import isolated_settings
    from facecomic_gui.main_window import MainWindow

    settings, settings_file = isolated_settings()
    try:
        window = MainWindow(settings, tmp / "runs", restore=False)
        window.show()
        if window.current_model is None:
            loop = QEventLoop()
            window.model_changed.connect(loop.quit)
            window.model_failed.connect(loop.quit)
            QTimer.singleShot(TIMEOUT_S * 1000, loop.quit)
            loop.exec()
        if window.current_model is None:
            raise StepFailed("the window did not load the bundled model")
        summary["window"] = {"title": window.windowTitle(), "size": [window.width(), window.height()]}
        window.close()
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    finally:
        settings_file.unlink(missing_ok=True)
