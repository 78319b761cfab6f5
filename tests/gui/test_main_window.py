from __future__ import annotations

import re
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QSettings

from facecomic_gui.app import main
from facecomic_gui.common import dialogs
from facecomic_gui.common.settings import AppSettings
from facecomic_gui.main_window import DEFAULT_SIZE, MainWindow
from facecomic_gui.train.form import TrainForm
from trainer.common.assets import default_model_path
from trainer.common.configs import GridSpec, TrainConfig
from trainer.data.synthetic import make_dataset

GUI = Path(__file__).resolve().parents[2] / "facecomic_gui"


def test_window_has_tabs_menus_and_the_default_model(window):
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Train", "Predict", "Runs"]
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert set(menus) == {"File", "Help"}
    file_items = [a.text().replace("&", "") for a in menus["File"].actions() if not a.isSeparator()]
    assert file_items == [
        "Open dataset…",
        "Open model…",
        "Save model as…",
        "Export model as ONNX…",
        "Export predictions CSV…",
        "Sort predictions into folders…",
        "Add marked images to dataset…",
        "Quit",
    ]
    assert [a.text().replace("&", "") for a in menus["Help"].actions()] == ["About FaceComic"]
    assert window.current_model.path == default_model_path()
    assert "facecomic-default.safetensors" in window.predict_tab.model_label.text()
    assert "holdout accuracy" in window.predict_tab.model_label.text()


def test_about_names_versions_and_the_model(window):
    import PySide6

    text = window.about_text()
    assert "FaceComic 0." in text and "PyTorch 2." in text and f"PySide6 {PySide6.__version__}" in text
    assert "facecomic-default.safetensors" in text


def test_a_bad_model_file_is_one_message_and_the_app_goes_on(qtbot, window, tmp_path: Path, monkeypatch):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    messages = []
    monkeypatch.setattr(
        dialogs.QMessageBox, "warning", lambda _p, title, text: messages.append((title, text))
    )
    monkeypatch.setattr(dialogs.QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    before = window.current_model
    with qtbot.waitSignal(window.model_failed, timeout=30_000):
        window.open_model_action.trigger()
    assert messages == [
        ("Could not open the model", f"{bad} is not a valid FaceComic model: it is not a safetensors file.")
    ]
    assert window.current_model is before
    assert window.isEnabled()


def test_save_model_as(qtbot, window, tmp_path: Path, monkeypatch):
    from trainer.model.model_file import load_model

    target = tmp_path / "copy.safetensors"
    monkeypatch.setattr(dialogs.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.save_model_action.trigger()
    assert load_model(target).metadata == window.current_model.metadata


def test_export_model_as_onnx(qtbot, window, tmp_path: Path, monkeypatch):
    import numpy as np
    import onnxruntime as ort

    from trainer.prediction.predictor import Predictor

    target = tmp_path / "exported"  # the dialog adds .onnx
    monkeypatch.setattr(dialogs.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(window.onnx_exported, timeout=60_000) as exported:
        window.export_onnx_action.trigger()
    assert exported.args == [str(target.with_suffix(".onnx"))]
    session = ort.InferenceSession(exported.args[0], providers=["CPUExecutionProvider"])
    size = window.current_model.preprocess.size
    pixels = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    (got,) = session.run(["probabilities"], {"pixels": pixels})
    assert np.abs(got - Predictor(window.current_model).probabilities(pixels)).max() < 1e-4
    # A failure is one sentence in a message box.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    messages = []
    monkeypatch.setattr(
        dialogs.QMessageBox, "warning", lambda _p, title, text: messages.append((title, text))
    )
    monkeypatch.setattr(dialogs.QFileDialog, "getSaveFileName", lambda *a, **k: (str(blocker / "m.onnx"), ""))
    window.export_onnx_action.trigger()
    qtbot.waitUntil(lambda: bool(messages), timeout=60_000)
    assert messages == [
        ("Could not export the model", f"Cannot write {blocker / 'm.onnx'}: {blocker} is not a folder.")
    ]


def test_settings_round_trip(qtbot, settings_file: Path, tiny_dataset: Path, tmp_path: Path):
    def new_window() -> MainWindow:
        win = MainWindow(
            AppSettings(QSettings(str(settings_file), QSettings.Format.IniFormat)), tmp_path / "runs"
        )
        qtbot.addWidget(win)
        return win

    first = new_window()
    qtbot.waitUntil(lambda: first.current_model is not None, timeout=30_000)
    form = TrainForm(
        TrainConfig(split="paper", batch_size=32, seed=9, head="mlp"),
        GridSpec((0.1, 0.0123456789), (2, 7), (0.5, 2.0)),
    )
    first.train_tab.set_form(form)
    with qtbot.waitSignal(first.train_tab.scan_finished, timeout=30_000):
        first.train_tab.set_dataset(str(tiny_dataset))
    first.resize(700, 520)  # within the offscreen screen (800x600), which restoreGeometry respects
    first.close()

    second = new_window()
    assert second.train_tab.form() == form
    assert second.train_session.dataset_path == str(tiny_dataset)  # reopened and rescanned
    assert second.settings.last_model == str(default_model_path())
    assert (second.size().width(), second.size().height()) == (700, 520)
    qtbot.waitUntil(lambda: second.current_model is not None, timeout=30_000)
    second.close()


def test_screenshot_of_the_predict_tab(qtbot, tmp_path: Path):
    data = make_dataset(tmp_path / "d", 2)
    out = tmp_path / "predict.png"
    assert (
        main(
            [
                "--screenshot",
                str(out),
                "--tab",
                "predict",
                str(data / "faces" / "0.png"),
                str(data / "comics" / "1.png"),
            ]
        )
        == 0
    )
    with Image.open(out) as image:
        assert image.size == DEFAULT_SIZE
        assert image.getextrema() != ((0, 0), (0, 0), (0, 0))


def test_screenshot_after_training(qtbot, tmp_path: Path, capsys):
    data = make_dataset(tmp_path / "d", 12)
    out = tmp_path / "train.png"
    args = [
        "--screenshot",
        str(out),
        "--tab",
        "train",
        "--dataset",
        str(data),
        "--train",
        "--lr",
        "0.05",
        "--epochs",
        "2",
    ]
    assert main(args) == 0
    assert "Training finished: holdout accuracy" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.size == DEFAULT_SIZE


def test_screenshot_with_a_bad_model_fails_without_hanging(qtbot, tmp_path: Path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    data = make_dataset(tmp_path / "d", 1)
    out = tmp_path / "p.png"
    assert main(["--screenshot", str(out), "--model", str(bad), str(data / "faces" / "0.png")]) == 1
    assert "is not a valid FaceComic model" in capsys.readouterr().err
    assert out.stat().st_size > 0  # the window, with the error on it


def test_screenshot_of_a_bad_dataset_still_renders_and_says_why(qtbot, tmp_path: Path, capsys):
    out = tmp_path / "bad.png"
    assert main(["--screenshot", str(out), "--dataset", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert out.stat().st_size > 0


def test_only_the_worker_module_creates_threads():
    pattern = re.compile(
        r"QThread\(|threading\.Thread|ThreadPoolExecutor|QThreadPool|multiprocessing\.(Pool|Process)"
    )
    modules = list(GUI.rglob("*.py"))
    assert len(modules) > 15
    offenders = [
        p.name for p in modules if p != GUI / "common" / "worker.py" and pattern.search(p.read_text())
    ]
    assert offenders == []


def test_start_up_objects_are_frozen_out_of_full_collections(qtbot, settings, tmp_path: Path, monkeypatch):
    """A full collection over torch, Qt and the app takes about 216 ms with the GIL held: a frozen
    window. Freezing what start-up made, again once the first model (and torch) is in, makes it
    cheap; later objects are still collected."""
    import gc

    from facecomic_gui import launch
    from facecomic_gui.launch import keep_garbage_collection_short

    freezes: list[int] = []
    real_freeze = gc.freeze

    def counting_freeze() -> None:  # frozen objects can still die by refcount, so count the calls
        real_freeze()
        freezes.append(gc.get_freeze_count())

    monkeypatch.setattr(launch.gc, "freeze", counting_freeze)
    gc.unfreeze()
    try:
        win = MainWindow(settings, tmp_path / "runs", restore=False)
        qtbot.addWidget(win)
        keep_garbage_collection_short(win)
        assert len(freezes) == 1 and freezes[0] > 0
        qtbot.waitUntil(lambda: win.current_model is not None, timeout=30_000)  # model_changed came
        assert len(freezes) == 2  # the model's objects (and torch's) are frozen too
        win.model_changed.emit(win.current_model)  # a later model changes nothing
        assert len(freezes) == 2
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # new garbage is still found
        win.close()
    finally:
        gc.unfreeze()


def test_save_model_never_over_its_own_file_and_asks_before_a_read_only_one(
    qtbot, window, tmp_path: Path, monkeypatch
):
    import hashlib

    from PySide6.QtWidgets import QMessageBox

    from trainer.model.model_file import load_model

    messages, asked = [], []
    monkeypatch.setattr(dialogs.QMessageBox, "warning", lambda _p, title, text: messages.append(text))
    own = window.current_model.path
    before = hashlib.sha256(own.read_bytes()).hexdigest()
    monkeypatch.setattr(dialogs.QFileDialog, "getSaveFileName", lambda *a, **k: (str(own), ""))
    window.save_model_action.trigger()
    assert messages and "same file as the input" in messages[-1]
    assert hashlib.sha256(own.read_bytes()).hexdigest() == before

    target = tmp_path / "locked.safetensors"
    target.write_bytes(b"keep me")
    target.chmod(0o444)
    monkeypatch.setattr(dialogs.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))

    def answer(reply):
        def question(_parent, _title, text, *args):
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(dialogs.QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    window.save_model_action.trigger()
    assert len(asked) == 1 and "is read-only" in asked[0] and target.read_bytes() == b"keep me"
    monkeypatch.setattr(dialogs.QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    window.save_model_action.trigger()
    assert load_model(target).metadata == window.current_model.metadata
    assert target.stat().st_mode & 0o777 == 0o444
