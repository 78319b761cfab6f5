""" "Why?" in the full-size views: W lays the map over the picture (computed in a worker, then
cached), the opacity is the user's, and answers without a map say why."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QItemSelectionModel, Qt

from facecomic_gui.common import why_session
from facecomic_gui.common.why_session import NOT_A_FACE, request_for
from tests.gui.test_gallery import train


def pixels(pixmap) -> np.ndarray:
    image = pixmap.toImage().convertToFormat(pixmap.toImage().Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(bytes(image.constBits())[: image.sizeInBytes()], np.uint8)
    return data.reshape(height, image.bytesPerLine())[:, : 3 * width].reshape(height, width, 3)


def predict(qtbot, window, paths: list[Path]):
    tab = window.predict_tab
    window.tabs.setCurrentWidget(tab)
    with qtbot.waitSignal(tab.predictions_finished, timeout=60_000):
        tab.add_inputs(paths)
    return tab


def open_row(qtbot, tab, row: int):
    """Select the row and press Enter, as a user would."""
    window = tab.window()
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    tab.view.setFocus()
    # Through the selection model: selectRow() reads the keyboard modifiers, which an earlier
    # test's Ctrl+Shift key clicks can leave set in an offscreen application.
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    tab.view.selectionModel().setCurrentIndex(tab.proxy.index(row, 1), flags)
    with qtbot.waitSignal(tab.image_opened, timeout=5_000) as opened:
        qtbot.keyClick(tab.view, Qt.Key.Key_Return)
    return activated(qtbot, opened.args[0])


def activated(qtbot, viewer):
    """The viewer as the window with the keyboard focus (a window manager gives a new dialog it)."""
    qtbot.waitExposed(viewer)
    viewer.activateWindow()
    qtbot.waitUntil(viewer.isActiveWindow)
    return viewer


def test_w_overlays_the_map_and_the_opacity_is_adjustable(
    qtbot, window, tmp_path: Path, monkeypatch, shared_sample: Path
):
    threads = []
    job = why_session.explain_job

    def recording_job(*args, **kwargs):
        threads.append(threading.current_thread())
        return (yield from job(*args, **kwargs))

    monkeypatch.setattr(why_session, "explain_job", recording_job)
    # A real face, so that no "not a face" flag takes the map away; made 1024 px wide.
    picture = tmp_path / "photo.jpg"
    with Image.open(sorted((shared_sample / "faces").iterdir())[0]) as face:
        face.convert("RGB").resize((1024, 768)).save(picture)
    tab = predict(qtbot, window, [picture])
    assert tab.session.rows[0].prediction.flag != NOT_A_FACE
    viewer = open_row(qtbot, tab, 0)
    plain = pixels(viewer.rendered())
    with qtbot.waitSignal(viewer.why_shown, timeout=60_000):
        qtbot.keyClick(viewer, Qt.Key.Key_W)
    assert viewer.overlay_shown and viewer.opacity_slider.isEnabled()
    shown = pixels(viewer.rendered())
    assert shown.shape == plain.shape and np.abs(shown.astype(int) - plain).mean() > 5
    viewer.set_opacity(0)  # fully transparent: the picture as it was
    assert np.array_equal(pixels(viewer.rendered()), plain)
    viewer.set_opacity(100)
    assert (
        np.abs(pixels(viewer.rendered()).astype(int) - plain).mean()
        > np.abs(shown.astype(int) - plain).mean()
    )
    qtbot.keyClick(viewer, Qt.Key.Key_W)  # off again
    assert not viewer.overlay_shown and np.array_equal(pixels(viewer.rendered()), plain)
    assert tab.why.computed == 1 and threads and threads[0] is not threading.main_thread()
    # The same image and model again: from the cache, at once, with no second job.
    viewer = open_row(qtbot, tab, 0)
    with qtbot.waitSignal(viewer.why_shown, timeout=1_000):
        qtbot.keyClick(viewer, Qt.Key.Key_W)
    assert tab.why.computed == 1 and not tab.why.busy
    viewer.close()


def test_an_unreadable_row_shows_no_map_and_says_why(qtbot, window, tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    tab = predict(qtbot, window, [broken])
    viewer = open_row(qtbot, tab, 0)
    with qtbot.waitSignal(viewer.why_unavailable, timeout=1_000) as said:
        qtbot.keyClick(viewer, Qt.Key.Key_W)
    assert said.args[0].startswith("No map: the image is unreadable (not a readable image")
    assert not viewer.overlay_shown and tab.why.computed == 0
    assert viewer.why_status.text() == said.args[0]


def test_a_not_a_face_answer_shows_no_map(qtbot, window, tmp_path: Path):
    picture = tmp_path / "chart.png"
    Image.new("RGB", (64, 64), "white").save(picture)
    tab = predict(qtbot, window, [picture])
    row = tab.session.rows[0]
    row.prediction = dataclasses.replace(row.prediction, flag=NOT_A_FACE)  # as issue 13's scorer says
    viewer = open_row(qtbot, tab, 0)
    with qtbot.waitSignal(viewer.why_unavailable, timeout=1_000) as said:
        qtbot.keyClick(viewer, Qt.Key.Key_W)
    assert "not a face" in said.args[0] and not viewer.overlay_shown
    assert tab.why.computed == 0 and not tab.why.busy


def test_the_gallery_viewer_explains_the_runs_answer(qtbot, window, tiny_dataset: Path):
    train(qtbot, window, tiny_dataset)
    gallery = window.train_tab.open_gallery(1, 1)
    qtbot.waitExposed(gallery)
    # The first image with an answer to explain (the synthetic squares may be called "not a face").
    row = next(i for i, image in enumerate(gallery.session.images) if image.flag != NOT_A_FACE)
    with qtbot.waitSignal(gallery.image_opened, timeout=5_000):
        gallery.open_image(row)
    viewer = activated(qtbot, gallery.viewer)
    with qtbot.waitSignal(viewer.why_shown, timeout=60_000):
        qtbot.keyClick(viewer, Qt.Key.Key_W)
    assert viewer.overlay_shown
    gallery.close()  # closes its viewer too
    assert not viewer.isVisible()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"label": None, "error": "the file is empty (0 bytes)"}, "unreadable (the file is empty"),
        ({"label": None}, "still being predicted"),
        ({"label": "faces", "flag": NOT_A_FACE}, "not a face"),
        ({"label": "dogs"}, "another model"),
    ],
)
def test_answers_without_a_map_say_why(kwargs, expected):
    class Model:
        class_names = ("comics", "faces")

    request = request_for("k", Path("x.jpg"), Model(), **kwargs)
    assert expected in request.unavailable
