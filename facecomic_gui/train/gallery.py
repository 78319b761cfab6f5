"""The error gallery: the images of one confusion-matrix cell, most confidently wrong first, with
lazy thumbnails. A view of a ``GallerySession``; the table's model reads the session's tuple, so
3,000 images open at once and only the rows in view ask for a thumbnail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QRadioButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.image_viewer import ImageViewerDialog
from facecomic_gui.common.mark_actions import MarkActions, mark_data
from facecomic_gui.common.thumbnails import ThumbnailCache
from facecomic_gui.common.why_session import WhySession, image_key, request_for
from facecomic_gui.common.widgets import percent
from facecomic_gui.train.gallery_session import SPLIT_TITLES, SPLITS, GallerySession

THUMB, FILE, TRUE, PREDICTED, CONFIDENCE, FLAG = range(6)
HEADERS = ("", "File", "True class", "Predicted", "Confidence", "Flag")
THUMB_OWNER = "gallery"
ROW_HEIGHT = 68
UNSURE_COLOUR = QColor("#8a8a8a")
WRONG_COLOUR = QColor("#b00020")
_ROOT = QModelIndex()


class GalleryTableModel(QAbstractTableModel):
    """Rows are ``session.images``; a thumbnail is asked for only when a row's cell is painted."""

    corrections = None  # a CorrectionsSession: a marked image shows its mark as its true class

    def __init__(self, session: GallerySession, thumbnails: ThumbnailCache, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self._thumbnails = thumbnails
        self.thumbnail_requests = 0  # rows that asked for a thumbnail (tests check laziness)
        self._row_of_key: dict[str, int] = {}
        thumbnails.ready.connect(self._on_thumbnail_ready)
        session.changed.connect(self._on_session_changed)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.session.images)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        session = self.session
        image = session.images[index.row()]
        column = index.column()
        names = session.display_names
        if column == TRUE and self.corrections is not None:
            mark = mark_data(
                self.corrections, session.full_path(image), role,
                predicted=session.class_names[image.predicted], confidence=image.confidence,
            )  # fmt: skip
            if mark is not None:
                return mark
        if role == Qt.ItemDataRole.DisplayRole:
            if column == FILE:
                return os.path.basename(image.path)
            if column == TRUE:
                return names[image.true_label]
            if column == PREDICTED:
                return names[image.predicted]
            if column == CONFIDENCE:
                return percent(image.confidence)
            if column == FLAG:
                return image.flag or ""
        elif role == Qt.ItemDataRole.DecorationRole and column == THUMB:
            key = session.full_path(image)
            self._row_of_key[key] = index.row()
            pixmap = self._thumbnails.pixmap(key, owner=THUMB_OWNER)
            self.thumbnail_requests = len(self._row_of_key)
            return pixmap
        elif role == Qt.ItemDataRole.ToolTipRole and column in (THUMB, FILE):
            return image.path
        elif role == Qt.ItemDataRole.ForegroundRole:
            if column == PREDICTED and image.predicted != image.true_label:
                return QBrush(WRONG_COLOUR)
            if column == FLAG and image.flag:
                return QBrush(UNSURE_COLOUR)
        elif role == Qt.ItemDataRole.FontRole and column == FLAG and image.flag:
            font = QFont()
            font.setItalic(True)
            return font
        elif role == Qt.ItemDataRole.TextAlignmentRole and column == CONFIDENCE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _on_session_changed(self) -> None:
        self.beginResetModel()
        self._row_of_key.clear()
        self.endResetModel()

    def _on_thumbnail_ready(self, key: str) -> None:
        row = self._row_of_key.get(key)
        if row is not None and row < len(self.session.images):
            index = self.index(row, THUMB)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class _GalleryTableView(QTableView):
    activated_by_key = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.activated_by_key.emit(self.currentIndex().row())
            return
        super().keyPressEvent(event)


class ErrorGalleryWidget(QDialog):
    """The gallery of one cell: Holdout / Validation toggle, true and predicted class choices, and
    the images sorted by calibrated confidence (most confidently wrong first). Double-click or Enter
    opens an image at full size (with *Why?* when the run's model is given); arrow keys move
    through the list."""

    image_opened = Signal(str)  # full path

    def __init__(
        self,
        session: GallerySession,
        thumbnails: ThumbnailCache,
        parent: QWidget | None = None,
        *,
        model=None,
        why: WhySession | None = None,
        corrections=None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Error gallery")
        self.session = session
        self._thumbnails = thumbnails
        self._model = model  # the run's LoadedModel, whose answers *Why?* explains
        self._why = why
        self.viewer: ImageViewerDialog | None = None
        names = session.display_names

        self.split_buttons = QButtonGroup(self)
        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Split:"))
        for i, split in enumerate(SPLITS):
            button = QRadioButton(SPLIT_TITLES[split])
            button.setEnabled(session.has_split(split))
            self.split_buttons.addButton(button, i)
            split_row.addWidget(button)
        split_row.addSpacing(16)
        self.true_combo = QComboBox()
        self.predicted_combo = QComboBox()
        for combo in (self.true_combo, self.predicted_combo):
            combo.addItems(list(names))
        split_row.addWidget(QLabel("True class:"))
        split_row.addWidget(self.true_combo)
        split_row.addWidget(QLabel("Predicted:"))
        split_row.addWidget(self.predicted_combo)
        self.order_combo = QComboBox()
        self.order_combo.addItems(["Most confident first", "Least confident first"])
        split_row.addSpacing(16)
        split_row.addWidget(self.order_combo)
        split_row.addStretch(1)

        self.title = QLabel()
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.empty = QLabel()
        self.empty.setStyleSheet("color: #666;")
        self.empty.setWordWrap(True)

        self.model = GalleryTableModel(session, thumbnails, self)
        self.table = _GalleryTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(thumbnails_size(thumbnails))
        vertical = self.table.verticalHeader()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # never measures every row
        vertical.setDefaultSectionSize(ROW_HEIGHT)
        vertical.hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(THUMB, ROW_HEIGHT + 4)
        for column, width in ((TRUE, 100), (PREDICTED, 100), (CONFIDENCE, 90), (FLAG, 170)):
            self.table.setColumnWidth(column, width)
        self.table.doubleClicked.connect(self._on_double_clicked)
        self.table.activated_by_key.connect(self.open_image)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        self.model.corrections = corrections  # marks: F, C or the row menu (shared with the Predict tab)
        self.marks = MarkActions(self.table, self._mark_targets, self)
        self.marks.set_classes(session.class_names)
        self.marks.set_corrections(corrections)
        self._corrections = corrections
        self._following_marks = False  # subscribed to corrections.changed while shown
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_context_menu)

        layout = QVBoxLayout(self)
        layout.addLayout(split_row)
        layout.addWidget(self.title)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        hint = QLabel(
            "Double-click or press Enter to open an image; arrow keys move"
            + ("; F or C marks its true class (Real face, Comic)." if corrections is not None else ".")
        )
        hint.setStyleSheet("color: #666;")
        layout.addWidget(hint)
        self.resize(820, 620)

        self.split_buttons.idClicked.connect(self._on_split_clicked)
        self.true_combo.currentIndexChanged.connect(self._on_cell_chosen)
        self.predicted_combo.currentIndexChanged.connect(self._on_cell_chosen)
        self.order_combo.currentIndexChanged.connect(self._on_order_chosen)
        session.changed.connect(self._on_session_changed)
        self._on_session_changed()

    # -- intents ---------------------------------------------------------------------------------

    def show_cell(self, true_label: int, predicted_label: int, split: str = "holdout") -> None:
        self.session.show_cell(true_label, predicted_label, split)

    def open_image(self, row: int) -> ImageViewerDialog | None:
        if not 0 <= row < len(self.session.images):
            return None
        image = self.session.images[row]
        names = self.session.display_names
        caption = (
            f"{image.path}: true {names[image.true_label]}, predicted {names[image.predicted]} "
            f"at {percent(image.confidence)}" + (f" ({image.flag})" if image.flag else "")
        )
        path = self.session.full_path(image)
        if self.viewer is not None:
            self.viewer.close()
        request = request_for(
            image_key(Path(path), path), Path(path), self._model,
            label=self.session.class_names[image.predicted], display_label=names[image.predicted],
            confidence=image.confidence, flag=image.flag,
        )  # fmt: skip
        self.viewer = ImageViewerDialog(path, caption, self, why=self._why, request=request)
        self.viewer.show()
        self.image_opened.emit(path)
        return self.viewer

    def _mark_targets(self) -> list[tuple[str, str | None]]:
        row = self.table.currentIndex().row()
        if not 0 <= row < len(self.session.images):
            return []
        image = self.session.images[row]
        return [(self.session.full_path(image), self.session.class_names[image.predicted])]

    def _on_marks_changed(self, _paths=()) -> None:
        """Any mark changed, here, in the Predict tab, or by *Add to dataset…*: repaint the marks."""
        rows = self.model.rowCount()
        if rows:
            self.model.dataChanged.emit(self.model.index(0, TRUE), self.model.index(rows - 1, TRUE))

    def _on_context_menu(self, pos) -> None:
        from PySide6.QtWidgets import QMenu

        if self.table.indexAt(pos).isValid() and self.model.corrections is not None:
            menu = QMenu(self.table)
            menu.addActions(self.marks.menu_actions())
            menu.exec(self.table.viewport().mapToGlobal(pos))
            menu.deleteLater()

    def _on_double_clicked(self, index: QModelIndex) -> None:
        self.open_image(index.row())

    def _on_split_clicked(self, button_id: int) -> None:
        self.session.set_split(SPLITS[button_id])

    def _on_cell_chosen(self) -> None:
        self.session.show_cell(self.true_combo.currentIndex(), self.predicted_combo.currentIndex())

    def _on_order_chosen(self, index: int) -> None:
        self.session.set_descending(index == 0)

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.session.select(current.row() if current.isValid() else None)

    # -- rendering ---------------------------------------------------------------------------------

    def _on_session_changed(self) -> None:
        session = self.session
        for widget, value in (
            (self.true_combo, session.true_label),
            (self.predicted_combo, session.predicted_label),
            (self.order_combo, 0 if session.descending else 1),
        ):
            widget.blockSignals(True)
            widget.setCurrentIndex(value)
            widget.blockSignals(False)
        self.split_buttons.button(SPLITS.index(session.split)).setChecked(True)
        self.title.setText(session.title())
        if not session.has_split(session.split):
            self.empty.setText("This run kept no scored images (it was saved by an older FaceComic).")
        elif not session.images:
            self.empty.setText("No images in this cell.")
        self.empty.setVisible(not session.images)
        if session.selected is not None:
            self.table.selectRow(session.selected)
            self.table.scrollToTop()

    def showEvent(self, event) -> None:
        if self._corrections is not None and not self._following_marks:
            self._corrections.changed.connect(self._on_marks_changed)
            self._following_marks = True
            self._on_marks_changed()  # marks made while it was closed
        super().showEvent(event)

    def done(self, result: int) -> None:
        if self._following_marks:  # the Emitter holds its callbacks strongly
            self._corrections.changed.disconnect(self._on_marks_changed)
            self._following_marks = False
        if self.viewer is not None:
            self.viewer.close()
        self._thumbnails.release(THUMB_OWNER)
        super().done(result)


def thumbnails_size(thumbnails: ThumbnailCache):
    from PySide6.QtCore import QSize

    return QSize(thumbnails.size, thumbnails.size)


class GalleryOpener:
    """One error gallery window per run shown: reused for another cell of the same run, closed
    and replaced for another run."""

    def __init__(self, parent: QWidget, thumbnails: ThumbnailCache, jobs) -> None:
        self._parent = parent
        self._thumbnails = thumbnails
        self._jobs = jobs
        self.gallery: ErrorGalleryWidget | None = None
        self._model = None

    def open(
        self, model, true_label: int, predicted_label: int, split: str, corrections=None
    ) -> ErrorGalleryWidget:
        from facecomic_gui.train.gallery_session import GallerySource

        if self.gallery is None or self._model is not model:
            self.close()
            self.gallery = ErrorGalleryWidget(
                GallerySession(GallerySource.of_model(model)), self._thumbnails, self._parent,
                model=model, why=WhySession(self._jobs, "why-gallery"), corrections=corrections,
            )  # fmt: skip
            self._model = model
        self.gallery.setWindowTitle(f"Error gallery: {model.name}")
        self.gallery.show_cell(true_label, predicted_label, split)
        self.gallery.show()
        self.gallery.raise_()
        self.gallery.table.setFocus()
        return self.gallery

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()
            self.gallery.deleteLater()
            self.gallery = self._model = None
