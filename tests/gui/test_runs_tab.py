"""The Runs tab: the runs folder listed in the background, reopen, compare, rename, delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QInputDialog, QMessageBox

from facecomic_gui.common import dialogs
from tests.gui.test_gallery import train
from tests.gui.test_train_tab import FAST


def listed(qtbot, window) -> None:
    """Wait until the runs folder has been read (after a finished run or a refresh)."""
    qtbot.waitUntil(
        lambda: window.runs_session.state == "idle" and not window.jobs.is_running("runs"), timeout=30_000
    )


@pytest.fixture
def two_runs(qtbot, window, tiny_dataset: Path):
    first = train(qtbot, window, tiny_dataset)
    listed(qtbot, window)
    window.train_tab.set_form(
        FAST.__class__(FAST.config.__class__(batch_size=8, seed=3, head="mlp"), FAST.grid)
    )
    with qtbot.waitSignal(window.train_tab.run_finished, timeout=120_000) as blocker:
        window.train_tab.start_training()
    listed(qtbot, window)
    return first, blocker.args[0]


def row_of(tab, path: Path) -> int:
    return next(i for i, e in enumerate(tab.session.entries) if e.path == path)


def test_finished_runs_are_listed_and_a_reopened_run_shows_the_same_numbers(qtbot, window, two_runs):
    first, second = two_runs
    runs = window.runs_tab
    assert {e.path for e in runs.session.entries} == {first.saved_to, second.saved_to}
    texts = runs.row_texts(row_of(runs, first.saved_to))
    assert texts[2] == "tiny" and texts[3] == first.model.feature_kind
    assert texts[5] == f"{first.result.holdout.accuracy:.1%}"
    tab = window.train_tab
    finished = {  # what the Train tab shows of the second run, the one it just finished
        "grid": {
            (lr, e): tab.grid_table.cell_text(lr, e)
            for lr in FAST.grid.learning_rates
            for e in FAST.grid.epochs
        },
        "best": tab.grid_table.highlighted(),
    }
    # Reopen the first run: the Train tab shows exactly its numbers, as when it finished.
    runs.select_rows([row_of(runs, first.saved_to)])
    runs.open_button.click()
    assert window.tabs.currentWidget() is tab
    result = first.result
    for r in result.grid_results:
        assert tab.grid_table.cell_text(r.lr, r.epochs) == f"{r.val_accuracy:.3f} / {r.val_loss:.3f}"
    assert tab.grid_table.highlighted() == (result.best.lr, result.best.epochs)
    assert tab.holdout.accuracy.text() == f"{result.holdout.accuracy:.1%}"
    assert f"calibration error {result.holdout.ece:.3f}" in tab.holdout.calibration.text()
    shown = [[tab.holdout.confusion.item(r, c).text() for c in range(2)] for r in range(2)]
    assert shown == [[f"{v:,}" for v in row] for row in result.holdout.confusion_matrix]
    # Curves rebuilt from the saved history: one point per epoch per learning rate.
    assert tab.accuracy_plot.point_count("lr 0.05") == max(FAST.grid.epochs)
    epochs, values = tab.loss_plot.series_data("lr 0.05")
    assert epochs == [1, 2] and len(values) == 2
    # Its gallery is the first run's.
    gallery = tab.open_gallery(0, 0)
    assert len(gallery.session.images) == result.holdout.confusion_matrix[0][0]
    # And the second run's numbers come back when it is reopened.
    runs.select_rows([row_of(runs, second.saved_to)])
    runs.open_selected()
    assert tab.grid_table.highlighted() == finished["best"]
    assert {k: tab.grid_table.cell_text(*k) for k in finished["grid"]} == finished["grid"]


def test_compare_puts_both_runs_curves_on_one_plot(qtbot, window, two_runs):
    runs = window.runs_tab
    runs.select_rows([0, 1])
    assert runs.compare_button.isEnabled() and not runs.open_button.isEnabled()
    runs.compare_button.click()
    dialog = runs.compare_dialog
    names = set(dialog.curves["loss"])
    assert names == {f"{tag}: lr {lr:g}" for tag in "AB" for lr in FAST.grid.learning_rates}
    assert set(dialog.curves["accuracy"]) == names
    a, b = (runs.session.entries[i] for i in runs.session.selected)
    for tag, entry in (("A", a), ("B", b)):
        assert dialog.curves["accuracy"][f"{tag}: lr 0.05"][1] == pytest.approx(
            [p.val_accuracy for p in entry.model.history if p.lr == 0.05]
        )
    assert len(dialog.loss_plot.getPlotItem().listDataItems()) == 4  # both runs on one plot


def test_use_for_predictions_switches_the_model(qtbot, window, two_runs):
    first, _ = two_runs
    runs = window.runs_tab
    runs.select_rows([row_of(runs, first.saved_to)])
    with qtbot.waitSignal(window.model_changed, timeout=5_000):
        runs.use_button.click()
    assert window.current_model.path == first.saved_to
    assert window.tabs.currentWidget() is window.predict_tab


def test_unreadable_files_are_listed_with_a_reason(qtbot, window, tiny_dataset: Path, tmp_path: Path):
    outcome = train(qtbot, window, tiny_dataset)
    listed(qtbot, window)
    runs_dir = outcome.saved_to.parent
    (runs_dir / "garbage.safetensors").write_bytes(b"\x00not a model at all" * 10)
    data = outcome.saved_to.read_bytes()
    (runs_dir / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    runs = window.runs_tab
    with qtbot.waitSignal(runs.listed, timeout=30_000):
        runs.refresh_button.click()
    entries = {e.name: e for e in runs.session.entries}
    assert set(entries) == {"garbage", "truncated", outcome.saved_to.stem}
    for name in ("garbage", "truncated"):
        row = row_of(runs, entries[name].path)
        reason = runs.row_texts(row)[1]
        assert reason.startswith("Cannot be read:") and "is not a valid FaceComic model" in reason
        runs.select_rows([row])
        assert not runs.open_button.isEnabled() and runs.delete_button.isEnabled()
    # The view still works: the good run opens.
    runs.select_rows([row_of(runs, outcome.saved_to)])
    runs.open_selected()
    assert window.train_tab.holdout.accuracy.text() == f"{outcome.result.holdout.accuracy:.1%}"


def test_delete_asks_first_and_removes_only_after_yes(qtbot, window, tiny_dataset: Path, monkeypatch):
    outcome = train(qtbot, window, tiny_dataset)
    listed(qtbot, window)
    runs = window.runs_tab
    runs.select_rows([row_of(runs, outcome.saved_to)])
    asked = []

    def answer(reply):
        def question(*args, **kwargs):
            asked.append(args[2])
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    runs.delete_button.click()
    assert len(asked) == 1 and outcome.saved_to.name in asked[0]
    assert outcome.saved_to.is_file() and len(runs.session.entries) == 1
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    runs.delete_button.click()
    assert len(asked) == 2
    assert not outcome.saved_to.exists() and runs.session.entries == []
    assert runs.table.rowCount() == 0


def test_rename_validates_the_name_and_renames_the_file(qtbot, window, tiny_dataset: Path, monkeypatch):
    outcome = train(qtbot, window, tiny_dataset)
    listed(qtbot, window)
    runs = window.runs_tab
    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda _parent, _title, message: errors.append(message))
    monkeypatch.setattr("facecomic_gui.runs.tab.show_error", lambda _p, _t, message: errors.append(message))
    runs.select_rows([0])
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("bad/name", True))
    runs.rename_button.click()
    assert errors and "slash" in errors[-1] and outcome.saved_to.is_file()
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("my best run", True))
    runs.rename_button.click()
    target = outcome.saved_to.with_name("my best run.safetensors")
    assert target.is_file() and not outcome.saved_to.exists()
    assert runs.row_texts(0)[0] == "my best run"
    assert runs.session.entries[0].model.path == target


def test_entries_that_are_not_files_are_listed_with_a_reason(qtbot, window, trained):
    """A folder, a FIFO and a broken link named *.safetensors are listed, never silently left out
    (and the FIFO is never opened, which would hang the listing)."""
    import os
    import shutil

    from facecomic_gui.runs.tab import DATE, NAME
    from trainer.common.text import shorten

    runs_dir = window.runs_session.runs_dir
    runs_dir.mkdir(parents=True, exist_ok=True)
    long_name = "20261129-101500-" + "face2comics-sample-" * 6 + "final"
    shutil.copy(trained[1], runs_dir / f"{long_name}.safetensors")
    (runs_dir / "folder.safetensors").mkdir()
    os.mkfifo(runs_dir / "pipe.safetensors")
    nowhere = runs_dir / ("deep-folder-" * 20) / "nowhere.safetensors"  # a long reason
    (runs_dir / "gone.safetensors").symlink_to(nowhere)
    runs = window.runs_tab
    with qtbot.waitSignal(runs.listed, timeout=30_000):
        runs.refresh_button.click()
    reasons = {e.name: runs.row_texts(row_of(runs, e.path))[1] for e in runs.session.entries}
    assert reasons.pop(long_name) != ""
    assert reasons == {
        "folder": "Cannot be read: A folder, not a model file.",
        "pipe": "Cannot be read: Not a regular file (a named pipe).",
        "gone": f"Cannot be read: A broken link (nothing at {shorten(str(nowhere))}).",
    }
    # The long name is one line cut in the middle, whole in the tooltip, in a column wide enough
    # to read it even beside a long reason.
    window.resize(1100, 700)
    window.tabs.setCurrentWidget(runs)
    window.show()
    qtbot.waitExposed(window)
    table = runs.table
    assert table.columnWidth(NAME) >= 400, table.columnWidth(NAME)
    assert table.columnWidth(DATE) >= table.fontMetrics().horizontalAdvance("2026-12-01 02:45")
    assert table.textElideMode() == table.textElideMode().ElideMiddle and not table.wordWrap()
    item = table.item(row_of(runs, runs_dir / f"{long_name}.safetensors"), NAME)
    assert item.text() == long_name and item.toolTip().startswith(f"{long_name}.safetensors\n")
