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
from typing import Any

from PySide6.QtCore import QEventLoop, QTimer

TIMEOUT_S = 600


def wait_until(done: Callable[[], bool], signals: list[Any], timeout_s: float = TIMEOUT_S) -> bool:
    """Spin the event loop until ``done()`` holds, re-checking whenever one of ``signals`` (Qt
    signals or session emitters: anything with connect/disconnect) fires."""
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
    """Exit 0 when the requested state was reached; 1 when it failed (the PNG then shows why)."""
    from facecomic_gui.common import dialogs
    from facecomic_gui.launch import apply_start_arguments, create_app, isolated_settings
    from facecomic_gui.main_window import MainWindow

    dialogs.interactive = False  # nobody could close a modal dialog here
    app = create_app([])
    settings, settings_file = isolated_settings()
    own_runs = getattr(args, "runs_dir", None) is None  # a throw-away folder unless --runs-dir
    runs = Path(tempfile.mkdtemp(prefix="facecomic-screenshot-runs-")) if own_runs else args.runs_dir
    window = MainWindow(settings, runs, restore=False)
    failures: list[str] = []
    train, predict = window.train_session, window.prediction_session
    for signal in (window.model_failed, train.scan_failed, train.run_failed):
        signal.connect(failures.append)
    try:
        window.show()
        model_settled = [window.model_changed, window.model_failed]
        if not wait_until(lambda: window.current_model is not None or failures, model_settled):
            return _fail("the model did not load in time")
        if args.model is not None:
            wanted = args.model.resolve()
            window.load_model(args.model, quiet=True)
            args.model = None  # loaded here, so apply_start_arguments does not load it again

            def loaded():
                return window.current_model is not None and window.current_model.path.resolve() == wanted

            if not wait_until(lambda: loaded() or failures, model_settled):
                return _fail("the model did not load in time")
        if window.current_model is None and (args.images or args.train):
            return _fail(failures[0].rstrip("."))
        apply_start_arguments(window, args)
        train_wanted = args.dataset is not None and args.train
        if train.form is None:
            reasons = " ".join(train.validation.errors.values()).rstrip(".")
            failures.append(f"invalid training settings: {reasons}")
            train_wanted = False  # the form shows why; Start stays off
        if args.images and not wait_until(
            lambda: not predict.busy and bool(predict.rows), [predict.predictions_finished]
        ):
            return _fail("predictions did not finish in time")
        if args.dataset is not None and not wait_until(
            lambda: (
                train.state == "idle"
                and (bool(failures) or train.outcome is not None or not train_wanted)
                and (train.scan is not None or train.scan_error is not None)
            ),
            [
                train.state_changed,
                train.scan_failed,
                train.run_finished,
                train.run_failed,
                train.run_cancelled,
            ],
        ):
            return _fail("the dataset scan or training did not finish in time")
        runs_session = window.runs_session
        if not wait_until(lambda: runs_session.state == "idle", [runs_session.changed]):
            return _fail("the runs folder was not read in time")
        shown = window
        from facecomic_gui.review_controller import apply_review_arguments

        try:
            shown = apply_review_arguments(window, args) or window  # --show, --mark, --sort-into
        except ValueError as err:
            return _fail(str(err))
        cell = getattr(args, "gallery", None)
        if cell is not None and not failures:
            try:
                gallery = window.train_tab.open_gallery(*cell)
            except ValueError as err:
                return _fail(f"no gallery for cell {cell[0]},{cell[1]}: {err}")
            if gallery is None:
                return _fail("--gallery needs a finished run (--dataset DIR --train)")
            gallery.resize(900, 640)
            shown = gallery
            app.processEvents()  # paints the rows in view, which ask for their thumbnails
        wait_until(lambda: window.thumbnails.pending == 0, [window.thumbnails.ready], timeout_s=30)
        window.train_tab.loss_plot.flush()
        window.train_tab.accuracy_plot.flush()
        app.processEvents()
        size = _save_png(shown, args.screenshot)
        print(f"Screenshot saved to {args.screenshot} ({size[0]}x{size[1]})")
        if train.outcome is not None:
            print(f"Training finished: holdout accuracy {train.outcome.result.holdout.accuracy:.4f}")
        if failures:
            return _fail(failures[0].rstrip("."))
        return 0
    except OSError as err:
        return _fail(f"could not write {args.screenshot}: {err.strerror or err}")
    finally:
        window.close()
        dispose(window)
        settings_file.unlink(missing_ok=True)
        if own_runs:
            shutil.rmtree(runs, ignore_errors=True)
        dialogs.interactive = True


def dispose(widget) -> None:
    """Delete a closed window now, in Qt's order, rather than whenever Python's garbage collector
    reaches its cycle (sessions and views refer to each other), which may crash Qt."""
    from PySide6.QtCore import QCoreApplication, QEvent

    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _save_png(window, path: Path) -> tuple[int, int]:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    from trainer.common.outputs import write_bytes

    image = window.grab().toImage()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError("the PNG could not be encoded")
    write_bytes(path, bytes(data))
    return image.width(), image.height()


def _fail(message: str) -> int:
    print(f"facecomic: error: {message}.", file=sys.stderr)
    return 1
