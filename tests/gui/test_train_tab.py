from __future__ import annotations

import gc
import shutil
from pathlib import Path

from facecomic_gui.common import dialogs
from facecomic_gui.common.worker import running_threads, running_workers
from facecomic_gui.train.form import TrainForm
from tests.gui.drag_and_drop import drop
from trainer.common.configs import GridSpec, TrainConfig
from trainer.data.synthetic import make_dataset
from trainer.model.model_file import load_model

# The MLP head, on two learning rates x two epoch counts (the linear head has its own tests).
FAST = TrainForm(TrainConfig(batch_size=16, head="mlp"), GridSpec((0.05, 0.01), (1, 2)))
SLOW = TrainForm(TrainConfig(batch_size=1, head="mlp"), GridSpec((0.01,), (100_000,)))


def open_dataset(qtbot, tab, path: Path) -> None:
    with qtbot.waitSignal(tab.scan_finished, timeout=30_000):
        tab.set_dataset(str(path))


def test_full_training_flow(qtbot, window, tiny_dataset: Path, tmp_path: Path):
    tab = window.train_tab
    tab.set_form(FAST)
    open_dataset(qtbot, tab, tiny_dataset)
    assert "20 images" in tab.summary.classes_box.findChildren(type(tab.phase_label))[0].text()
    assert not tab.save_button.isVisibleTo(tab)
    with qtbot.waitSignal(tab.run_finished, timeout=120_000) as blocker:
        tab.start_button.click()
        assert window.train_session.state == "running"
        assert not tab.start_button.isEnabled() and tab.cancel_button.isEnabled()
    outcome = blocker.args[0]
    session = window.train_session
    assert session.state == "idle"  # announced only once idle
    for lr in FAST.grid.learning_rates:
        for epochs in FAST.grid.epochs:
            assert "/" in tab.grid_table.cell_text(lr, epochs)
    assert session.best == outcome.result.best  # the session's pick_best agrees with the run's
    assert tab.grid_table.highlighted() == (outcome.result.best.lr, outcome.result.best.epochs)
    assert tab.holdout.accuracy.text() == f"{outcome.result.holdout.accuracy:.1%}"
    assert tab.holdout.confusion.rowCount() == 2
    assert tab.loss_plot.series_names == [
        "lr 0.05",
        "lr 0.01",
        "final: lr " + f"{outcome.result.best.lr:g}, {outcome.result.best.epochs} ep",
    ]
    assert tab.loss_plot.point_count("lr 0.05") == 4  # 2 epochs x 2 batches of 16 out of 20
    assert tab.accuracy_plot.point_count("lr 0.01") == 2
    assert tab.save_button.isVisibleTo(tab) and tab.use_button.isVisibleTo(tab)
    assert tab.start_button.isEnabled()
    assert outcome.saved_to.parent == tmp_path / "runs"
    assert load_model(outcome.saved_to).holdout == outcome.result.holdout
    tab.use_button.click()
    assert window.current_model is outcome.model
    assert window.tabs.currentWidget() is window.predict_tab


def test_the_default_linear_head_trains_and_shows_its_l2_grid_and_curves(qtbot, window, tiny_dataset: Path):
    tab = window.train_tab
    grid = GridSpec(l2=(0.01, 0.1, 1.0))
    tab.set_form(TrainForm(TrainConfig(), grid))  # the defaults: pretrained features, auto head
    settings = tab.settings
    assert settings.head.currentText() == "Auto: linear"
    assert (
        "linear head" in settings.learning_rates.toolTip().lower()
        or "mlp" in settings.learning_rates.toolTip().lower()
    )
    open_dataset(qtbot, tab, tiny_dataset)
    with qtbot.waitSignal(tab.run_finished, timeout=120_000) as blocker:
        tab.start_button.click()
    result = blocker.args[0].result
    assert result.train_config.head == "linear" and result.best.l2 in grid.l2
    for l2 in grid.l2:
        assert "/" in tab.grid_table.cell_text(None, None, l2)
    assert tab.grid_table.highlighted() == (None, None, result.best.l2)
    assert tab.grid_table.rowCount() == 3 and tab.grid_table.columnCount() == 1
    assert tab.loss_plot.series_names == [
        "L2 0.01", "L2 0.1", "L2 1", f"final: L2 {result.best.l2:g}", f"refit: L2 {result.best.l2:g}"
    ]  # fmt: skip
    assert tab.accuracy_plot.point_count("linear head") == 3
    assert "linear head at L2" in tab.holdout.caption.text() and "refitted" in tab.holdout.caption.text()


def test_save_model_from_the_train_tab(qtbot, window, tiny_dataset: Path, tmp_path: Path, monkeypatch):
    tab = window.train_tab
    tab.set_form(FAST)
    open_dataset(qtbot, tab, tiny_dataset)
    with qtbot.waitSignal(tab.run_finished, timeout=120_000):
        tab.start_training()
    target = tmp_path / "chosen"
    monkeypatch.setattr(dialogs.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    tab.save_button.click()
    assert load_model(target.with_suffix(".safetensors")).class_names == ("comics", "faces")


def test_cancel_stops_quickly_and_writes_nothing(qtbot, window, tiny_dataset: Path, tmp_path: Path):
    tab = window.train_tab
    tab.set_form(SLOW)
    open_dataset(qtbot, tab, tiny_dataset)
    tab.start_training()
    qtbot.waitUntil(lambda: tab.loss_plot.point_count("lr 0.01") > 0, timeout=60_000)
    with qtbot.waitSignal(tab.run_cancelled, timeout=3_000):
        tab.cancel_button.click()
        assert window.train_session.state == "cancelling"
        assert tab.cancel_button.text() == "Cancelling…"
        assert not tab.start_button.isEnabled()
    assert window.train_session.state == "idle"
    assert tab.start_button.isEnabled()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert window.train_session.outcome is None


def test_closing_during_training_cancels_and_joins(
    qtbot, settings, tiny_dataset: Path, tmp_path: Path, capfd
):
    from facecomic_gui.main_window import MainWindow

    win = MainWindow(settings, tmp_path / "runs", restore=False)
    qtbot.addWidget(win)
    tab = win.train_tab
    tab.set_form(SLOW)
    open_dataset(qtbot, tab, tiny_dataset)
    tab.start_training()
    qtbot.waitUntil(lambda: tab.loss_plot.point_count("lr 0.01") > 0, timeout=60_000)
    assert running_threads() > 0
    win.close()
    assert running_threads() == 0  # joined at close
    gc.collect()
    qtbot.waitUntil(lambda: running_workers() == 0, timeout=5_000)
    assert "QThread: Destroyed" not in capfd.readouterr().err


def test_bad_dataset_folder_is_one_sentence(qtbot, window, tmp_path: Path):
    tab = window.train_tab
    only_one = make_dataset(tmp_path / "one", 3)
    shutil.rmtree(only_one / "comics")
    with qtbot.waitSignal(tab.scan_failed, timeout=30_000) as blocker:
        tab.set_dataset(str(only_one))
    assert "only one class folder" in blocker.args[0]
    assert not tab.dataset_error.isHidden()
    assert window.train_session.state == "idle" and not tab.start_button.isEnabled()
    with qtbot.waitSignal(tab.scan_failed, timeout=30_000) as blocker:
        tab.set_dataset(str(tmp_path / "missing"))
    assert "does not exist" in blocker.args[0]


def test_dropping_a_folder_opens_it(qtbot, window, tiny_dataset: Path):
    tab = window.train_tab
    with qtbot.waitSignal(tab.scan_finished, timeout=30_000):
        drop(tab, [tiny_dataset])
    assert window.train_session.dataset_path == str(tiny_dataset)


def test_choose_folder_dialog(qtbot, window, tiny_dataset: Path, monkeypatch):
    monkeypatch.setattr(dialogs.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tiny_dataset))
    with qtbot.waitSignal(window.train_tab.scan_finished, timeout=30_000):
        window.open_dataset_action.trigger()
    assert window.train_session.dataset_path == str(tiny_dataset)


def test_imbalance_warning_and_skipped_files(qtbot, window, tmp_path: Path):
    data = make_dataset(tmp_path / "imb", 10)
    for i in range(4, 10):
        (data / "comics" / f"{i}.png").unlink()
    (data / "faces" / "notes.txt").write_text("x")
    (data / "faces" / "zero.jpg").write_bytes(b"")
    tab = window.train_tab
    open_dataset(qtbot, tab, data)
    assert not tab.summary.imbalance.isHidden()
    assert "2.8x" in tab.summary.imbalance.text()
    assert tab.summary.skipped_toggle.text() == "1 file skipped"
    tab.summary.skipped_toggle.click()
    assert not tab.summary.skipped_list.isHidden()
    assert tab.summary.skipped_list.item(0).text() == "notes.txt: not an image file (.txt)"


def test_an_unreadable_image_found_while_extracting_features_is_listed_as_skipped(
    qtbot, window, tmp_path: Path
):
    """With the default (pretrained) features too, not only pixels: the featurizer's one finished
    event carries the files it could not read, and the tab lists them."""
    root = make_dataset(tmp_path / "d", 20)
    (root / "faces" / "broken.jpg").write_bytes(b"not a jpeg at all")
    tab = window.train_tab
    tab.set_form(FAST)
    assert FAST.config.features == TrainConfig().features  # the default feature kind
    open_dataset(qtbot, tab, root)
    assert tab.summary.skipped_toggle.isHidden()  # the scan cannot know; extraction finds it
    with qtbot.waitSignal(tab.run_finished, timeout=120_000):
        tab.start_button.click()
    assert tab.summary.skipped_toggle.text() == "1 file skipped"
    tab.summary.skipped_toggle.click()
    item = tab.summary.skipped_list.item(0).text()
    assert item.endswith("broken.jpg: not a readable image (unknown format or corrupt header)"), item


def test_extra_class_folders_are_named_beside_the_skipped_files(qtbot, window, tmp_path: Path):
    import shutil

    data = make_dataset(tmp_path / "three", 6)
    shutil.copytree(data / "faces", data / "other")
    tab = window.train_tab
    open_dataset(qtbot, tab, data)
    assert not tab.summary.ignored_label.isHidden()
    assert tab.summary.ignored_label.text() == (
        "1 folder with images not used: other/ (the classes are comics/ and faces/)"
    )
    open_dataset(qtbot, tab, make_dataset(tmp_path / "two", 6))
    assert tab.summary.ignored_label.isHidden()


def test_invalid_settings_disable_start(qtbot, window, tiny_dataset: Path):
    tab = window.train_tab
    open_dataset(qtbot, tab, tiny_dataset)
    assert tab.start_button.isEnabled()
    tab.settings.learning_rates.setText("0.01, fast")
    assert not tab.start_button.isEnabled()
    assert "Learning rates must be numbers" in tab.settings.error.text()
    assert "Learning rates must be numbers" in tab.settings.field_error("learning_rates")
    tab.settings.learning_rates.setText("0.01")
    tab.settings.epochs.setText("0")
    assert not tab.start_button.isEnabled()
    assert "from 1 to 1,000,000" in tab.settings.field_error("epochs")
    assert tab.settings.field_error("learning_rates") is None
    tab.settings.epochs.setText("3")
    assert tab.start_button.isEnabled()
    tab.settings.seed.setText("4294967296")  # one past the largest seed: marked, not clamped
    assert not tab.start_button.isEnabled()
    assert "0 to 4294967295" in tab.settings.field_error("seed")
    assert tab.settings.seed.text() == "4294967296"
    tab.settings.seed.setText("4294967295")
    assert tab.start_button.isEnabled()
    assert window.train_session.form.config.seed == 4294967295


def test_train_after_a_failed_scan_is_disarmed(qtbot, window, tiny_dataset: Path, tmp_path: Path):
    tab = window.train_tab
    window.train_session.train_after_next_scan()
    with qtbot.waitSignal(tab.scan_failed, timeout=30_000):
        tab.set_dataset(str(tmp_path / "missing"))
    open_dataset(qtbot, tab, tiny_dataset)
    assert window.train_session.state == "idle"  # the later folder did not start training by itself


def test_a_failed_automatic_save_keeps_the_run(qtbot, settings, tiny_dataset: Path, tmp_path: Path):
    from facecomic_gui.main_window import MainWindow

    blocked = tmp_path / "runs-is-a-file"
    blocked.write_text("not a folder")
    win = MainWindow(settings, blocked, restore=False)
    qtbot.addWidget(win)
    tab = win.train_tab
    tab.set_form(FAST)
    open_dataset(qtbot, tab, tiny_dataset)
    with qtbot.waitSignal(tab.run_finished, timeout=120_000) as blocker:
        tab.start_training()
    outcome = blocker.args[0]
    assert outcome.saved_to is None and outcome.save_error
    assert "Could not save automatically" in tab.result_label.text()
    assert tab.save_button.isVisibleTo(tab)
    tab.use_button.click()
    assert win.current_model is outcome.model
    win.close()


def test_holdout_hints_when_a_class_is_never_predicted(qtbot):
    import numpy as np

    from facecomic_gui.train.results_panel import HoldoutWidget
    from trainer.model.results import HoldoutMetrics

    widget = HoldoutWidget()
    qtbot.addWidget(widget)
    all_faces = HoldoutMetrics.from_predictions(np.array([0, 0, 1, 1]), np.array([1, 1, 1, 1]), 0.6, 2)
    widget.show_metrics(all_faces, ("comics", "faces"))
    assert not widget.hint.isHidden() and "never predicted Comic" in widget.hint.text()
    balanced = HoldoutMetrics.from_predictions(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 0.4, 2)
    widget.show_metrics(balanced, ("comics", "faces"))
    assert widget.hint.isHidden()
    assert widget.accuracy.text() == "75.0%"


def test_a_long_run_of_over_five_thousand_batches_finishes(qtbot, window, tmp_path: Path):
    """Thousands of cross-thread signals: PySide6 6.12.0 aborted Python 3.11 on such runs."""
    from trainer.training import events as ev

    data = make_dataset(tmp_path / "long", 10)
    tab, session = window.train_tab, window.train_session
    epochs = 220
    tab.set_form(TrainForm(TrainConfig(batch_size=1, head="mlp"), GridSpec((0.05,), (epochs,))))
    open_dataset(qtbot, tab, data)
    splits = []
    session.run_event.connect(lambda e: splits.append(e) if isinstance(e, ev.SplitMade) else None)
    with qtbot.waitSignal(tab.run_finished, timeout=60_000) as blocker:
        tab.start_training()
    outcome = blocker.args[0]
    train, val = (sum(counts) for counts in splits[0].counts[:2])
    expected = epochs * train + epochs * (train + val)  # batch size 1: grid, then train+val
    assert session.batches_seen == expected >= 5_000
    assert tab.grid_table.cell_text(0.05, epochs) != "…"
    assert tab.holdout.accuracy.text() == f"{outcome.result.holdout.accuracy:.1%}"
    assert tab.loss_plot.point_count("lr 0.05") == epochs * train


def test_two_windows_on_one_decode_cache_train_alike(qtbot, settings, tmp_path: Path, monkeypatch):
    from facecomic_gui.main_window import MainWindow

    monkeypatch.setenv("FACECOMIC_CACHE_DIR", str(tmp_path / "shared-cache"))
    data = make_dataset(tmp_path / "same", 20)
    windows = []
    for i in range(2):
        win = MainWindow(settings, tmp_path / f"runs{i}", restore=False)
        qtbot.addWidget(win)
        win.train_tab.set_form(FAST)
        open_dataset(qtbot, win.train_tab, data)
        windows.append(win)
    outcomes = []
    for win in windows:
        win.train_session.run_finished.connect(outcomes.append)
    for win in windows:  # both decode and train at once, on one cache folder
        win.train_tab.start_training()
    qtbot.waitUntil(lambda: len(outcomes) == 2, timeout=120_000)
    first, second = (o.result for o in outcomes)
    assert first.grid_results == second.grid_results and first.holdout == second.holdout
    assert any((tmp_path / "shared-cache").rglob("*"))
    for win in windows:
        win.close()


def test_features_choice_and_paper_recipe_set_the_form_and_the_run(qtbot, tmp_path: Path):
    from facecomic_gui.common.thumbnails import ThumbnailCache
    from facecomic_gui.train.session import TrainingSession
    from facecomic_gui.train.tab import TrainTabWidget
    from tests.gui.fake_jobs import ManualJobs
    from trainer.common.configs import PAPER_GRID

    jobs = ManualJobs()
    session = TrainingSession(jobs, tmp_path / "runs", TrainForm(TrainConfig(batch_size=8)))
    tab = TrainTabWidget(session, ThumbnailCache())
    qtbot.addWidget(tab)
    settings = tab.settings
    assert settings.features.currentData() == "pretrained"
    assert settings.features.itemText(0) == "Pretrained (EfficientNet-Lite0)"
    settings.features.setCurrentIndex(settings.features.findData("pixels"))
    assert session.form.config.features == "pixels"
    settings.features.setCurrentIndex(settings.features.findData("pretrained"))
    settings.learning_rates.setText("0.5")

    settings.paper_button.click()
    assert settings.features.currentData() == "pixels" and settings.split.currentData() == "paper"
    assert settings.learning_rates.text() == "0.01, 0.001" and settings.epochs.text() == "1, 3, 5"
    assert settings.heads.text() == "1"  # the paper's single MLP
    assert session.form == TrainForm(
        TrainConfig(features="pixels", split="paper", head="mlp", batch_size=8, heads=1), PAPER_GRID
    )
    assert tab.grid_table.rowCount() == 2 and tab.grid_table.columnCount() == 3

    session.set_dataset(str(make_dataset(tmp_path / "d", 2)))
    jobs.run("scan")
    tab.start_button.click()
    _path, config, grid, _runs = jobs.args("train")
    assert (config.features, config.split, config.batch_size, grid) == ("pixels", "paper", 8, PAPER_GRID)
    assert not settings.isEnabled()  # no recipe while a run uses the form


def test_features_are_remembered_and_taken_from_the_command_line(qtbot, window, settings):
    from facecomic_gui.app import build_parser
    from facecomic_gui.launch import apply_start_arguments

    form = TrainForm(TrainConfig(features="pixels", split="paper", heads=3), GridSpec((0.01,), (5,)))
    settings.training = (form.config, form.grid)
    assert TrainForm(*settings.training) == form
    apply_start_arguments(window, build_parser().parse_args(["--features", "pixels", "--lr", "0.2"]))
    assert window.train_session.form.config.features == "pixels"
    assert window.train_tab.settings.features.currentData() == "pixels"
    assert window.train_session.form.grid.learning_rates == (0.2,)


def _holdout_metrics(unlike: bool = True):
    import numpy as np

    from trainer.model.results import HoldoutMetrics

    labels = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    confidence = np.array([0.55, 0.58, 0.70, 0.71, 0.91, 0.92, 0.99, 0.97])
    right = np.array([True, False, True, True, True, True, True, False])
    predicted = np.where(right, labels, 1 - labels)
    probabilities = np.empty((8, 2))
    probabilities[np.arange(8), predicted] = confidence
    probabilities[np.arange(8), 1 - predicted] = 1 - confidence
    flags = np.array([False] * 7 + [True]) if unlike else None
    return HoldoutMetrics.from_probabilities(labels, probabilities, 2, unlike=flags)


def test_holdout_shows_calibration_and_the_reliability_diagram(qtbot):
    import numpy as np

    from facecomic_gui.train.results_panel import HoldoutWidget
    from trainer.model.results import HoldoutMetrics

    widget = HoldoutWidget()
    qtbot.addWidget(widget)
    widget.resize(380, 460)
    widget.show()
    before = widget.reliability.geometry()
    metrics = _holdout_metrics()
    widget.show_metrics(metrics, ("comics", "faces"))
    assert metrics.ece is not None and metrics.ece > 0
    assert f"calibration error {metrics.ece:.3f}" in widget.calibration.text()
    assert "12.5% flagged unlike training images" in widget.calibration.text()
    heights = widget.reliability.bar_heights()
    assert len(heights) == 15
    # Bins of width 1/15: 0.55, 0.58 in bin 8 (one right of two); 0.70, 0.71 in bin 10 (both
    # right); 0.91, 0.92 in bin 13 (both right); 0.97, 0.99 in bin 14 (one right of two).
    expected = [0.0] * 15
    expected[8], expected[10], expected[13], expected[14] = 0.5, 1.0, 1.0, 0.5
    assert heights == expected
    assert not widget.reliability.isHidden()
    assert "2 images, 50% right" in widget.reliability.bin_tooltip(8)
    assert widget.reliability.bin_tooltip(0).endswith("no images")
    assert widget.reliability.geometry() == before  # sized from the start: nothing moves

    old = HoldoutWidget()  # a model file from before calibration: no ECE, no diagram
    qtbot.addWidget(old)
    plain = HoldoutMetrics.from_predictions(np.array([0, 1]), np.array([0, 1]), 0.1, 2)
    old.show_metrics(plain, ("comics", "faces"))
    assert old.calibration.text() == "" and old.reliability.isHidden()
