"""File dialogs and messages, in one place so tests can monkeypatch them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtWidgets import QCheckBox, QDialog, QFileDialog, QGridLayout, QMessageBox, QWidget

from trainer.common.errors import FaceComicError
from trainer.common.outputs import ReadOnlyOutputError, shown

if TYPE_CHECKING:
    from trainer.model.model_file import LoadedModel

T = TypeVar("T")
EXCEL_SAFE_TEXT = "Excel-safe: start cells beginning with = + - @ with '"
EXCEL_SAFE_TIP = (
    "A spreadsheet runs a cell starting with =, +, - or @ as a formula, so a file named "
    "=HYPERLINK(...).jpg could act when the CSV is opened. With this, such cells start with ' and "
    "show as text; the CSV's values then differ from the file names, so leave it off for programs."
)

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


def confirm_read_only(parent: QWidget | None, path: Path) -> bool:
    """Whether the user wants to replace the read-only file ``path``."""
    if not interactive:
        return False
    answer = QMessageBox.question(
        parent,
        "Replace a read-only file?",
        f"{shown(path)} is read-only. Replace it anyway? Its permissions stay as they are.",
    )
    return answer == QMessageBox.StandardButton.Yes


def write_confirming(parent: QWidget | None, write: Callable[[bool], T]) -> T | None:
    """``write(allow_read_only)``, first without replacing a read-only file; if the target is
    read-only, ask, and write again only when the user agrees. None when they do not."""
    try:
        return write(False)
    except ReadOnlyOutputError as err:
        if not confirm_read_only(parent, err.path):
            return None
        return write(True)


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
    """Ask where to save ``model`` and write it atomically; a failure is one sentence (never over
    the file the model came from, and over a read-only file only once the user agrees)."""
    from trainer.model.model_file import save_model

    suggested = model.path.name if model.path else "facecomic-model.safetensors"
    folder = start_dir or str(Path.home())
    target = ask_save_path(
        parent, "Save model as", str(Path(folder) / suggested), MODEL_FILTER, ".safetensors"
    )
    if target is None:
        return None
    try:
        return write_confirming(parent, lambda allow: save_model(target, model, allow_read_only=allow))
    except FaceComicError as err:
        show_error(parent, "Could not save the model", str(err))
    except OSError as err:
        show_error(
            parent, "Could not save the model", f"Could not save {shown(target)}: {err.strerror or err}."
        )
    return None


def ask_onnx_path(parent: QWidget | None, model: LoadedModel, start_dir: str | None = None) -> Path | None:
    """Where to export ``model`` as ONNX; the suggested name is the model's with ``.onnx``."""
    suggested = Path(model.path.name if model.path else "facecomic-model").with_suffix(".onnx").name
    folder = start_dir or str(Path.home())
    return ask_save_path(parent, "Export model as ONNX", str(Path(folder) / suggested), ONNX_FILTER, ".onnx")


def csv_export_dialog(parent: QWidget | None, suggested: str, excel_safe: bool) -> QFileDialog:
    """The Export CSV dialog: a save dialog with the Excel-safe checkbox under the file name (Qt's
    own dialog, as a native one cannot hold an extra widget)."""
    dialog = QFileDialog(parent, "Export predictions", suggested, CSV_FILTER)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setDefaultSuffix("csv")
    checkbox = QCheckBox(EXCEL_SAFE_TEXT, dialog)
    checkbox.setObjectName("excel_safe")
    checkbox.setToolTip(EXCEL_SAFE_TIP)
    checkbox.setChecked(excel_safe)
    layout = dialog.layout()
    if isinstance(layout, QGridLayout):
        layout.addWidget(checkbox, layout.rowCount(), 0, 1, layout.columnCount())
    else:  # pragma: no cover - Qt's own dialog has a grid
        layout.addWidget(checkbox)
    return dialog


def ask_csv_path(parent: QWidget | None, suggested: str, excel_safe: bool) -> tuple[Path, bool] | None:
    """Where to export the predictions CSV, and whether Excel-safe was ticked; None if cancelled."""
    dialog = csv_export_dialog(parent, suggested, excel_safe)
    if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
        return None
    target = Path(dialog.selectedFiles()[0])
    checked = dialog.findChild(QCheckBox, "excel_safe").isChecked()
    return (target if target.suffix else target.with_suffix(".csv")), checked


def ask_folder(parent: QWidget | None, title: str, start: str) -> Path | None:
    """A folder (to sort into, or a data set to add to); None if cancelled."""
    path = QFileDialog.getExistingDirectory(parent, title, start)
    return Path(path) if path else None


def ask_retrain(parent: QWidget | None, added: str) -> bool:
    """After *Add to dataset…*: what was added, and whether to retrain on it now."""
    if not interactive:
        return False
    box = QMessageBox(QMessageBox.Icon.Information, "Added to the data set", added, parent=parent)
    box.setInformativeText("Retrain on this data set now, with the current training settings?")
    retrain = box.addButton("Retrain", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    return box.clickedButton() is retrain


def confirm_close_with_marks(parent: QWidget | None, count: int) -> bool:
    """Whether to close although ``count`` marked images were not added to a data set."""
    if not interactive:
        return True
    answer = QMessageBox.question(
        parent,
        "Close FaceComic?",
        f"You marked {count:,} image{'s' if count != 1 else ''} with their true class and did not add "
        "them to a data set (Add to dataset…). Close anyway and lose the marks?",
    )
    return answer == QMessageBox.StandardButton.Yes
