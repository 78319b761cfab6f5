"""The Predict tab's table: a Qt view of the session's rows, sortable and filterable by label."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QFont, QPainter
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from facecomic_gui.common.mark_actions import mark_data, mark_note
from facecomic_gui.common.thumbnails import ThumbnailCache
from facecomic_gui.common.widgets import percent
from facecomic_gui.predict.review import UNCERTAIN_FIRST_KEY, uncertainty_key
from facecomic_gui.predict.session import PredictionRow, PredictionSession
from trainer.data.dataset import display_name
from trainer.model.face_likeness import NOT_A_FACE
from trainer.model.novelty import LOW_CONFIDENCE, UNLIKE_TRAINING
from trainer.prediction.export import printable

THUMB, FILE, LABEL, CONFIDENCE, DETAILS = range(5)
HEADERS = ("", "File", "Prediction", "Confidence", "Details")
FILTER_ROLE = Qt.ItemDataRole.UserRole + 1
THUMB_OWNER = "predict"
CLASS_COLOURS = {"faces": QColor("#2b7bba"), "comics": QColor("#e8710a")}
FALLBACK_COLOURS = (QColor("#2b7bba"), QColor("#e8710a"))
ERROR_COLOUR = QColor("#b00020")
UNSURE_COLOUR = QColor("#8a8a8a")  # a flagged answer: muted, so sure answers stand out
_ROOT = QModelIndex()  # the invalid index Qt passes for a flat table's parent
# Sorting *Details* sorts by flag, from the answers to trust to those to check: sure, low
# confidence, unlike the training images, unreadable, and rows still being predicted last.
FLAG_ORDER = ("", LOW_CONFIDENCE, UNLIKE_TRAINING, NOT_A_FACE)
UNREADABLE_RANK, PENDING_RANK = len(FLAG_ORDER), len(FLAG_ORDER) + 1
DETAILS_TOOLTIP = "Sorts by flag: sure, low confidence, unlike training images, not a face, unreadable."


def flag_rank(row: PredictionRow) -> int:
    """The row's place in the flag order (an unknown flag goes after the known ones)."""
    p = row.prediction
    if p is None:
        return PENDING_RANK
    if not p.ok:
        return UNREADABLE_RANK
    return FLAG_ORDER.index(p.flag) if p.flag in FLAG_ORDER else UNREADABLE_RANK - 1


def sort_key(row: PredictionRow, column: int) -> tuple:
    """What a column sorts by: the number, never its text ("9.5%" < "50.0%"); ties by name."""
    name = row.name.lower()
    p = row.prediction
    if column == CONFIDENCE:
        return (-1.0 if p is None or not p.ok else p.confidence, name)
    if column == DETAILS:
        return (flag_rank(row), name)
    if column == LABEL:
        unlabelled = p is None or not p.ok  # after the labels
        return (unlabelled, "" if unlabelled else p.display_label, flag_rank(row), name)
    return (name,)


class PredictionTableModel(QAbstractTableModel):
    """Renders ``session.rows``; the session's events become Qt's row notifications."""

    corrections = None  # a CorrectionsSession: a marked row shows its mark in the Prediction column

    def __init__(self, session: PredictionSession, thumbnails: ThumbnailCache, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self._thumbnails = thumbnails
        self._row_of_key: dict[str, list[int]] = {}
        thumbnails.ready.connect(self._on_thumbnail_ready)
        session.rows_about_to_be_added.connect(self._on_rows_about_to_be_added)
        session.rows_added.connect(self._on_rows_added)
        session.predictions_changed.connect(self._on_predictions_changed)
        session.rows_about_to_reset.connect(self._on_about_to_reset)
        session.rows_reset.connect(self._on_reset)

    @property
    def rows(self):
        return self.session.rows

    def colour_of(self, class_name: str | None) -> QColor:
        if class_name in CLASS_COLOURS:
            return CLASS_COLOURS[class_name]
        names = self.session.model.class_names if self.session.model is not None else ()
        if class_name in names:
            return FALLBACK_COLOURS[names.index(class_name) % 2]
        return QColor("#777777")

    # -- Qt model API --------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return DETAILS_TOOLTIP if section == DETAILS else None
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        p = row.prediction
        column = index.column()
        if (
            column == LABEL
            and self.corrections is not None
            and p is not None
            and p.ok
            and row.path is not None
        ):
            mark = mark_data(
                self.corrections, str(row.path), role, predicted=p.label, confidence=p.confidence
            )
            if mark is not None:
                return mark
        if role == Qt.ItemDataRole.DisplayRole:
            if column == FILE:
                return printable(row.name)  # Qt would drop the bytes of a name that are not UTF-8
            if column == LABEL:
                if p is None:
                    return "…"
                if not p.ok:
                    return "Unreadable"
                if row.not_a_face:
                    return "Not a face"
                return f"{p.display_label}?" if p.unsure else p.display_label
            if column == CONFIDENCE:
                return "" if p is None or not p.ok else percent(p.confidence)
            if column == DETAILS:
                if p is None:
                    return "predicting…"
                if not p.ok:
                    return p.error
                shares = "   ".join(
                    f"{display_name(name)} {percent(prob)}" for name, prob in p.probabilities.items()
                )
                text = f"{p.flag.capitalize()}  ·  {shares}" if p.unsure else shares
                return mark_note(self.corrections, row.path, p.label) + text
        elif role == Qt.ItemDataRole.DecorationRole and column == THUMB:
            return self._thumbnails.pixmap(
                row.key, row.source, owner=THUMB_OWNER
            )  # loads lazily: only rows in view ask
        elif role == Qt.ItemDataRole.ToolTipRole and column in (FILE, THUMB):
            return printable(row.path) if row.path is not None else row.name
        elif role == Qt.ItemDataRole.ToolTipRole and column == DETAILS and p is not None and not p.ok:
            return p.error
        elif role == Qt.ItemDataRole.ToolTipRole and column == LABEL and row.not_a_face:
            return (
                f"This picture does not look like a face or a comic face (the nearer class is "
                f"{p.display_label}; both probabilities are in Details)."
            )
        elif role == Qt.ItemDataRole.ToolTipRole and column == LABEL and row.unsure:
            return f"Unsure: {p.flag}. Treat this answer with care."
        elif role == Qt.ItemDataRole.ForegroundRole:
            if p is not None and not p.ok and column in (LABEL, DETAILS):
                return QBrush(ERROR_COLOUR)
            if row.unsure and column in (LABEL, DETAILS):
                return QBrush(UNSURE_COLOUR)
            if p is not None and p.ok and column == LABEL:
                return QBrush(self.colour_of(p.label))
        elif role == Qt.ItemDataRole.FontRole and row.unsure and column in (LABEL, DETAILS):
            font = QFont()
            font.setItalic(True)
            return font
        elif role == FILTER_ROLE:
            return row.filter_key
        return None

    # -- the session's events -------------------------------------------------------------------

    def _on_rows_about_to_be_added(self, first: int, count: int) -> None:
        self.beginInsertRows(QModelIndex(), first, first + count - 1)

    def _on_rows_added(self, first: int, count: int) -> None:
        for row in range(first, first + count):
            self._row_of_key.setdefault(self.rows[row].key, []).append(row)
        self.endInsertRows()

    def _on_predictions_changed(self, first: int, count: int) -> None:
        if count:
            self.dataChanged.emit(self.index(first, 0), self.index(first + count - 1, len(HEADERS) - 1))

    def _on_about_to_reset(self) -> None:
        self.beginResetModel()

    def _on_reset(self) -> None:
        self._row_of_key.clear()
        self._thumbnails.release(THUMB_OWNER)  # the Train tab's thumbnails stay
        self.endResetModel()

    def _on_thumbnail_ready(self, key: str) -> None:
        for row in self._row_of_key.get(key, ()):
            index = self.index(row, THUMB)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class PredictionFilterProxy(QSortFilterProxyModel):
    """Sorts by :func:`sort_key` and shows the rows the session's label filter keeps."""

    def __init__(self, session: PredictionSession, parent=None) -> None:
        super().__init__(parent)
        self._session = session
        session.filter_changed.connect(self._on_filter_changed)

    def _on_filter_changed(self) -> None:
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        return self._session.shown(self._session.rows[source_row])

    def lessThan(
        self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex
    ) -> bool:
        rows = self._session.rows
        column = left.column()
        if column == CONFIDENCE and self._session.label_filter == UNCERTAIN_FIRST_KEY:
            return uncertainty_key(rows[left.row()]) < uncertainty_key(rows[right.row()])
        return sort_key(rows[left.row()], column) < sort_key(rows[right.row()], column)


class ConfidenceDelegate(QStyledItemDelegate):
    """The confidence as a bar in the class's colour, with the percentage on it."""

    def __init__(self, table: PredictionTableModel, proxy: QSortFilterProxyModel, parent=None) -> None:
        super().__init__(parent)
        self._table = table
        self._proxy = proxy

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        row = self._table.rows[self._proxy.mapToSource(index).row()]
        p = row.prediction
        if p is None or not p.ok:
            super().paint(painter, option, index)
            return
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        bar = QRect(option.rect.adjusted(6, 10, -6, -10))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#e9e9e9"))
        painter.drawRoundedRect(bar, 3, 3)
        filled = QRect(bar)
        filled.setWidth(max(2, int(bar.width() * p.confidence)))
        colour = QColor(UNSURE_COLOUR if p.unsure else self._table.colour_of(p.label))
        colour.setAlpha(200)
        painter.setBrush(colour)
        painter.drawRoundedRect(filled, 3, 3)
        painter.setPen(QColor("#111111"))
        painter.drawText(bar, Qt.AlignmentFlag.AlignCenter, percent(p.confidence))
        painter.restore()
