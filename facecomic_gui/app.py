"""``facecomic``: launch the window, or render it to a PNG (``--screenshot``), or ``--self-test``."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from facecomic_gui.predict.review import SHOW_CHOICES
from trainer import __version__
from trainer.common.configs import GridSpec, TrainConfig
from trainer.common.flags import add_config_flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecomic",
        description="FaceComic: train the paper's real-face/comic classifier and predict on dropped images.",
    )
    parser.add_argument("images", nargs="*", type=Path, help="images or folders to predict at start")
    parser.add_argument("--dataset", type=Path, help="dataset folder to open on the Train tab")
    parser.add_argument("--train", action="store_true", help="with --dataset: start training at once")
    parser.add_argument(
        "--tab",
        choices=("train", "predict", "runs"),
        help="tab to show (default: predict, or train with --dataset)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        metavar="DIR",
        help="folder of saved runs (default: $FACECOMIC_DATA_DIR/runs or ~/.local/share/FaceComic/runs; "
        "--screenshot uses a temporary one unless given)",
    )
    parser.add_argument(
        "--gallery",
        metavar="TRUE,PREDICTED",
        type=_cell,
        help="with --screenshot and --train: render the error gallery of that holdout cell (class indices)",
    )
    parser.add_argument(
        "--model", type=Path, help="model file to use instead of the remembered or default one"
    )
    review = parser.add_argument_group("reviewing, with --screenshot (the images predicted first)")
    review.add_argument("--show", choices=tuple(SHOW_CHOICES), help="the Predict tab's Show choice")
    review.add_argument(
        "--mark", action="append", type=_mark, metavar="PATH=CLASS", help="mark an image with its true class"
    )
    review.add_argument(
        "--sort-into", type=Path, metavar="DIR", help="render Sort into folders… with its plan for DIR"
    )
    review.add_argument("--move", action="store_true", help="with --sort-into: plan a move, not a copy")
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


def _mark(text: str) -> tuple[Path, str]:
    path, sep, name = text.rpartition("=")
    if not sep or not path or not name:
        raise argparse.ArgumentTypeError(f"expected PATH=CLASS such as photo.jpg=faces, not {text!r}")
    return Path(path), name


def _cell(text: str) -> tuple[int, int]:
    try:
        true_label, predicted = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two class indices such as 0,1, not {text!r}") from None
    return true_label, predicted


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
    from facecomic_gui.launch import apply_start_arguments, create_app, keep_garbage_collection_short
    from facecomic_gui.main_window import MainWindow

    create_app([])

    window = MainWindow(runs_dir=args.runs_dir)
    keep_garbage_collection_short(window)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
