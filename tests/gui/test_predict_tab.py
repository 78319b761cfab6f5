from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QGuiApplication

from facecomic_gui.common import dialogs
from facecomic_gui.predict.session import ERROR_KEY, NOT_A_FACE_KEY, UNSURE_KEY
from facecomic_gui.predict.table import CONFIDENCE, DETAILS, FILE, LABEL, UNSURE_COLOUR
from tests.gui.drag_and_drop import drag_enter_event, drop, file_urls
from tests.gui.signals import Recorder
from trainer.data.synthetic import comic_like, make_dataset
from trainer.prediction.predictor import Prediction


def labels(tab) -> list[str]:
    model = tab.table_model
    return [model.data(model.index(r, LABEL)) for r in range(model.rowCount())]


def test_dropping_files_and_folders_gives_labelled_rows(qtbot, window, tmp_path: Path):
    data = make_dataset(tmp_path / "drop", 4)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    tab = window.predict_tab
    window.tabs.setCurrentWidget(tab)
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        drop(tab, [data / "faces", data / "comics" / "0.png", bad])
    assert tab.table_model.rowCount() == 6  # 4 from the folder, 1 file, 1 broken
    got = labels(tab)
    # Synthetic squares are no faces at all for the default model: "Not a face", muted, and both
    # probabilities still in Details.
    assert got[:5] == ["Not a face"] * 5
    details = tab.table_model.data(tab.table_model.index(0, DETAILS))
    assert details.startswith("Not a face") and "Real face" in details and "Comic" in details
    assert got[5] == "Unreadable"
    error_row = tab.table_model.rows[5]
    assert error_row.prediction.error == "not a readable image (unknown format or corrupt header)"
    assert "6 images" in tab.summary_label.text() and "1 unreadable" in tab.summary_label.text()
    assert "5 unsure (5 not a face)" in tab.summary_label.text()
    confidence = tab.table_model.data(tab.table_model.index(0, CONFIDENCE))
    assert confidence.endswith("%")
    assert tab.stack.currentWidget() is tab.view


def test_drag_enter_accepts_files_only(window, tmp_path: Path):
    text = QMimeData()
    text.setText("hello")
    event = drag_enter_event(text)
    window.predict_tab.dragEnterEvent(event)
    assert not event.isAccepted()
    event = drag_enter_event(file_urls([tmp_path]))
    window.predict_tab.dragEnterEvent(event)
    assert event.isAccepted()


def test_paste_an_image_from_the_clipboard(qtbot, window):
    from facecomic_gui.common.thumbnails import pil_to_qimage

    QGuiApplication.clipboard().setImage(pil_to_qimage(comic_like(np.random.default_rng(3), 64)))
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.paste_from_clipboard()
    assert tab.table_model.rows[0].name == "Pasted image 1"
    assert labels(tab)[0] == "Not a face"  # a flat synthetic square is no face to the default model


def test_add_images_filter_sort_and_export(qtbot, window, tmp_path: Path, monkeypatch):
    data = make_dataset(tmp_path / "d", 5)
    files = sorted((data / "faces").iterdir()) + sorted((data / "comics").iterdir())
    (tmp_path / "bad.png").write_bytes(b"")
    files.append(tmp_path / "bad.png")
    monkeypatch.setattr(
        dialogs.QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(f) for f in files], "")
    )
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_button.click()
    assert tab.table_model.rowCount() == 11

    tab.filter_combo.setCurrentIndex(tab.filter_combo.findData(ERROR_KEY))
    assert tab.proxy.rowCount() == 1
    shown_total = 0
    for name, display in (("faces", "Real face"), ("comics", "Comic")):
        tab.filter_combo.setCurrentIndex(tab.filter_combo.findData(name))
        shown = [tab.proxy.data(tab.proxy.index(r, LABEL)) for r in range(tab.proxy.rowCount())]
        assert len(shown) == tab.session.counts().get(name, 0)
        # The nearer class; "?" when flagged unsure, and "Not a face" for these synthetic squares.
        assert all(label.rstrip("?") == display or label == "Not a face" for label in shown)
        shown_total += len(shown)
    assert shown_total == 10  # every readable image is in exactly one class
    tab.filter_combo.setCurrentIndex(tab.filter_combo.findData(NOT_A_FACE_KEY))
    not_faces = [tab.proxy.data(tab.proxy.index(r, LABEL)) for r in range(tab.proxy.rowCount())]
    assert not_faces == ["Not a face"] * tab.session.counts()[NOT_A_FACE_KEY]
    assert len(not_faces) == sum(row.not_a_face for row in tab.session.rows) > 0
    tab.filter_combo.setCurrentIndex(0)
    assert tab.proxy.rowCount() == 11

    tab.view.sortByColumn(CONFIDENCE, Qt.SortOrder.DescendingOrder)
    rows = [tab.table_model.rows[tab.proxy.mapToSource(tab.proxy.index(r, 0)).row()] for r in range(11)]
    values = [-1.0 if r.prediction.error else r.prediction.confidence for r in rows]
    assert values == sorted(values, reverse=True) and values[-1] == -1.0  # unreadable last

    out = tmp_path / "export.csv"
    monkeypatch.setattr(dialogs, "ask_csv_path", lambda *a, **k: (out, False))
    assert tab.export_csv() == out
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 11 and list(rows[0]) == ["path", "label", "confidence", "flag", "error"]
    assert sum(1 for r in rows if r["error"]) == 1

    tab.clear_button.click()
    assert tab.table_model.rowCount() == 0
    assert tab.stack.currentWidget() is tab.drop_hint


def test_many_images_stay_lazy_about_thumbnails(qtbot, window, tmp_path: Path):
    folder = tmp_path / "many"
    folder.mkdir()
    image = Image.new("RGB", (40, 40), (200, 120, 90))
    for i in range(300):
        image.save(folder / f"{i}.png")
    tab = window.predict_tab
    window.resize(1280, 860)
    window.show()
    window.tabs.setCurrentWidget(tab)
    with qtbot.waitSignal(tab.predictions_finished, timeout=60_000):
        tab.add_inputs([folder])
    assert tab.table_model.rowCount() == 300
    assert all(r.prediction is not None and r.prediction.ok for r in tab.table_model.rows)
    requested = window.thumbnails.requested
    assert 0 < requested < 100  # only the rows in view asked for a thumbnail


def trained_model(qtbot, window, tmp_path: Path):
    """A genuinely different model: trained here, through the Train tab."""
    from facecomic_gui.train.form import TrainForm
    from trainer.common.configs import GridSpec, TrainConfig

    tab = window.train_tab
    tab.set_form(TrainForm(TrainConfig(batch_size=8, seed=3), GridSpec((0.05,), (2,))))
    with qtbot.waitSignal(tab.scan_finished, timeout=30_000):
        tab.set_dataset(str(make_dataset(tmp_path / "train", 12)))
    with qtbot.waitSignal(tab.run_finished, timeout=120_000) as blocker:
        tab.start_training()
    return blocker.args[0].model


def test_switching_model_predicts_rows_again(qtbot, window, tmp_path: Path):
    data = make_dataset(tmp_path / "d", 2)
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_inputs([data])
    before = [r.prediction.probabilities for r in tab.session.rows]
    banner = tab.model_label.text()
    other = trained_model(qtbot, window, tmp_path)
    assert other.path != window.current_model.path
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        window.train_tab.use_button.click()
    assert window.current_model is other and tab.session.model is other
    assert tab.model_label.text() != banner and other.name in tab.model_label.text()
    assert len(tab.session.rows) == 4
    after = [r.prediction.probabilities for r in tab.session.rows]
    assert all(p is not None for p in after) and after != before


def test_dropping_without_a_model_says_so(qtbot, settings, tmp_path: Path, monkeypatch):
    from facecomic_gui.main_window import MainWindow

    monkeypatch.setenv("FACECOMIC_DEFAULT_MODEL", str(tmp_path / "missing.safetensors"))
    win = MainWindow(settings, tmp_path / "runs", restore=False)
    qtbot.addWidget(win)
    failed = Recorder(win.model_failed)  # before the event loop runs, so before the load can fail
    (message,) = failed.wait(qtbot, timeout=30_000)
    assert "does not exist" in message and win.prediction_session.model_error == message
    messages = []
    monkeypatch.setattr(dialogs.QMessageBox, "warning", lambda _p, title, text: messages.append(text))
    win.predict_tab.add_inputs([tmp_path])
    assert messages and "Open a model first" in messages[0]
    assert not win.predict_tab.model_error.isHidden()
    win.close()


def test_switching_model_keeps_images_not_yet_shown(qtbot, window, tmp_path: Path):
    data = make_dataset(tmp_path / "d", 3)
    tab = window.predict_tab
    other = trained_model(qtbot, window, tmp_path)
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_inputs([data])  # its job has not reported a single image yet...
        window.set_model(other)  # ...when the model changes
    assert tab.table_model.rowCount() == 6
    assert all(r.prediction is not None and r.prediction.ok for r in tab.table_model.rows)
    assert tab.session.model is other


def test_unsure_rows_say_why_and_the_unsure_filter_shows_exactly_them(
    qtbot, window, tmp_path: Path, monkeypatch
):
    from facecomic_gui.predict import jobs as predict_jobs
    from trainer.prediction.predictor import Prediction

    made = {
        "sure.png": Prediction("sure.png", "faces", "Real face", 0.97, {"comics": 0.03, "faces": 0.97}),
        "odd.png": Prediction(
            "odd.png", "faces", "Real face", 0.81, {"comics": 0.19, "faces": 0.81},
            flag="unlike training images",
        ),
        "coin.png": Prediction(
            "coin.png", "comics", "Comic", 0.55, {"comics": 0.55, "faces": 0.45}, flag="low confidence"
        ),
        "bad.png": Prediction("bad.png", error="not a readable image"),
    }  # fmt: skip

    def fake_job(model, inputs, *, cancel):
        yield predict_jobs.ImagesFound(tuple(inputs))
        yield predict_jobs.BatchPredicted(0, tuple(made[p.name] for p in inputs))
        return len(inputs)

    monkeypatch.setattr(predict_jobs, "predict_job", fake_job)
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_inputs([tmp_path / name for name in made])
    model = tab.table_model
    assert labels(tab) == ["Real face", "Real face?", "Comic?", "Unreadable"]
    odd_details = model.data(model.index(1, DETAILS))
    assert odd_details.startswith("Unlike training images") and "Real face 81.0%" in odd_details
    assert model.data(model.index(2, DETAILS)).startswith("Low confidence")
    assert model.data(model.index(2, LABEL), Qt.ItemDataRole.FontRole).italic()
    assert model.data(model.index(2, LABEL), Qt.ItemDataRole.ForegroundRole).color() == UNSURE_COLOUR
    assert model.data(model.index(0, LABEL), Qt.ItemDataRole.FontRole) is None  # sure: plain
    assert "2 unsure" in tab.summary_label.text() and "1 unreadable" in tab.summary_label.text()

    tab.filter_combo.setCurrentIndex(tab.filter_combo.findData(UNSURE_KEY))
    assert tab.filter_combo.currentText() == "Unsure"
    shown = [tab.proxy.data(tab.proxy.index(r, LABEL)) for r in range(tab.proxy.rowCount())]
    assert shown == ["Real face?", "Comic?"]

    tab.filter_combo.setCurrentIndex(0)
    tab.view.sortByColumn(DETAILS, Qt.SortOrder.AscendingOrder)  # sure, flagged by reason, errors
    ordered = [tab.proxy.data(tab.proxy.index(r, LABEL)) for r in range(4)]
    assert ordered == ["Real face", "Comic?", "Real face?", "Unreadable"]

    out = tmp_path / "flags.csv"
    monkeypatch.setattr(dialogs, "ask_csv_path", lambda *a, **k: (out, False))
    assert tab.export_csv() == out
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert rows["odd.png"]["flag"] == "unlike training images"
    assert rows["coin.png"]["flag"] == "low confidence" and rows["coin.png"]["confidence"] == "0.550000"
    assert rows["sure.png"]["flag"] == "" and rows["bad.png"]["error"] == "not a readable image"


def fake_predictions(monkeypatch, made: dict[str, Prediction]) -> None:
    """Predict instantly: each input (a path, or a pasted image as "pasted") gets ``made[name]``."""
    from facecomic_gui.predict import jobs as predict_jobs

    def fake_job(model, inputs, *, cancel):
        yield predict_jobs.ImagesFound(tuple(inputs))
        names = [p.name if isinstance(p, Path) else "pasted" for p in inputs]
        yield predict_jobs.BatchPredicted(0, tuple(made[n] for n in names))
        return len(inputs)

    monkeypatch.setattr(predict_jobs, "predict_job", fake_job)


def shown_names(tab) -> list[str]:
    return [tab.proxy.data(tab.proxy.index(r, FILE)) for r in range(tab.proxy.rowCount())]


def sure(name: str, confidence: float, flag: str = "") -> Prediction:
    return Prediction(
        name, "faces", "Real face", confidence, {"comics": 1 - confidence, "faces": confidence}, flag=flag
    )


def test_confidence_sorts_by_number_and_details_by_flag(qtbot, window, tmp_path: Path, monkeypatch):
    made = {
        "a.png": sure("a.png", 0.95),
        "b.png": sure("b.png", 0.105, "low confidence"),
        "c.png": sure("c.png", 0.5, "unlike training images"),
        "d.png": sure("d.png", 0.095, "low confidence"),  # "9.5%": after "50.0%" as text
        "e.png": sure("e.png", 0.99995),  # ">99.9%": first as text
        "f.png": Prediction("f.png", error="not a readable image"),
        "g.png": sure("g.png", 0.8, "unlike training images"),
    }
    fake_predictions(monkeypatch, made)
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_inputs([tmp_path / name for name in made])

    tab.view.sortByColumn(CONFIDENCE, Qt.SortOrder.DescendingOrder)
    assert shown_names(tab) == ["e.png", "a.png", "g.png", "c.png", "b.png", "d.png", "f.png"]
    tab.view.sortByColumn(CONFIDENCE, Qt.SortOrder.AscendingOrder)
    assert shown_names(tab) == ["f.png", "d.png", "b.png", "c.png", "g.png", "a.png", "e.png"]

    # Sure, then low confidence, then unlike the training images, then unreadable; by name within.
    tab.view.sortByColumn(DETAILS, Qt.SortOrder.AscendingOrder)
    assert shown_names(tab) == ["a.png", "e.png", "b.png", "d.png", "c.png", "g.png", "f.png"]
    tab.view.sortByColumn(DETAILS, Qt.SortOrder.DescendingOrder)
    assert shown_names(tab) == ["f.png", "g.png", "c.png", "d.png", "b.png", "e.png", "a.png"]
    assert "low confidence" in tab.table_model.headerData(
        DETAILS, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )


def select(tab, names: list[str], current: str | None = None) -> None:
    from PySide6.QtCore import QItemSelectionModel

    selection = tab.view.selectionModel()
    selection.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for name in names:
        selection.select(tab.proxy.index(shown_names(tab).index(name), FILE), flags)
    if current is not None:
        index = tab.proxy.index(shown_names(tab).index(current), FILE)
        selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)


def test_copy_path_and_show_in_folder(qtbot, window, tmp_path: Path, monkeypatch):
    from facecomic_gui.common.thumbnails import pil_to_qimage
    from facecomic_gui.predict import tab as tab_module

    odd = tmp_path / "sub" / os.fsdecode(b"caf\xe9.png")  # not UTF-8: legal on Linux
    made = {"a.png": sure("a.png", 0.9), "b.png": sure("b.png", 0.7), odd.name: sure("x", 0.6)}
    made["pasted"] = sure("pasted", 0.8)
    fake_predictions(monkeypatch, made)
    opened: list[QUrl] = []
    monkeypatch.setattr(tab_module.QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_inputs([tmp_path / "a.png", tmp_path / "sub" / "b.png", odd])
    QGuiApplication.clipboard().setImage(pil_to_qimage(comic_like(np.random.default_rng(3), 32)))
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.paste_from_clipboard()
    assert shown_names(tab) == ["a.png", "b.png", "caf\\xe9.png", "Pasted image 1"]

    menu = tab.row_menu()
    assert [a.text() for a in menu.actions()] == [
        "Open full size", "Copy path", "Show in folder", "", "Mark as Comic", "Mark as Real face", "Clear mark",
    ]  # fmt: skip
    assert not any(a.isEnabled() for a in menu.actions() if not a.isSeparator())  # nothing selected

    select(tab, ["b.png", "caf\\xe9.png", "Pasted image 1"])
    QGuiApplication.clipboard().clear()
    tab.copy_path_action.trigger()
    assert QGuiApplication.clipboard().text() == f"{tmp_path}/sub/b.png\n{tmp_path}/sub/caf\\xe9.png"

    window.tabs.setCurrentWidget(tab)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    tab.view.setFocus()
    select(tab, ["a.png"])
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(tab.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == str(tmp_path / "a.png")  # the path, not the cell text

    select(tab, ["a.png", "b.png"], current="b.png")  # the current row's folder: sub/
    assert tab.show_in_folder_action.isEnabled()
    tab.show_in_folder_action.trigger()
    qtbot.keyClick(
        tab.view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert [url.toLocalFile() for url in opened] == [str(tmp_path / "sub")] * 2

    select(tab, ["Pasted image 1"], current="Pasted image 1")  # in memory: no folder, no path
    enabled = [a.isEnabled() for a in tab.row_menu().actions() if not a.isSeparator()]
    assert enabled == [True, False, False, False, False, False]  # a pasted image cannot be marked either
    tab.show_in_folder_action.trigger()
    assert len(opened) == 2


def test_export_writes_a_sidecar_naming_the_model(qtbot, window, tmp_path: Path, monkeypatch):
    import dataclasses
    import hashlib
    import json

    from trainer import __version__

    fake_predictions(
        monkeypatch, {"a.png": sure("a.png", 0.9), "b.png": sure("b.png", 0.6, "low confidence")}
    )
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_inputs([tmp_path / "a.png", tmp_path / "b.png"])
    out = tmp_path / "export.csv"
    monkeypatch.setattr(dialogs, "ask_csv_path", lambda *a, **k: (out, False))
    assert tab.export_csv() == out
    assert out.read_text().startswith("path,label,confidence,flag,error\n")
    sidecar = json.loads((tmp_path / "export.csv.json").read_text())
    model_path = tab.session.model.path
    assert sidecar["model"] == {
        "file": model_path.name,
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
    }
    assert sidecar["facecomic_version"] == __version__
    assert sidecar["rows"] == 2 and sidecar["columns"] == ["path", "label", "confidence", "flag", "error"]
    assert sidecar["created"].endswith("Z")

    tab.session.model = dataclasses.replace(tab.session.model, path=None)  # trained, never saved
    assert tab.export_csv() == out
    unsaved = json.loads((tmp_path / "export.csv.json").read_text())["model"]
    assert unsaved["file"] is None and unsaved["sha256"] is None and "not saved" in unsaved["note"]


def test_export_csv_never_writes_over_an_image(qtbot, window, tmp_path: Path, monkeypatch):
    root = make_dataset(tmp_path / "d", 2)
    image = root / "faces" / "0.png"
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=60_000):
        tab.add_inputs([root / "faces"])
    before = image.read_bytes()
    messages = []
    monkeypatch.setattr(dialogs.QMessageBox, "warning", lambda _p, title, text: messages.append(text))
    monkeypatch.setattr(dialogs, "ask_csv_path", lambda *a, **k: (image, False))
    assert tab.export_csv() is None
    assert image.read_bytes() == before and not (root / "faces" / "0.png.json").exists()
    assert messages == [
        f"Cannot write {image}: it is the same file as the input, which would be destroyed; "
        "choose another name for the output."
    ]


def test_export_csv_can_be_excel_safe(qtbot, window, tmp_path: Path, monkeypatch):
    made = {"=HYPERLINK(1).png": sure("=HYPERLINK(1).png", 0.9), "b.png": sure("b.png", 0.8)}
    fake_predictions(monkeypatch, made)
    tab = window.predict_tab
    with qtbot.waitSignal(tab.predictions_finished, timeout=30_000):
        tab.add_inputs([tmp_path / name for name in made])
    out = tmp_path / "safe.csv"
    offered = []

    def ask(_parent, _suggested, excel_safe):
        offered.append(excel_safe)
        return out, True

    monkeypatch.setattr(dialogs, "ask_csv_path", ask)
    assert tab.export_csv() == out
    assert [r["path"] for r in csv.DictReader(out.open(newline=""))] == ["'=HYPERLINK(1).png", "b.png"]
    assert tab.export_csv() == out
    assert offered == [False, True]  # the choice is remembered for the next export


def test_export_csv_dialog_has_the_excel_safe_checkbox(qtbot, window):
    from PySide6.QtWidgets import QCheckBox

    dialog = dialogs.csv_export_dialog(window, "/tmp/predictions.csv", True)
    qtbot.addWidget(dialog)
    box = dialog.findChild(QCheckBox, "excel_safe")
    assert box is not None and box.isChecked() and "= + - @" in box.text()
    assert (
        not dialogs.csv_export_dialog(window, "/tmp/p.csv", False)
        .findChild(QCheckBox, "excel_safe")
        .isChecked()
    )
