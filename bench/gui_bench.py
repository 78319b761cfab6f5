"""GUI figures for ``make bench``: time to a visible window, and the longest event-loop stall
while training (the form's defaults: pretrained features, so feature extraction is in it) and
while the default model predicts a 1,000-image drop."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STALL_TICK_MS = 5


def startup_seconds(command: list[str] | None = None, runs: int = 3) -> dict[str, float]:
    """Launch the app (offscreen) and time it to a visible window and to a loaded model; the best
    of ``runs`` launches, so a cold disk cache does not count."""
    command = command or [str(Path(sys.executable).parent / "facecomic")]
    env = {**os.environ, "FACECOMIC_STARTUP_PROBE": "1", "QT_QPA_PLATFORM": "offscreen"}
    visible, ready = [], []
    for _ in range(runs):
        start = time.time()
        out = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        ).stdout
        stamps = dict(line.split() for line in out.splitlines() if line.startswith("FACECOMIC_"))
        visible.append(float(stamps["FACECOMIC_VISIBLE"]) - start)
        ready.append(float(stamps["FACECOMIC_READY"]) - start)
    return {"visible": min(visible), "model_ready": min(ready)}


class StallMeter:
    """A fast timer in the GUI thread; the longest gap between its ticks is the worst stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.worst_ms = 0.0
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(STALL_TICK_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst_ms = max(self.worst_ms, (now - self._last) * 1000 - STALL_TICK_MS)
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self.worst_ms = 0.0
        self._timer.start()

    def stop(self) -> float:
        self._timer.stop()
        return self.worst_ms


def open_window(folder: Path, size: tuple[int, int] | None = None):
    """The app set up as ``facecomic`` sets it up (``create_app``: its style and short switch
    interval; ``keep_garbage_collection_short``) and its main window shown (offscreen unless a
    platform is set), with its settings and runs folder in ``folder``, so nothing of the user's
    is read or changed. Returns the application and the window."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from facecomic_gui.common.settings import AppSettings
    from facecomic_gui.launch import create_app, keep_garbage_collection_short
    from facecomic_gui.main_window import MainWindow

    app = create_app([])
    window = MainWindow(
        AppSettings(QSettings(str(folder / "s.ini"), QSettings.Format.IniFormat)),
        folder / "runs",
        restore=False,
    )
    keep_garbage_collection_short(window)  # as the app does
    if size is not None:
        window.resize(*size)
    window.show()
    return app, window


def wait(signal, timeout_s: float = 600) -> None:
    """Run the event loop until ``signal`` is emitted, or for ``timeout_s`` at most."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    signal.connect(loop.quit)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(loop.quit)


def responsiveness(
    dataset: Path, drop_folder: Path, drop_count: int = 1000, repeats: int = 3, compare_torch: bool = True
) -> dict[str, object]:
    """Train on ``dataset`` ``repeats`` times (each with a cold cache), then drop ``drop_count``
    images of ``drop_folder`` ``repeats`` times on the default model, in one window; with
    ``compare_torch``, drop them as often again with the backbone on PyTorch.

    Reports the median and the worst of the per-run worst stalls: a shared 2-core machine has
    outliers, and one number would hide either the typical case or the bad one."""
    import tempfile

    from facecomic_gui.train.form import TrainForm

    tmp = Path(tempfile.mkdtemp(prefix="facecomic-guibench-"))
    app, window = open_window(tmp)
    if window.current_model is None:
        wait(window.model_changed)
    default_model = window.current_model
    meter = StallMeter()
    results: dict[str, object] = {"load_average": round(os.getloadavg()[0], 2)}

    tab = window.train_tab
    form = TrainForm()  # the defaults: pretrained features and the default grid
    results["train_features"] = form.config.features
    tab.set_form(form)
    tab.set_dataset(str(dataset))
    wait(tab.scan_finished)
    while window.thumbnails.pending:  # as a user would: the summary is on screen before Start
        wait(window.thumbnails.ready, timeout_s=10)
    stalls, seconds = [], []
    for repeat in range(repeats):
        os.environ["FACECOMIC_CACHE_DIR"] = str(tmp / f"cache{repeat}")
        meter.start()
        start = time.perf_counter()
        tab.start_training()
        wait(tab.run_finished)
        seconds.append(time.perf_counter() - start)
        stalls.append(meter.stop())
    results["train_images"] = sum(1 for _ in dataset.rglob("*.jpg"))
    results["train_seconds"] = statistics.median(seconds)
    results["train_stall_median_ms"] = statistics.median(stalls)
    results["train_worst_stall_ms"] = max(stalls)

    files = sorted(p for p in drop_folder.rglob("*.jpg"))[:drop_count]
    predict = window.predict_tab
    if window.current_model is not default_model:  # training made its model current
        window.set_model(default_model)
    results["drop_features"] = window.current_model.feature_kind
    window.tabs.setCurrentWidget(predict)

    def drops() -> tuple[list[float], list[float]]:
        """Drop ``files`` on the Predict tab ``repeats`` times: per drop, the seconds until all
        are predicted and the worst stall."""
        seconds, stalls = [], []
        for _ in range(repeats):
            predict.clear()
            meter.start()
            start = time.perf_counter()
            predict.add_inputs(files)
            wait(predict.predictions_finished)
            seconds.append(time.perf_counter() - start)
            stalls.append(meter.stop())
        return seconds, stalls

    seconds, stalls = drops()
    results["drop_images"] = len(files)
    results["drop_seconds"] = statistics.median(seconds)
    results["drop_stall_median_ms"] = statistics.median(stalls)
    results["drop_worst_stall_ms"] = max(stalls)
    if compare_torch and results["drop_features"] == "pretrained":
        # The same drop with the backbone on PyTorch, as before onnxruntime: the speed-up in one run.
        from bench.engine import backbone_engine
        from trainer.model.model_file import load_model

        with backbone_engine(runtime="torch"):
            window.set_model(load_model(default_model.path))
            torch_seconds, torch_stalls = drops()
        results["drop_torch_seconds"] = statistics.median(torch_seconds)
        results["drop_torch_worst_stall_ms"] = max(torch_stalls)
    window.close()
    app.processEvents()
    return results
