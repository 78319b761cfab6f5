"""Setting up the app and the window from the command line, shared by the app, ``--screenshot``
and ``--self-test`` (so none of those imports another)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainer import __version__
from trainer.common.configs import GridSpec, TrainConfig
from trainer.common.flags import given_config_values


def create_app(argv: Sequence[str]):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication, QStyleFactory

    from facecomic_gui.common.settings import APPLICATION, ORGANIZATION

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


def keep_garbage_collection_short(window) -> None:
    """A full garbage collection walks every tracked object: 216 ms here once torch, Qt and
    the trainer are loaded, in whichever thread happens to allocate and with the GIL held, so the
    window would freeze that long now and then. What is alive at start-up lives as long as the
    app, so it is frozen out of the collector: now (Qt and the app), and again once the first
    model, and with it torch, has loaded in the background (then a full collection takes well
    under a millisecond). Later objects are collected as usual."""
    gc.freeze()
    frozen_after_model = False

    def after_first_model(*_args: object) -> None:
        nonlocal frozen_after_model
        if not frozen_after_model:
            frozen_after_model = True
            gc.freeze()

    window.model_changed.connect(after_first_model)
    window.model_failed.connect(after_first_model)


# Harmless warnings of Qt's offscreen platform that would only alarm a user.
_QT_NOISE = (
    "propagateSizeHints",
    "does not support raise()",
    "QFont::setPointSize: Point size <= 0",
    "Detected locale",
)


def install_message_filter() -> None:
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode, _context, message: str) -> None:
        if not any(noise in message for noise in _QT_NOISE):
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def apply_start_arguments(window, args: argparse.Namespace) -> None:
    """Open what the command line asks for: a model, a dataset (maybe training it), images.

    Training flags go into the form as text, exactly as given: a value out of range is marked
    in the form with its reason (and Start stays off), never clamped, never a traceback."""
    if args.model is not None:
        window.load_model(args.model, quiet=True)  # a bad file shows on the Predict tab
    session = window.train_session
    overrides = {**given_config_values(TrainConfig, args), **given_config_values(GridSpec, args)}
    if overrides:
        session.set_form_text(
            **{k: ", ".join(map(str, v)) if isinstance(v, tuple) else str(v) for k, v in overrides.items()}
        )
    if args.dataset is not None:
        if args.train:
            session.train_after_next_scan()
        session.set_dataset(str(args.dataset))
    tab = args.tab or ("train" if args.dataset is not None else "predict")
    tabs = {"train": window.train_tab, "predict": window.predict_tab, "runs": window.runs_tab}
    window.tabs.setCurrentWidget(tabs[tab])
    if args.images:
        window.prediction_session.add_inputs(list(args.images))  # waits for a loading model


def isolated_settings():
    """Settings in a throw-away INI file, so screenshots and self-tests never touch the user's."""
    from PySide6.QtCore import QSettings

    from facecomic_gui.common.settings import AppSettings

    handle, name = tempfile.mkstemp(prefix="facecomic-", suffix=".ini")
    os.close(handle)
    return AppSettings(QSettings(name, QSettings.Format.IniFormat)), Path(name)
