"""The Train tab's parts: dataset summary, settings form, grid table and holdout panel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.settings import TrainForm
from facecomic_gui.thumbnails import ThumbnailCache, scaled
from trainer.common.configs import GridSpec, TrainConfig
from trainer.data.dataset import display_name

if TYPE_CHECKING:
    from trainer.data.dataset import DatasetScan, SkippedFile
    from trainer.training.results import HoldoutMetrics

THUMBS_PER_CLASS = 6
THUMB_SIZE = 44
IMBALANCE_RATIO = 1.5
BEST_BRUSH = QBrush(QColor("#d8f0d8"))


def _bold(label: QLabel, point_delta: int = 0) -> QLabel:
    font = label.font()
    font.setBold(True)
    if point_delta:
        font.setPointSize(font.pointSize() + point_delta)
    label.setFont(font)
    return label


def _message(text: str, colour: str, background: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(
        f"QLabel {{ color: {colour}; background: {background}; border-radius: 4px; padding: 6px; }}"
    )
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def fit_table_height(table: QTableWidget) -> None:
    """Make a small table exactly as tall as its rows, so no empty band shows under them."""
    height = table.horizontalHeader().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setFixedHeight(height)


def keep_space_when_hidden(widget: QWidget) -> None:
    """Showing or hiding it later must not re-lay out its neighbours (the plots repaint then)."""
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)


def error_banner() -> QLabel:
    label = _message("", "#8a1f11", "#fde2dd")
    label.hide()
    return label


class DatasetSummaryWidget(QWidget):
    """Per-class counts with a strip of thumbnails, skipped files, and an imbalance warning."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._thumb_labels: dict[str, QLabel] = {}
        self._skipped: list[SkippedFile] = []
        thumbnails.ready.connect(self._on_thumbnail_ready)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.placeholder = QLabel(
            "Choose a dataset folder, or drop one on this tab. It needs two class folders, "
            "for example faces/ and comics/ (the Kaggle download works as is)."
        )
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet("color: #666;")
        layout.addWidget(self.placeholder)
        self.classes_box = QWidget()
        self.classes_layout = QVBoxLayout(self.classes_box)
        self.classes_layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.classes_box)
        self.imbalance = _message("", "#7a5200", "#fff3cd")
        self.imbalance.hide()
        layout.addWidget(self.imbalance)
        self.skipped_toggle = QToolButton()
        self.skipped_toggle.setCheckable(True)
        self.skipped_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.skipped_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.skipped_toggle.setAutoRaise(True)
        self.skipped_toggle.toggled.connect(self._on_skipped_toggled)
        self.skipped_toggle.hide()
        layout.addWidget(self.skipped_toggle)
        self.skipped_list = QListWidget()
        self.skipped_list.setMaximumHeight(120)
        self.skipped_list.hide()
        layout.addWidget(self.skipped_list)

    def clear(self) -> None:
        while self.classes_layout.count():
            item = self.classes_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self._thumb_labels.clear()
        self.imbalance.hide()
        self.skipped_toggle.hide()
        self.skipped_toggle.setChecked(False)
        self.skipped_list.clear()
        self.placeholder.show()

    def show_scan(self, scan: DatasetScan) -> None:
        self.clear()
        self.placeholder.hide()
        for class_dir, name, files in zip(scan.class_dirs, scan.class_names, scan.files, strict=True):
            title = _bold(QLabel(f"{display_name(name)}  ·  {len(files):,} images"))
            title.setToolTip(str(class_dir))
            self.classes_layout.addWidget(title)
            strip = QHBoxLayout()
            strip.setSpacing(3)
            for path in files[:THUMBS_PER_CLASS]:
                label = QLabel()
                label.setFixedSize(THUMB_SIZE, THUMB_SIZE)
                label.setFrameShape(QFrame.Shape.StyledPanel)
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                label.setToolTip(path.name)
                key = str(path)
                self._thumb_labels[key] = label
                pixmap = self._thumbnails.pixmap(key, path)
                if pixmap is not None:
                    label.setPixmap(scaled(pixmap, THUMB_SIZE - 2))
                strip.addWidget(label)
            strip.addStretch(1)
            holder = QWidget()
            holder.setLayout(strip)
            strip.setContentsMargins(0, 0, 0, 6)
            self.classes_layout.addWidget(holder)
        self.set_imbalance(scan.class_names, scan.counts)
        self.set_skipped(scan.skipped)

    def set_imbalance(self, class_names: Sequence[str], counts: Sequence[int]) -> None:
        low, high = min(counts), max(counts)
        if low and high / low > IMBALANCE_RATIO:
            big = display_name(class_names[counts.index(high)])
            small = display_name(class_names[counts.index(low)])
            self.imbalance.setText(
                f"Imbalanced: {big} has {high / low:.1f}x as many images as {small}. Accuracy can "
                f"look good by favouring {big}; check the per-class recall in the holdout."
            )
            self.imbalance.show()
        else:
            self.imbalance.hide()

    def set_skipped(self, skipped: Sequence[SkippedFile]) -> None:
        self._skipped = list(skipped)
        self.skipped_list.clear()
        if not skipped:
            self.skipped_toggle.hide()
            return
        for item in skipped:
            self.skipped_list.addItem(f"{Path(item.path).name}: {item.reason}")
            self.skipped_list.item(self.skipped_list.count() - 1).setToolTip(item.path)
        self.skipped_toggle.setText(f"{len(skipped):,} file{'s' if len(skipped) != 1 else ''} skipped")
        self.skipped_toggle.show()

    def add_skipped(self, skipped: Sequence[SkippedFile]) -> None:
        """Unreadable images found while decoding join the ones the scan skipped."""
        known = {s.path for s in self._skipped}
        self.set_skipped(self._skipped + [s for s in skipped if s.path not in known])

    def _on_skipped_toggled(self, shown: bool) -> None:
        self.skipped_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.skipped_list.setVisible(shown)

    def _on_thumbnail_ready(self, key: str) -> None:
        label = self._thumb_labels.get(key)
        pixmap = self._thumbnails.pixmap(key)
        if label is not None and pixmap is not None:
            label.setPixmap(scaled(pixmap, THUMB_SIZE - 2))


class TrainSettingsWidget(QWidget):
    """Split, grid and batch settings; ``form()`` is None while a field is invalid."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.split = QComboBox()
        self.split.addItem("Random (stratified, seeded)", "random")
        self.split.addItem("Paper (first files per class)", "paper")
        self.split.setToolTip("Both keep a face and its comic (same file name) in the same split.")
        self.learning_rates = QLineEdit()
        self.learning_rates.setPlaceholderText("e.g. 0.01, 0.001")
        self.learning_rates.setToolTip("Learning rates to try, separated by commas or spaces.")
        self.epochs = QLineEdit()
        self.epochs.setPlaceholderText("e.g. 1, 3, 5")
        self.epochs.setToolTip("Epoch counts to try; they share one run per learning rate.")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 65536)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        layout.addRow("Split", self.split)
        layout.addRow("Learning rates", self.learning_rates)
        layout.addRow("Epochs", self.epochs)
        layout.addRow("Batch size", self.batch_size)
        layout.addRow("Seed", self.seed)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addRow(self.error)
        for signal in (
            self.split.currentIndexChanged,
            self.learning_rates.textChanged,
            self.epochs.textChanged,
            self.batch_size.valueChanged,
            self.seed.valueChanged,
        ):
            signal.connect(self._on_field_changed)

    def set_form(self, form: TrainForm) -> None:
        self.split.setCurrentIndex(max(0, self.split.findData(form.config.split)))
        self.learning_rates.setText(", ".join(str(v) for v in form.grid.learning_rates))
        self.epochs.setText(", ".join(str(v) for v in form.grid.epochs))
        self.batch_size.setValue(form.config.batch_size)
        self.seed.setValue(form.config.seed)

    def form(self) -> TrainForm | None:
        error = None
        learning_rates: tuple[float, ...] = ()
        epochs: tuple[int, ...] = ()
        try:
            learning_rates = tuple(float(v) for v in _tokens(self.learning_rates.text()))
            if not learning_rates or any(not v > 0 for v in learning_rates):
                raise ValueError
        except ValueError:
            error = "Learning rates must be positive numbers, such as 0.01, 0.001."
        if error is None:
            try:
                epochs = tuple(int(v) for v in _tokens(self.epochs.text()))
                if not epochs or any(v < 1 for v in epochs):
                    raise ValueError
            except ValueError:
                error = "Epochs must be whole numbers of at least 1, such as 1, 3, 5."
        self.error.setText(error or "")
        self.error.setVisible(error is not None)
        _mark_invalid(self.learning_rates, error is not None and not learning_rates)
        _mark_invalid(self.epochs, error is not None and bool(learning_rates))
        if error:
            return None
        config = TrainConfig(
            split=self.split.currentData(), batch_size=self.batch_size.value(), seed=self.seed.value()
        )
        return TrainForm(config, GridSpec(learning_rates, epochs))

    def _on_field_changed(self) -> None:
        self.form()
        self.changed.emit()


def _tokens(text: str) -> list[str]:
    return text.replace(",", " ").split()


def _mark_invalid(widget: QWidget, invalid: bool) -> None:
    widget.setStyleSheet("border: 1px solid #b00020;" if invalid else "")


class GridTableWidget(QTableWidget):
    """The validation grid in the paper's shape: learning-rate rows x epoch columns, "acc / loss"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._learning_rates: list[float] = []
        self._epochs: list[int] = []
        self._scores: dict[tuple[float, int], tuple[float, float]] = {}

    def set_grid(self, learning_rates: Sequence[float], epochs: Sequence[int]) -> None:
        """Empty cells for this grid. The same shape again only resets the cells: no re-layout,
        so starting a run does not make the plots above repaint from scratch."""
        same_shape = (list(learning_rates), list(epochs)) == (self._learning_rates, self._epochs)
        self._scores.clear()
        if same_shape:
            for item in (self.item(r, c) for r in range(self.rowCount()) for c in range(self.columnCount())):
                self._reset_item(item)
            return
        self._learning_rates, self._epochs = list(learning_rates), list(epochs)
        self.clear()
        self.setRowCount(len(learning_rates))
        self.setColumnCount(len(epochs))
        self.setHorizontalHeaderLabels([f"{e} epoch{'s' if e != 1 else ''}" for e in epochs])
        self.setVerticalHeaderLabels([f"lr {lr:g}" for lr in learning_rates])
        for r in range(len(learning_rates)):
            for c in range(len(epochs)):
                item = QTableWidgetItem()
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self._reset_item(item)
                self.setItem(r, c, item)
        self.resizeRowsToContents()
        fit_table_height(self)

    @staticmethod
    def _reset_item(item: QTableWidgetItem) -> None:
        item.setText("…")
        item.setForeground(QBrush(QColor("#999999")))
        item.setBackground(QBrush())
        font = item.font()
        font.setBold(False)
        item.setFont(font)
        item.setToolTip("")

    def set_score(self, lr: float, epochs: int, accuracy: float, loss: float) -> None:
        self._scores[(lr, epochs)] = (accuracy, loss)
        item = self.item(self._learning_rates.index(lr), self._epochs.index(epochs))
        item.setText(f"{accuracy:.3f} / {loss:.3f}")
        item.setForeground(QBrush(QColor("#000000")))
        self._highlight_best()

    def best(self) -> tuple[float, int] | None:
        if not self._scores:
            return None
        return min(self._scores, key=lambda k: (-self._scores[k][0], self._scores[k][1]))

    def cell_text(self, lr: float, epochs: int) -> str:
        return self.item(self._learning_rates.index(lr), self._epochs.index(epochs)).text()

    def _highlight_best(self) -> None:
        best = self.best()
        for lr, epochs in self._scores:
            item = self.item(self._learning_rates.index(lr), self._epochs.index(epochs))
            is_best = (lr, epochs) == best
            item.setBackground(BEST_BRUSH if is_best else QBrush())
            font = item.font()
            font.setBold(is_best)
            item.setFont(font)
            item.setToolTip(
                "Best so far: highest validation accuracy, ties to the lower loss" if is_best else ""
            )


class HoldoutWidget(QWidget):
    """The final model's one evaluation on the holdout: accuracy, loss, confusion matrix."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.accuracy = _bold(QLabel("—"), 8)
        self.caption = QLabel("Holdout accuracy appears when training ends.")
        self.caption.setStyleSheet("color: #666;")
        self.caption.setWordWrap(True)
        self.caption.setFixedHeight(2 * self.caption.fontMetrics().lineSpacing() + 4)
        self.confusion = QTableWidget(2, 2)  # sized for two classes from the start: no jump later
        self.confusion.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.confusion.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.confusion.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.setHorizontalHeaderLabels(["", ""])
        self.confusion.resizeRowsToContents()
        fit_table_height(self.confusion)
        keep_space_when_hidden(self.confusion)
        self.confusion.hide()
        self.per_class = QLabel()
        self.per_class.setWordWrap(True)
        self.per_class.setFixedHeight(2 * self.per_class.fontMetrics().lineSpacing() + 4)
        layout.addWidget(self.accuracy, 0, 0)
        layout.addWidget(self.caption, 1, 0)
        layout.addWidget(self.confusion, 2, 0)
        layout.addWidget(self.per_class, 3, 0)
        self.hint = _message("", "#7a5200", "#fff3cd")
        self.hint.hide()
        layout.addWidget(self.hint, 4, 0)
        layout.setRowStretch(5, 1)

    def clear(self) -> None:
        self.accuracy.setText("—")
        self.caption.setText("Holdout accuracy appears when training ends.")
        self.confusion.hide()
        self.per_class.clear()
        self.hint.hide()

    def show_metrics(
        self, metrics: HoldoutMetrics, class_names: Sequence[str], best: tuple[float, int] | None = None
    ) -> None:
        names = [display_name(c) for c in class_names]
        self.accuracy.setText(f"{metrics.accuracy:.1%}")
        chosen = f"; trained with lr {best[0]:g} for {best[1]} epochs on train+val" if best else ""
        self.caption.setText(f"holdout accuracy, loss {metrics.loss:.3f}, {metrics.size:,} images{chosen}")
        self.confusion.setRowCount(len(names))
        self.confusion.setColumnCount(len(names))
        self.confusion.setHorizontalHeaderLabels([f"→ {n}" for n in names])
        self.confusion.setVerticalHeaderLabels(names)
        bold = QFont()
        bold.setBold(True)
        for r, row in enumerate(metrics.confusion_matrix):
            for c, value in enumerate(row):
                item = QTableWidgetItem(f"{value:,}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if r == c:
                    item.setFont(bold)
                    item.setBackground(BEST_BRUSH)
                self.confusion.setItem(r, c, item)
        self.confusion.setToolTip("Rows: true class. Columns: predicted class.")
        self.confusion.resizeRowsToContents()
        fit_table_height(self.confusion)
        self.confusion.show()
        self.per_class.setText(
            "  ·  ".join(
                f"{n}: precision {p:.2f}, recall {r:.2f}"
                for n, p, r in zip(names, metrics.precision, metrics.recall, strict=True)
            )
        )
        never = [n for n, r in zip(names, metrics.recall, strict=True) if r == 0]
        if never:
            # The usual cause on a small data set: the paper's 5 epochs are a few dozen steps.
            self.hint.setText(
                f"It never predicted {never[0]} correctly. On a small data set this usually means too "
                "few training steps: try more epochs (such as 20, 50) or a higher learning rate."
            )
        self.hint.setVisible(bool(never))
