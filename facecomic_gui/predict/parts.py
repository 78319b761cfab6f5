"""The Predict tab's parts: the model banner, the toolbar with its filter and summary, the table's
layout, and the CSV export. Views of a ``PredictionSession``; the tab wires them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QWidget,
)

from facecomic_gui.common import dialogs
from facecomic_gui.common.dialogs import show_error, write_confirming
from facecomic_gui.predict.review import UNCERTAIN_FIRST_KEY
from facecomic_gui.predict.session import (
    ERROR_KEY,
    NOT_A_FACE_KEY,
    PENDING_KEY,
    UNSURE_KEY,
    PredictionSession,
)
from facecomic_gui.predict.table import CONFIDENCE, DETAILS, FILE, LABEL, THUMB, ConfidenceDelegate
from trainer.common.text import plural

ROW_HEIGHT = 56


class ModelBannerWidget(QFrame):
    """The model in use: its name, features, classes and holdout figures, and *Open model…*."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelBanner")
        self.setStyleSheet(
            "#modelBanner { background: #eef3f8; border: 1px solid #d5e0eb; border-radius: 4px; }"
        )
        self.model_label = QLabel("Loading the model…")
        self.model_label.setTextFormat(Qt.TextFormat.RichText)
        self.model_label.setWordWrap(True)
        self.open_model_button = QPushButton("Open model…")
        layout = QHBoxLayout(self)
        layout.addWidget(self.model_label, 1)
        layout.addWidget(self.open_model_button)

    def show_model(self, session: PredictionSession) -> None:
        model = session.model
        if model is not None:
            holdout = model.holdout
            accuracy = f" · holdout accuracy <b>{holdout.accuracy:.1%}</b>" if holdout else ""
            if holdout is not None and holdout.ece is not None:
                accuracy += f", calibration error {holdout.ece:.3f}"
            if holdout is not None and model.refit_all:
                accuracy += " (of the run that chose it; then refitted on every image)"
            heads = " · linear head" if model.head_kind == "linear" else ""
            heads += f" · {model.heads} heads" if model.heads > 1 else ""
            self.model_label.setText(
                f"Model: <b>{model.name}</b> · {model.feature_kind} features{heads} · "
                f"classes: {', '.join(model.display_names)}{accuracy}"
            )
            self.model_label.setToolTip(str(model.path) if model.path else "")
        elif session.model_loading:
            self.model_label.setText("Loading the model…")
        else:
            self.model_label.setText("No model loaded. Open one, or train one on the Train tab.")


class PredictionToolbarWidget(QWidget):
    """*Add images…*, the *Show* filter, the counts, *Clear* and *Export CSV…*."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.add_button = QPushButton("Add images…")
        self.filter_combo = QComboBox()
        self.clear_button = QPushButton("Clear")
        self.export_button = QPushButton("Export CSV…")
        self.summary_label = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.add_button)
        layout.addWidget(QLabel("Show"))
        layout.addWidget(self.filter_combo)
        layout.addWidget(self.summary_label, 1)
        layout.addWidget(self.clear_button)
        layout.addWidget(self.export_button)

    def add_trailing(self, *widgets: QWidget) -> None:
        """Buttons at the end of the bar (the review tools' *Sort into folders…*, *Add to dataset…*)."""
        for widget in widgets:
            self.layout().addWidget(widget)

    def show_filters(self, session: PredictionSession) -> None:
        """The classes of the model in use, then the flags; the choice stays when it still exists."""
        combo = self.filter_combo
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("All images", None)
        model = session.model
        if model is not None:
            for name, shown in zip(model.class_names, model.display_names, strict=True):
                combo.addItem(shown, name)
        for text, key, tip in (
            ("Unsure", UNSURE_KEY, "Answers the model flagged: not a face, unlike its training images, or low confidence."),
            ("Not a face", NOT_A_FACE_KEY, "Pictures that look like neither a face nor a comic face (charts, documents, screenshots, ...)."),
            ("Unreadable", ERROR_KEY, ""),
            ("Most uncertain first", UNCERTAIN_FIRST_KEY, "Every answer, flagged ones first, then by confidence closest to 50%: review where mistakes are likeliest."),
        ):  # fmt: skip
            combo.addItem(text, key)
            if tip:
                combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)

    def show_summary(self, session: PredictionSession) -> None:
        counts = session.counts()
        total = len(session.rows)
        self.clear_button.setEnabled(total > 0)
        self.export_button.setEnabled(bool(session.predictions()))
        if not total:
            self.summary_label.setText("")
            return
        parts = [plural(total, "image")]
        model = session.model
        if model is not None:
            for name, shown in zip(model.class_names, model.display_names, strict=True):
                parts.append(f"{counts.get(name, 0):,} {shown}")
        if counts.get(UNSURE_KEY):
            not_faces = counts.get(NOT_A_FACE_KEY, 0)
            of_which = f" ({not_faces:,} not a face)" if not_faces else ""
            parts.append(f"{counts[UNSURE_KEY]:,} unsure{of_which}")
        if counts.get(ERROR_KEY):
            parts.append(f"{counts[ERROR_KEY]:,} unreadable")
        if counts.get(PENDING_KEY):
            parts.append(f"predicting {total - counts[PENDING_KEY]:,}/{total:,}…")
        self.summary_label.setText("  ·  ".join(parts))


def drop_hint_label() -> QLabel:
    """What an empty Predict tab shows: where images come from."""
    hint = QLabel(
        "<p style='font-size:15pt'>Drop images or folders here</p>"
        "<p>or use <b>Add images…</b>, or paste with <b>Ctrl+V</b>.<br>"
        "Each image gets a label and a confidence from the model above.</p>"
    )
    hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
    hint.setStyleSheet(
        "QLabel { color: #555; border: 2px dashed #b8c4d0; border-radius: 10px; background: #fafbfc; }"
    )
    return hint


def lay_out_prediction_view(view: QTableView, table_model, proxy) -> None:
    """Rows of thumbnails, sortable, selected whole; fixed column widths, Details stretching."""
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # insertion order until a header is clicked
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setIconSize(QSize(ROW_HEIGHT - 6, ROW_HEIGHT - 6))
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
    header = view.horizontalHeader()
    header.setSectionResizeMode(THUMB, QHeaderView.ResizeMode.Fixed)
    header.resizeSection(THUMB, ROW_HEIGHT + 4)
    header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Interactive)
    header.resizeSection(FILE, 260)
    header.resizeSection(LABEL, 120)
    header.resizeSection(CONFIDENCE, 170)
    header.setSectionResizeMode(DETAILS, QHeaderView.ResizeMode.Stretch)
    view.setItemDelegateForColumn(CONFIDENCE, ConfidenceDelegate(table_model, proxy, view))


def export_predictions_csv(
    parent: QWidget, session: PredictionSession, folder: str, excel_safe: bool
) -> tuple[Path | None, bool]:
    """Ask where (and whether Excel-safe), then write the CSV and its ``.csv.json`` sidecar (model,
    version, date). Never over the model or an image in the table, and over a read-only file only
    once the user agrees. Returns the file written (None when not) and the Excel-safe choice."""
    from trainer.common.errors import FaceComicError
    from trainer.common.outputs import shown
    from trainer.prediction.export import write_predictions_csv

    predictions = session.predictions()
    if not predictions:
        return None, excel_safe
    answer = dialogs.ask_csv_path(parent, str(Path(folder) / "predictions.csv"), excel_safe)
    if answer is None:
        return None, excel_safe
    target, excel_safe = answer
    model_path = session.model.path if session.model is not None else None

    def write(allow_read_only: bool) -> Path:
        write_predictions_csv(
            target, predictions, model_path, excel_safe_cells=excel_safe, allow_read_only=allow_read_only
        )
        return target

    try:
        return write_confirming(parent, write), excel_safe
    except FaceComicError as err:
        show_error(parent, "Could not export", str(err))
    except OSError as err:
        show_error(
            parent,
            "Could not export",
            f"Could not write {shown(err.filename or target)}: {err.strerror or err}.",
        )
    return None, excel_safe
