"""From predictions to a clean collection, in the app: marks (F, C, the row menu) shared by the
Predict tab and the error gallery, Most uncertain first, Sort into folders… with Undo, Add to
dataset…, Retrain, the comparison with the previous run, and closing with unsaved marks."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from facecomic_gui.common import dialogs
from facecomic_gui.predict.review import UNCERTAIN_FIRST_KEY
from facecomic_gui.predict.table import CONFIDENCE, LABEL
from facecomic_gui.train.form import TrainForm
from tests.gui.signals import Recorder
from tests.gui.test_predict_tab import fake_predictions, select, shown_names, sure
from tests.gui.test_train_tab import open_dataset
from trainer.common.configs import GridSpec, TrainConfig
from trainer.data.dataset import scan_dataset
from trainer.prediction.predictor import Prediction

PIXELS = TrainForm(TrainConfig(features="pixels", batch_size=16), GridSpec((0.05,), (1,)))
DIVERSE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "diverse-sample"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def label_texts(tab) -> dict[str, str]:
    return {
        tab.proxy.data(tab.proxy.index(r, 1)): tab.proxy.data(tab.proxy.index(r, LABEL))
        for r in range(tab.proxy.rowCount())
    }


def activate(qtbot, window, widget) -> None:
    """Shortcuts (F, C) reach a widget of the active window that has the focus."""
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    widget.setFocus()


def predict_files(qtbot, tab, files) -> None:
    with qtbot.waitSignal(tab.predictions_finished, timeout=60_000):
        tab.add_inputs(list(files))


def real_images(tmp_path: Path, count_per_class: int = 2) -> list[Path]:
    """A few photos and drawings of the diverse sample, copied (so they may be moved)."""
    if not DIVERSE.is_dir():
        pytest.skip(f"the real sample {DIVERSE} is not here")
    folder = tmp_path / "pile"
    folder.mkdir()
    files = []
    for cls in ("faces", "comics"):
        for source in sorted((DIVERSE / cls).iterdir())[:count_per_class]:
            files.append(Path(shutil.copy(source, folder / f"{cls}-{source.name}")))
    return files


def test_keys_f_and_c_mark_the_selected_rows_and_the_table_shows_the_mark(
    qtbot, window, tmp_path: Path, monkeypatch
):
    made = {
        "a.png": sure("a.png", 0.9),
        "b.png": sure("b.png", 0.7),
        "c.png": Prediction("c.png", error="broken"),
    }
    fake_predictions(monkeypatch, made)
    tab = window.predict_tab
    predict_files(qtbot, tab, [tmp_path / n for n in made])
    corrections = window.review.corrections
    window.tabs.setCurrentWidget(tab)
    activate(qtbot, window, tab.view)
    select(tab, ["a.png", "b.png"], current="a.png")
    qtbot.keyClick(tab.view, Qt.Key.Key_C)  # both are comics, says the user
    assert {Path(p).name: c.true_class for p, c in corrections.marks.items()} == {
        "a.png": "comics",
        "b.png": "comics",
    }
    assert all(c.wrong for c in corrections.marks.values())  # the model said faces
    assert label_texts(tab)["a.png"] == "✔ Comic"
    tip = tab.table_model.data(tab.table_model.index(0, LABEL), Qt.ItemDataRole.ToolTipRole)
    assert "Marked Comic by you" in tip and "The model said Real face (90.0%)" in tip
    assert tab.review.add_button.text() == "Add 2 marked to dataset…" and tab.review.add_button.isEnabled()
    qtbot.keyClick(tab.view, Qt.Key.Key_C)  # again: the mark goes
    assert corrections.marks == {} and label_texts(tab)["a.png"] == "Real face"
    select(tab, ["b.png"], current="b.png")
    qtbot.keyClick(tab.view, Qt.Key.Key_F)
    assert [c.true_class for c in corrections.marks.values()] == ["faces"]
    assert not next(iter(corrections.marks.values())).wrong  # agrees with the model: still a label
    select(tab, ["c.png"], current="c.png")  # unreadable: nothing to mark
    qtbot.keyClick(tab.view, Qt.Key.Key_F)
    assert len(corrections.marks) == 1
    window.tabs.setCurrentWidget(window.train_tab)  # marks survive switching tabs
    window.tabs.setCurrentWidget(tab)
    assert label_texts(tab)["b.png"] == "✔ Real face"


def test_most_uncertain_first_puts_flags_then_closest_to_half_on_top(
    qtbot, window, tmp_path: Path, monkeypatch
):
    made = {
        "sure.png": sure("sure.png", 0.97),
        "half.png": sure("half.png", 0.52),
        "sixty.png": sure("sixty.png", 0.61),
        "flagged.png": sure("flagged.png", 0.9, "unlike training images"),
        "chart.png": sure("chart.png", 0.99, "not a face"),
        "broken.png": Prediction("broken.png", error="not a readable image"),
    }
    fake_predictions(monkeypatch, made)
    tab = window.predict_tab
    predict_files(qtbot, tab, [tmp_path / n for n in made])
    tab.filter_combo.setCurrentIndex(tab.filter_combo.findData(UNCERTAIN_FIRST_KEY))
    assert tab.filter_combo.currentText() == "Most uncertain first"
    assert shown_names(tab) == ["flagged.png", "chart.png", "half.png", "sixty.png", "sure.png", "broken.png"]
    assert tab.view.horizontalHeader().sortIndicatorSection() == CONFIDENCE


def test_sort_into_folders_moves_shows_progress_and_undo_brings_everything_back(
    qtbot, window, tmp_path: Path
):
    files = real_images(tmp_path)
    original = {f.name: sha(f) for f in files}
    tab = window.predict_tab
    predict_files(qtbot, tab, files)
    (tmp_path / "pile" / "notes.txt").write_text("stays")
    out = tmp_path / "sorted"
    dialog = tab.review.open_sort_dialog(str(out), move=True)
    session = dialog.session
    counts = session.counts()
    assert sum(counts.values()) == 4 and dialog.table.rowCount() == len(counts) + 1
    table_counts = {
        dialog.table.item(r, 0).text().split("/")[0]: dialog.table.item(r, 1).text()
        for r in range(dialog.table.rowCount())
    }
    assert table_counts["Total"] == "4"
    assert dialog.sort_button.text() == "Move" and dialog.sort_button.isEnabled()
    with qtbot.waitSignal(dialog.sort_finished, timeout=30_000):
        dialog.sort_button.click()
    assert session.error is None and "Moved 4 images into" in dialog.status.text()
    assert sorted(p.name for p in (tmp_path / "pile").iterdir()) == ["notes.txt"]
    moved = [r.path for r in tab.session.rows]
    assert all(out in p.parents for p in moved)  # the rows follow their files
    assert {p.name: sha(p) for p in moved} == original
    assert dialog.undo_button.isVisible() and dialog.undo_button.isEnabled()
    assert not dialog.sort_button.isEnabled()  # nothing left where it was
    with qtbot.waitSignal(dialog.sort_finished, timeout=30_000):
        dialog.undo_button.click()
    assert "Undone: 4 moved back" in dialog.status.text()
    assert {p.name: sha(p) for p in (tmp_path / "pile").iterdir() if p.suffix != ".txt"} == original
    assert [r.path.parent for r in tab.session.rows] == [tmp_path / "pile"] * 4
    assert list(p.name for p in out.iterdir()) == ["facecomic-sort-log.csv"]


def test_the_sort_dialog_says_why_it_cannot_sort(qtbot, window, tmp_path: Path, monkeypatch):
    made = {"a.png": sure(str(tmp_path / "a.png"), 0.9)}
    fake_predictions(monkeypatch, made)
    (tmp_path / "a.png").write_bytes(b"x")
    tab = window.predict_tab
    predict_files(qtbot, tab, [tmp_path / "a.png"])
    dialog = tab.review.open_sort_dialog(str(tmp_path))  # the folder holding the image
    qtbot.addWidget(dialog)
    assert not dialog.sort_button.isEnabled()
    assert "is inside the target folder" in dialog.error.text() and dialog.error.isVisibleTo(dialog)
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a: tmp_path / "elsewhere")
    dialog.choose_button.click()
    assert dialog.sort_button.isEnabled() and dialog.error.text() == ""


def test_the_gallery_marks_with_f_and_c_into_the_same_corrections(qtbot, window, tiny_dataset: Path):
    from tests.gui.test_gallery import train

    train(qtbot, window, tiny_dataset)
    gallery = window.train_tab.open_gallery(1, 1)
    qtbot.waitExposed(gallery)
    gallery.activateWindow()
    qtbot.waitUntil(gallery.isActiveWindow)
    gallery.table.setFocus()
    path = gallery.session.full_path(gallery.session.images[0])
    qtbot.keyClick(gallery.table, Qt.Key.Key_C)
    assert window.review.corrections.true_class(path) == "comics"
    assert gallery.model.index(0, 2).data() == "✔ Comic"
    assert [a.text() for a in gallery.marks.menu_actions()] == [
        "Mark as Comic",
        "Mark as Real face",
        "Clear mark",
    ]
    assert window.predict_tab.review.add_button.text() == "Add 1 marked to dataset…"


def test_the_add_button_is_off_while_adding_and_back_on_after_a_failed_add(
    qtbot, window, tmp_path: Path, monkeypatch
):
    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda _parent, title, _message: errors.append(title))
    corrections = window.review.corrections
    button = window.predict_tab.review.add_button
    corrections.mark([tmp_path / "x.png"], "faces", ["comics"])
    assert button.isEnabled()
    with qtbot.waitSignal(corrections.add_failed, timeout=30_000):
        assert window.review.add_marked_to_dataset(str(tmp_path / "no such folder"))
        assert corrections.adding and not button.isEnabled()  # one addition at a time
    assert errors == ["Could not add the images"]
    assert not corrections.adding
    assert button.isEnabled() and button.text() == "Add 1 marked to dataset…"  # try another folder


def test_closing_with_unsaved_marks_asks_first(qtbot, window, tmp_path: Path, monkeypatch):
    window.review.corrections.mark([tmp_path / "x.png"], "faces", ["comics"])
    asked = []
    monkeypatch.setattr(dialogs, "confirm_close_with_marks", lambda _p, n: asked.append(n) or False)
    window.show()
    assert not window.close() and window.isVisible() and asked == [1]
    monkeypatch.setattr(dialogs, "confirm_close_with_marks", lambda _p, n: asked.append(n) or True)
    assert window.close() and asked == [1, 1]


def test_mark_three_add_them_to_a_copy_of_a_dataset_and_retrain_on_it(
    qtbot, window, tmp_path: Path, shared_sample: Path, monkeypatch
):
    """The acceptance path: three wrong answers marked, added to a copy of face2comics-sample,
    a run on it whose data counts include them, compared with the run before."""
    data = Path(shutil.copytree(shared_sample, tmp_path / "face2comics-copy"))
    before = {p for p in data.rglob("*") if p.is_file()}
    counts_before = dict(zip(scan_dataset(data).class_names, scan_dataset(data).counts, strict=True))
    train_tab = window.train_tab
    train_tab.set_form(PIXELS)  # "the current settings": fast ones, for the test
    open_dataset(qtbot, train_tab, data)
    with qtbot.waitSignal(train_tab.run_finished, timeout=180_000):
        train_tab.start_training()  # the run Retrain is compared with

    files = real_images(tmp_path, count_per_class=2)[:3]
    tab = window.predict_tab
    predict_files(qtbot, tab, files)
    window.tabs.setCurrentWidget(tab)
    activate(qtbot, window, tab.view)
    wrong = {}
    for row in tab.session.rows:
        other = "faces" if row.prediction.label == "comics" else "comics"
        select(tab, [row.name], current=row.name)
        qtbot.keyClick(tab.view, Qt.Key.Key_F if other == "faces" else Qt.Key.Key_C)
        wrong[row.path] = other
    assert all(c.wrong for c in window.review.corrections.marks.values()) and len(wrong) == 3

    monkeypatch.setattr(dialogs, "ask_folder", lambda *a: data)
    monkeypatch.setattr(dialogs, "ask_retrain", lambda _parent, text: "Added 3 images" in text)
    # One click starts the chain: add, Retrain (scan, run), the Runs listing, the comparison.
    # Every signal of it is recorded from before the click, so none is missed by a later wait.
    retrained, compared = Recorder(train_tab.run_finished), Recorder(window.review.compared)
    with qtbot.waitSignal(window.review.retrain_started, timeout=30_000):
        tab.review.add_button.click()
    added = {p for p in data.rglob("*") if p.is_file()} - before
    assert len(added) == 3
    for source, true_class in wrong.items():
        twin = [p for p in added if sha(p) == sha(source)]
        assert len(twin) == 1 and twin[0].parent == data / true_class
    assert window.review.corrections.unsaved() == []

    (outcome,) = retrained.wait(qtbot, timeout=180_000)  # Retrain: the scan, then the run
    counts = dict(zip(outcome.result.class_names, outcome.result.counts, strict=True))
    expected = dict(counts_before)
    for true_class in wrong.values():
        expected[true_class] += 1
    assert counts == expected
    (dialog,) = compared.wait(qtbot, timeout=30_000)
    assert len(retrained.emitted) == len(compared.emitted) == 1
    caption = dialog.findChild(type(train_tab.result_label)).text()
    assert f"{counts_before['faces']:,} faces" in caption and f"{expected['faces']:,} faces" in caption
    assert window.tabs.currentWidget() is train_tab


def test_a_retrain_is_compared_even_when_the_listing_with_its_run_came_first(
    qtbot, window, trained, monkeypatch
):
    """Whichever comes last, the retrained run's end or the Runs listing that has its file,
    opens the comparison: one that waited only for a listing to come lost it when it came first."""
    import os

    from facecomic_gui.train.jobs import TrainingOutcome

    result, model_file, root = trained
    runs_dir = window.runs_session.runs_dir
    runs_dir.mkdir(parents=True, exist_ok=True)
    before, retrained = runs_dir / "before.safetensors", runs_dir / "retrained.safetensors"
    shutil.copy(model_file, before)
    shutil.copy(model_file, retrained)
    os.utime(before, (1, 1))  # the same data set, saved earlier
    with qtbot.waitSignal(window.runs_tab.listed, timeout=30_000):
        window.runs_tab.refresh()  # the listing that has the retrained run's file: it comes first
    assert window.runs_session.index_of(retrained) is not None
    monkeypatch.setattr(window.train_session, "train_after_next_scan", lambda: None)
    monkeypatch.setattr(window.train_session, "set_dataset", lambda _path: None)
    assert window.review.retrain(str(root))
    monkeypatch.setattr(window.runs_session, "refresh", lambda: None)  # and no listing comes after
    compared = Recorder(window.review.compared)
    window.train_tab.run_finished.emit(TrainingOutcome(result, None, retrained))
    (dialog,) = compared.wait(qtbot, timeout=5_000)
    assert dialog is window.runs_tab.compare_dialog
    assert [window.runs_session.entries[i].path for i in window.runs_session.selected] == [retrained, before]
