"""The Predict tab's table: one row per image, sortable and filterable by label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QPainter
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from facecomic_gui.thumbnails import ThumbnailCache
from trainer.data.dataset import display_name

if TYPE_CHECKING:
    from trainer.prediction.predictor import Prediction

THUMB, FILE, LABEL, CONFIDENCE, DETAILS = range(5)
HEADERS = ("", "File", "Prediction", "Confidence", "Details")
SORT_ROLE = Qt.ItemDataRole.UserRole
FILTER_ROLE = Qt.ItemDataRole.UserRole + 1
ERROR_KEY, PENDING_KEY = "__error__", "__pending__"
CLASS_COLOURS = {"faces": QColor("#2b7bba"), "comics": QColor("#e8710a")}
FALLBACK_COLOURS = (QColor("#2b7bba"), QColor("#e8710a"))
ERROR_COLOUR = QColor("#b00020")
_ROOT = QModelIndex()  # the invalid index Qt passes for a flat table's parent


def percent(p: float) -> str:
    """A probability for people: never a false "100.0%" or "0.0%"."""
    if p >= 0.9995:
        return ">99.9%"
    if p < 0.0005:
        return "<0.1%"
    return f"{p:.1%}"


@dataclass
class PredictionRow:
    key: str  # thumbnail cache key; a path, or "pasted:N" for clipboard images
    name: str
    source: Path | Image.Image
    prediction: Prediction | None = None


def source_name(source: Path | Image.Image, counter: int) -> tuple[str, str]:
    if isinstance(source, Image.Image):
        return f"pasted:{counter}", f"Pasted image {counter}"
    return str(source), source.name


class PredictionTableModel(QAbstractTableModel):
    def __init__(self, thumbnails: ThumbnailCache, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[PredictionRow] = []
        self._thumbnails = thumbnails
        self._row_of_key: dict[str, list[int]] = {}
        self._class_names: tuple[str, ...] = ()
        self._pasted = 0
        thumbnails.ready.connect(self._on_thumbnail_ready)

    def set_class_names(self, names: tuple[str, ...]) -> None:
        self._class_names = names

    def colour_of(self, class_name: str | None) -> QColor:
        if class_name in CLASS_COLOURS:
            return CLASS_COLOURS[class_name]
        if class_name in self._class_names:
            return FALLBACK_COLOURS[self._class_names.index(class_name) % 2]
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
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        p = row.prediction
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == FILE:
                return row.name
            if column == LABEL:
                if p is None:
                    return "…"
                return p.display_label if p.ok else "Unreadable"
            if column == CONFIDENCE:
                return "" if p is None or not p.ok else percent(p.confidence)
            if column == DETAILS:
                if p is None:
                    return "predicting…"
                if not p.ok:
                    return p.error
                return "   ".join(
                    f"{display_name(name)} {percent(prob)}" for name, prob in p.probabilities.items()
                )
        elif role == Qt.ItemDataRole.DecorationRole and column == THUMB:
            return self._thumbnails.pixmap(row.key, row.source)  # loads lazily: only rows in view ask
        elif role == Qt.ItemDataRole.ToolTipRole and column in (FILE, THUMB):
            return row.key if not row.key.startswith("pasted:") else row.name
        elif role == Qt.ItemDataRole.ToolTipRole and column == DETAILS and p is not None and not p.ok:
            return p.error
        elif role == Qt.ItemDataRole.ForegroundRole:
            if p is not None and not p.ok and column in (LABEL, DETAILS):
                return QBrush(ERROR_COLOUR)
            if p is not None and p.ok and column == LABEL:
                return QBrush(self.colour_of(p.label))
        elif role == SORT_ROLE:
            if column == CONFIDENCE:
                return -1.0 if p is None or not p.ok else p.confidence
            if column == LABEL:
                return self.data(index, Qt.ItemDataRole.DisplayRole)
            return row.name.lower()
        elif role == FILTER_ROLE:
            if p is None:
                return PENDING_KEY
            return p.label if p.ok else ERROR_KEY
        return None

    # -- editing ---------------------------------------------------------------------------------

    def add_sources(self, sources: list[Path | Image.Image]) -> int:
        """Append pending rows; returns the first new row."""
        first = len(self.rows)
        if not sources:
            return first
        self.beginInsertRows(QModelIndex(), first, first + len(sources) - 1)
        for source in sources:
            if isinstance(source, Image.Image):
                self._pasted += 1
            key, name = source_name(source, self._pasted)
            self._row_of_key.setdefault(key, []).append(len(self.rows))
            self.rows.append(PredictionRow(key, name, source))
        self.endInsertRows()
        return first

    def set_predictions(self, first: int, predictions: list[Prediction]) -> None:
        if not predictions:
            return
        for offset, prediction in enumerate(predictions):
            self.rows[first + offset].prediction = prediction
        self.dataChanged.emit(
            self.index(first, 0), self.index(first + len(predictions) - 1, len(HEADERS) - 1)
        )

    def reset_predictions(self) -> None:
        for row in self.rows:
            row.prediction = None
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(HEADERS) - 1))

    def clear(self) -> None:
        self.beginResetModel()
        self.rows.clear()
        self._row_of_key.clear()
        self.endResetModel()

    def predictions(self) -> list[Prediction]:
        return [r.prediction for r in self.rows if r.prediction is not None]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            p = row.prediction
            key = PENDING_KEY if p is None else (p.label if p.ok else ERROR_KEY)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _on_thumbnail_ready(self, key: str) -> None:
        for row in self._row_of_key.get(key, ()):
            index = self.index(row, THUMB)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class PredictionFilterProxy(QSortFilterProxyModel):
    """Sorts by the model's sort role and keeps rows whose label matches ``label_filter``."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self._label: str | None = None

    def set_label_filter(self, label: str | None) -> None:
        self.beginFilterChange()
        self._label = label
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if self._label is None:
            return True
        index = self.sourceModel().index(source_row, LABEL, source_parent)
        return self.sourceModel().data(index, FILTER_ROLE) == self._label


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
        colour = QColor(self._table.colour_of(p.label))
        colour.setAlpha(200)
        painter.setBrush(colour)
        painter.drawRoundedRect(filled, 3, 3)
        painter.setPen(QColor("#111111"))
        painter.drawText(bar, Qt.AlignmentFlag.AlignCenter, percent(p.confidence))
        painter.restore()
