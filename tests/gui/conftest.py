from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from facecomic_gui.common.settings import AppSettings
from trainer.data.synthetic import make_dataset


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def settings(settings_file: Path) -> AppSettings:
    return AppSettings(QSettings(str(settings_file), QSettings.Format.IniFormat))


def forget_marks(win) -> None:
    """Marks a test left would make closing the window ask about them, in a dialog."""
    win.review.corrections.marks.clear()


@pytest.fixture
def window(qtbot, settings: AppSettings, tmp_path: Path):
    """The main window with the bundled default model loaded."""
    from facecomic_gui.main_window import MainWindow

    win = MainWindow(settings, tmp_path / "runs", restore=False)
    qtbot.addWidget(win, before_close_func=forget_marks)
    # The load runs in a worker: wait for its result as state, which cannot be missed.
    qtbot.waitUntil(lambda: win.current_model is not None, timeout=30_000)
    yield win
    forget_marks(win)
    win.close()


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "tiny", 20)
