"""``facecomic --screenshot OUT.png``: render the window in a given state, offscreen, and save it.

It waits on the app's own signals (model loaded, predictions done, scan done, run finished), never
on fixed sleeps, with a generous overall timeout so a broken state fails instead of hanging.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer, SignalInstance

TIMEOUT_S = 600


def wait_until(done: Callable[[], bool], signals: list[SignalInstance], timeout_s: float = TIMEOUT_S) -> bool:
    """Spin the event loop until ``done()`` holds, re-checking whenever one of ``signals`` fires."""
    if done():
        return True
    loop = QEventLoop()

    def check(*_args) -> None:
        if done():
            loop.quit()

    for signal in signals:
        signal.connect(check)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    for signal in signals:
        signal.disconnect(check)
    return done()


def take_screenshot(args: argparse.Namespace) -> int:
    from facecomic_gui.app import apply_start_arguments, create_app, isolated_settings
    from facecomic_gui.main_window import MainWindow
    from trainer.atomic import atomic_write_bytes

    app = create_app([])
    settings, settings_file = isolated_settings()
    runs = Path(tempfile.mkdtemp(prefix="facecomic-screenshot-runs-"))
    window = MainWindow(settings, runs, restore=False)
    try:
        window.show()
        failures: list[str] = []
        window.model_failed.connect(failures.append)
        window.train_tab.scan_failed.connect(failures.append)
        window.train_tab.run_failed.connect(failures.append)
        if not wait_until(
            lambda: window.current_model is not None or failures, [window.model_changed, window.model_failed]
        ):
            return _fail("the model did not load in time")
        if window.current_model is None and (args.images or args.train):
            return _fail(failures[0].rstrip("."))
        apply_start_arguments(window, args)
        predict, train = window.predict_tab, window.train_tab
        if args.images:
            ok = wait_until(
                lambda: not predict.busy and bool(predict.table_model.rows), [predict.predictions_finished]
            )
            if not ok:
                return _fail("predictions did not finish in time")
        if args.dataset is not None:
            ok = wait_until(
                lambda: train.state == "idle" and (failures or train.outcome is not None or not args.train),
                [train.state_changed, train.scan_failed],
            )
            if not ok:
                return _fail("the dataset scan or training did not finish in time")
        if failures:
            print(f"facecomic: note: {failures[0]}", file=sys.stderr)
        wait_until(lambda: window.thumbnails.pending == 0, [window.thumbnails.ready], timeout_s=30)
        train.loss_plot.flush()
        train.accuracy_plot.flush()
        app.processEvents()
        image = window.grab().toImage()
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice

        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buffer, "PNG"):
            return _fail("could not encode the PNG")
        atomic_write_bytes(args.screenshot, bytes(data))
        print(f"Screenshot saved to {args.screenshot} ({image.width()}x{image.height()})")
        return 0
    except OSError as err:
        return _fail(f"could not write {args.screenshot}: {err.strerror or err}")
    finally:
        window.close()
        settings_file.unlink(missing_ok=True)
        shutil.rmtree(runs, ignore_errors=True)


def _fail(message: str) -> int:
    print(f"facecomic: error: {message}.", file=sys.stderr)
    return 1
