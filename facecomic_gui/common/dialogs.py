"""File dialogs and messages, in one place so tests can monkeypatch them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

if TYPE_CHECKING:
    from trainer.model.model_file import LoadedModel

MODEL_FILTER = "FaceComic models (*.safetensors);;All files (*)"
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.webp *.bmp *.tif *.tiff *.gif *.JPG *.JPEG *.PNG);;All files (*)"
CSV_FILTER = "CSV files (*.csv);;All files (*)"
ONNX_FILTER = "ONNX models (*.onnx);;All files (*)"


# Off in --screenshot and --self-test, where nobody could close a modal dialog.
interactive = True


def show_error(parent: QWidget | None, title: str, message: str) -> None:
    if interactive:
        QMessageBox.warning(parent, title, message)
    else:
        print(f"facecomic: {title}: {message}", file=sys.stderr)


def ask_save_path(
    parent: QWidget | None, title: str, suggested: str, file_filter: str, suffix: str
) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, suggested, file_filter)
    if not path:
        return None
    target = Path(path)
    return target if target.suffix else target.with_suffix(suffix)


def ask_open_model(parent: QWidget | None, start: str) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open model", start, MODEL_FILTER)
    return Path(path) if path else None


def ask_images(parent: QWidget | None, start: str) -> list[Path]:
    paths, _ = QFileDialog.getOpenFileNames(parent, "Add images", start, IMAGE_FILTER)
    return [Path(p) for p in paths]


def save_model_dialog(
    parent: QWidget | None, model: LoadedModel, start_dir: str | None = None
) -> Path | None:
    """Ask where to save ``model`` and write it atomically; a failure is one sentence."""
    from trainer.model.model_file import save_model

    suggested = model.path.name if model.path else "facecomic-model.safetensors"
    folder = start_dir or str(Path.home())
    target = ask_save_path(
        parent, "Save model as", str(Path(folder) / suggested), MODEL_FILTER, ".safetensors"
    )
    if target is None:
        return None
    try:
        save_model(target, model)
    except OSError as err:
        show_error(parent, "Could not save the model", f"Could not save {target}: {err.strerror or err}.")
        return None
    return target


def ask_onnx_path(parent: QWidget | None, model: LoadedModel, start_dir: str | None = None) -> Path | None:
    """Where to export ``model`` as ONNX; the suggested name is the model's with ``.onnx``."""
    suggested = Path(model.path.name if model.path else "facecomic-model").with_suffix(".onnx").name
    folder = start_dir or str(Path.home())
    return ask_save_path(parent, "Export model as ONNX", str(Path(folder) / suggested), ONNX_FILTER, ".onnx")
