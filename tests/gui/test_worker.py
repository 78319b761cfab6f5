"""The one thread-creating module: many events in order, no leaked workers, no joins on the GUI
thread."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

from PIL import Image

from facecomic_gui.common import worker as worker_module
from facecomic_gui.common.worker import GeneratorWorker, LatestJobs
from facecomic_gui.predict import jobs as predict_jobs
from trainer.data.synthetic import make_dataset

EVENTS = 20_000


def count_to(n: int, *, cancel):
    yield from range(n)
    return "done"


def test_twenty_thousand_events_arrive_in_order(qtbot):
    """PySide6 6.12.0 aborted Python 3.11 after a few thousand cross-thread signals."""
    seen: list[int] = []
    returned: list[str] = []
    worker = GeneratorWorker(count_to, EVENTS)
    worker.yielded.connect(seen.append)
    worker.returned.connect(returned.append)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    assert seen == list(range(EVENTS))
    assert returned == ["done"]


def test_latest_jobs_ignore_a_superseded_job(qtbot):
    jobs = LatestJobs()
    release = threading.Event()
    seen: list[object] = []
    finished: list[str] = []

    def blocked(*, cancel):
        yield "old"
        release.wait(10)  # ignores cancel on purpose: the new job must not wait for it
        yield "late"

    jobs.start("k", blocked, on_yielded=seen.append, on_finished=lambda: finished.append("old"))
    qtbot.waitUntil(lambda: seen == ["old"], timeout=5_000)
    started = time.perf_counter()
    jobs.start("k", count_to, 3, on_yielded=seen.append, on_finished=lambda: finished.append("new"))
    assert time.perf_counter() - started < 0.5
    qtbot.waitUntil(lambda: finished == ["new"], timeout=5_000)
    release.set()
    qtbot.waitUntil(lambda: jobs.live_jobs() == 0, timeout=10_000)
    assert seen == ["old", 0, 1, 2] and finished == ["new"]  # nothing late from the old job


def _track_workers(monkeypatch) -> list[tuple[weakref.ref, weakref.ref]]:
    refs: list[tuple[weakref.ref, weakref.ref]] = []
    original = GeneratorWorker.start

    def start(self):
        refs.append((weakref.ref(self), weakref.ref(self.qthread)))
        return original(self)

    monkeypatch.setattr(worker_module.GeneratorWorker, "start", start)
    return refs


def test_no_worker_outlives_fifty_scans_and_fifty_prediction_batches(qtbot, window, tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "d", 2)
    image = Image.new("RGB", (2000, 2000), (90, 120, 200))  # a large pasted image
    refs = _track_workers(monkeypatch)
    train, predict = window.train_session, window.prediction_session
    for _ in range(50):
        with qtbot.waitSignal(window.train_tab.scan_finished, timeout=30_000):
            train.set_dataset(str(data))
    for _ in range(50):
        with qtbot.waitSignal(window.predict_tab.predictions_finished, timeout=30_000):
            predict.add_inputs([image.copy()])
    assert len(predict.rows) == 50
    predict.clear()
    del image
    qtbot.waitUntil(lambda: window.jobs.live_jobs() == 0, timeout=10_000)
    scan_and_predict = refs[:]  # the thumbnail loader may start one more, long-lived worker
    assert len(scan_and_predict) >= 100
    gc.collect()
    alive = [w for w, t in scan_and_predict if w() is not None and w().name != "_serve"]
    threads = [t for w, t in scan_and_predict if t() is not None and (w() is None or w().name != "_serve")]
    assert alive == [] and threads == []


def test_clear_and_model_switch_never_wait_for_a_running_batch(qtbot, window, tmp_path, monkeypatch):
    release = threading.Event()

    def stuck(model, inputs, *, cancel):
        yield predict_jobs.ImagesFound(tuple(inputs))
        release.wait(10)  # a slow disk: does not look at cancel
        return len(inputs)

    monkeypatch.setattr(predict_jobs, "predict_job", stuck)
    session = window.prediction_session
    path = make_dataset(tmp_path / "d", 1) / "faces" / "0.png"
    try:
        session.add_inputs([path])
        qtbot.waitUntil(lambda: len(session.rows) == 1, timeout=10_000)
        started = time.perf_counter()
        window.predict_tab.clear_button.click()
        assert time.perf_counter() - started < 0.5
        assert session.rows == [] and not session.busy

        session.add_inputs([path])
        qtbot.waitUntil(lambda: len(session.rows) == 1, timeout=10_000)
        started = time.perf_counter()
        window.set_model(window.current_model)
        assert time.perf_counter() - started < 0.5
    finally:
        release.set()
    qtbot.waitUntil(lambda: window.jobs.live_jobs() == 0, timeout=15_000)


def test_clearing_predictions_keeps_the_train_tabs_thumbnails(qtbot, window, tmp_path: Path):
    thumbnails = window.thumbnails
    faces = make_dataset(tmp_path / "d", 2) / "faces"
    thumbnails.pixmap("train-key", faces / "0.png", owner="train")
    thumbnails.pixmap("predict-key", faces / "1.png", owner="predict")
    window.prediction_session.clear()
    qtbot.waitUntil(lambda: thumbnails.pending == 0, timeout=10_000)
    assert thumbnails.pixmap("train-key", owner="train") is not None
    assert thumbnails.requested == 1
