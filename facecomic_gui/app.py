"""``facecomic``: launch the window, or render it to a PNG (``--screenshot``), or ``--self-test``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainer import __version__
from trainer.common.configs import GridSpec, TrainConfig
from trainer.common.flags import add_config_flags, given_config_values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecomic",
        description="FaceComic: train the paper's real-face/comic classifier and predict on dropped images.",
    )
    parser.add_argument("images", nargs="*", type=Path, help="images or folders to predict at start")
    parser.add_argument("--dataset", type=Path, help="dataset folder to open on the Train tab")
    parser.add_argument("--train", action="store_true", help="with --dataset: start training at once")
    parser.add_argument(
        "--tab", choices=("train", "predict"), help="tab to show (default: predict, or train with --dataset)"
    )
    parser.add_argument(
        "--model", type=Path, help="model file to use instead of the remembered or default one"
    )
    training = parser.add_argument_group("training settings (override the remembered ones)")
    add_config_flags(training, TrainConfig, only_if_given=True, exclude=("device",))  # the app picks
    add_config_flags(training, GridSpec, only_if_given=True)
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="OUT.png",
        help="render the window offscreen in that state, save a PNG and exit",
    )
    parser.add_argument(
        "--self-test", action="store_true", help="check this installation end to end and print a JSON summary"
    )
    parser.add_argument("--debug", action="store_true", help="log details, including tracebacks, to stderr")
    parser.add_argument("--version", action="version", version=f"FaceComic {__version__}")
    return parser


def create_app(argv: Sequence[str]):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication, QStyleFactory

    from facecomic_gui.settings import APPLICATION, ORGANIZATION

    install_message_filter()  # first: Qt warns about a non-UTF-8 locale while it starts
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QCoreApplication.setApplicationVersion(__version__)
    app.setStyle(QStyleFactory.create("Fusion"))  # the same look on every platform, and offscreen
    # Workers run Python too. A paint re-takes the GIL after every Qt call, and each time may wait
    # a full switch interval for a busy worker: 5 ms by default, which adds up to visible stalls.
    # 0.1 ms keeps the window smooth (measured by `make bench`) at no cost when the GUI is idle.
    sys.setswitchinterval(0.0001)
    return app


# Harmless warnings of Qt's offscreen platform that would only alarm a user.
_QT_NOISE = ("propagateSizeHints", "QFont::setPointSize: Point size <= 0", "Detected locale")


def install_message_filter() -> None:
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode, _context, message: str) -> None:
        if not any(noise in message for noise in _QT_NOISE):
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()  # harmless unfrozen; needed if any library spawns processes frozen
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.self_test:
        from facecomic_gui.self_test import run_self_test

        return run_self_test()
    if args.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from facecomic_gui.screenshot import take_screenshot

        return take_screenshot(args)
    problem = display_problem()
    if problem:
        print(f"facecomic: error: {problem}", file=sys.stderr)
        return 1
    create_app([])
    from facecomic_gui.main_window import MainWindow

    window = MainWindow()
    apply_start_arguments(window, args)
    window.show()
    if os.environ.get("FACECOMIC_STARTUP_PROBE"):
        install_startup_probe(window)
    from PySide6.QtWidgets import QApplication

    return QApplication.instance().exec()


def install_startup_probe(window) -> None:
    """For ``make bench``: print wall-clock times when the window is up and when the model is
    ready, then quit. Only active with FACECOMIC_STARTUP_PROBE set."""
    import time

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def visible() -> None:
        print(f"FACECOMIC_VISIBLE {time.time():.6f}", flush=True)
        if window.current_model is not None:
            ready(window.current_model)

    def ready(_model) -> None:
        print(f"FACECOMIC_READY {time.time():.6f}", flush=True)
        QApplication.instance().quit()

    QTimer.singleShot(0, visible)  # runs once the show and first paint events are processed
    window.model_changed.connect(ready)
    window.model_failed.connect(lambda _m: QApplication.instance().quit())


def display_problem() -> str | None:
    """Qt aborts with a long message when there is no screen; say it in one sentence instead."""
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display found (DISPLAY is not set); run it on a desktop, under xvfb-run, or with --screenshot OUT.png."
    return None


def apply_start_arguments(window, args: argparse.Namespace) -> None:
    """Open what the command line asks for: a model, a dataset (maybe training it), images."""
    from facecomic_gui.settings import TrainForm

    if args.model is not None:
        window.load_model(args.model, quiet=True)  # a bad file shows on the Predict tab
    config_overrides = given_config_values(TrainConfig, args)
    grid_overrides = given_config_values(GridSpec, args)
    if config_overrides or grid_overrides:
        form = window.train_tab.form() or TrainForm()
        window.train_tab.set_form(
            TrainForm(
                dataclasses.replace(form.config, **config_overrides),
                dataclasses.replace(form.grid, **grid_overrides),
            )
        )
    if args.dataset is not None:
        if args.train:
            train_after_next_scan(window.train_tab)
        window.train_tab.set_dataset(str(args.dataset))
    tab = args.tab or ("train" if args.dataset is not None else "predict")
    window.tabs.setCurrentWidget(window.train_tab if tab == "train" else window.predict_tab)
    if args.images:
        window.predict_tab.add_inputs(list(args.images))  # waits for the model if it is loading


def train_after_next_scan(tab) -> None:
    """Start training when the scan now starting succeeds; a failed scan disarms it, so a folder
    picked later does not start training by itself."""

    def disarm() -> None:
        tab.scan_finished.disconnect(on_finished)
        tab.scan_failed.disconnect(on_failed)

    def on_finished(_scan) -> None:
        disarm()
        tab.start_training()

    def on_failed(_message) -> None:
        disarm()

    tab.scan_finished.connect(on_finished)
    tab.scan_failed.connect(on_failed)


def isolated_settings():
    """Settings in a throw-away INI file, so screenshots and self-tests never touch the user's."""
    from PySide6.QtCore import QSettings

    from facecomic_gui.settings import AppSettings

    handle, name = tempfile.mkstemp(prefix="facecomic-", suffix=".ini")
    os.close(handle)
    return AppSettings(QSettings(name, QSettings.Format.IniFormat)), Path(name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
