"""The Train tab's results: the validation grid (its shape from the trainer's ``grid_layout``)
and the holdout panel. They render what the session holds; none decides a domain rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.widgets import bold as _bold
from facecomic_gui.common.widgets import fit_table_height, keep_space_when_hidden
from facecomic_gui.common.widgets import message_label as _message
from facecomic_gui.train.plots import ReliabilityPlotWidget
from trainer.common.text import fixed, plural
from trainer.data.dataset import display_name
from trainer.model.results import GridLayout, grid_layout

if TYPE_CHECKING:
    from trainer.common.configs import GridSpec
    from trainer.model.results import GridResult, HoldoutMetrics

BEST_BRUSH = QBrush(QColor("#d8f0d8"))


class GridTableWidget(QTableWidget):
    """The validation grid in the paper's shape, "acc / loss": learning-rate rows x epoch columns
    for the MLP, a row per L2 weight for the linear head (``trainer``'s ``grid_layout``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._layout: GridLayout | None = None

    def show_grid(
        self,
        grid: GridSpec,
        results: Sequence[GridResult],
        best: GridResult | None,
        select_by: str = "accuracy",
        head: str = "mlp",
    ) -> None:
        """The grid's cells, filled where a result is in, the best (chosen by the session)
        highlighted. The same shape again only updates the cells: no re-layout, so starting a run
        does not make the plots above repaint from scratch."""
        layout = grid_layout(grid, head)
        if layout != self._layout:
            self._layout = layout
            self.clear()
            self.setRowCount(len(layout.rows))
            self.setColumnCount(len(layout.columns))
            self.setHorizontalHeaderLabels(list(layout.columns))
            self.setVerticalHeaderLabels(list(layout.rows))
            for r in range(len(layout.rows)):
                for c in range(len(layout.columns)):
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    self.setItem(r, c, item)
            self.resizeRowsToContents()
            fit_table_height(self)
        scored = {r.key: r for r in results}
        for r, keys in enumerate(layout.cells):
            for c, key in enumerate(keys):
                result = scored.get(key)
                item = self.item(r, c)
                is_best = best is not None and best.key == key
                item.setText(
                    "…"
                    if result is None
                    else f"{fixed(result.val_accuracy, 3)} / {fixed(result.val_loss, 3)}"
                )
                item.setForeground(QBrush(QColor("#999999" if result is None else "#000000")))
                item.setBackground(BEST_BRUSH if is_best else QBrush())
                font = item.font()
                font.setBold(is_best)
                item.setFont(font)
                tips = []
                if is_best:
                    tips.append(
                        "Best so far: lowest validation loss, ties to the higher accuracy"
                        if select_by == "loss"
                        else "Best so far: highest validation accuracy, ties to the lower loss"
                    )
                if result is not None and result.head_spread is not None:
                    low, high = result.head_spread
                    tips.append(
                        f"The ensemble of {len(result.head_accuracies)} heads; each head alone: "
                        f"accuracy {low:.3f} to {high:.3f}"
                    )
                item.setToolTip("\n".join(tips))

    def cell_text(self, lr: float | None, epochs: int | None = None, l2: float | None = None) -> str:
        position = self._layout.position((lr, epochs, l2)) if self._layout else None
        if position is None:
            raise KeyError((lr, epochs, l2))
        return self.item(*position).text()

    def highlighted(self) -> tuple[float, int] | tuple[float | None, int | None, float | None] | None:
        """The setting shown as best, read from the table (for tests and screenshots): (lr,
        epochs) for the MLP, (None, None, l2) for the linear head."""
        if self._layout is None:
            return None
        for r, keys in enumerate(self._layout.cells):
            for c, key in enumerate(keys):
                if self.item(r, c).font().bold():
                    return key[:2] if key[2] is None else key
        return None


RELIABILITY_HEIGHT = 130


class HoldoutWidget(QWidget):
    """The final model's one evaluation on the holdout: accuracy, loss, confusion matrix, and how
    well its calibrated confidence holds (expected calibration error, reliability diagram). Every
    part has its size from the start, so showing the results does not re-lay out the plots."""

    cell_clicked = Signal(int, int)  # (true class, predicted class) of a confusion-matrix cell

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
        self.confusion.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
        self.confusion.cellClicked.connect(self.cell_clicked)
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
        self.calibration = QLabel()
        self.calibration.setWordWrap(True)
        self.calibration.setFixedHeight(2 * self.calibration.fontMetrics().lineSpacing() + 4)
        self.calibration.setToolTip(
            "Expected calibration error: how far the stated confidence is from the share of right "
            "answers, averaged over 15 confidence bins (0 is perfect). The diagram shows each bin's "
            "accuracy against the diagonal of a perfectly calibrated model."
        )
        layout.addWidget(self.calibration, 4, 0)
        self.reliability = ReliabilityPlotWidget()
        self.reliability.setFixedHeight(RELIABILITY_HEIGHT)
        keep_space_when_hidden(self.reliability)
        self.reliability.hide()
        layout.addWidget(self.reliability, 5, 0)
        self.hint = _message("", "#7a5200", "#fff3cd")
        self.hint.hide()
        layout.addWidget(self.hint, 6, 0)
        layout.setRowStretch(7, 1)

    def clear(self) -> None:
        self.accuracy.setText("—")
        self.caption.setText("Holdout accuracy appears when training ends.")
        self.confusion.hide()
        self.per_class.clear()
        self.calibration.clear()
        self.reliability.clear()
        self.reliability.hide()
        self.hint.hide()

    def show_metrics(
        self,
        metrics: HoldoutMetrics,
        class_names: Sequence[str],
        best: GridResult | None = None,
        refit_all: bool = False,
    ) -> None:
        names = [display_name(c) for c in class_names]
        self.accuracy.setText(f"{metrics.accuracy:.1%}")
        chosen = f"; trained with {_setting_text(best)} on train+val" if best else ""
        if refit_all:  # the figures stay those of the run that chose the setting
            chosen += "; the saved model was then refitted on every image, holdout included"
        self.caption.setText(
            f"holdout accuracy, loss {fixed(metrics.loss, 3)}, {plural(metrics.size, 'image')}{chosen}"
        )
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
        self.confusion.setToolTip(
            "Rows: true class. Columns: predicted class. Click a cell to see its images."
        )
        self.confusion.resizeRowsToContents()
        fit_table_height(self.confusion)
        self.confusion.show()
        self.per_class.setText(
            "  ·  ".join(
                f"{n}: precision {p:.2f}, recall {r:.2f}"
                for n, p, r in zip(names, metrics.precision, metrics.recall, strict=True)
            )
        )
        self._show_calibration(metrics)
        never = [n for n, r in zip(names, metrics.recall, strict=True) if r == 0]
        if never:
            # The usual cause on a small data set: the paper's 5 epochs are a few dozen steps.
            self.hint.setText(
                f"It never predicted {never[0]} correctly. On a small data set this usually means too "
                "few training steps: try more epochs (such as 20, 50) or a higher learning rate."
            )
        self.hint.setVisible(bool(never))

    def _show_calibration(self, metrics: HoldoutMetrics) -> None:
        parts = []
        if metrics.ece is not None:
            parts.append(f"calibration error {fixed(metrics.ece, 3)}")
        if metrics.not_a_face_fraction is not None:
            parts.append(f"{metrics.not_a_face_fraction:.1%} flagged not a face")
        if metrics.unlike_fraction is not None:
            parts.append(f"{metrics.unlike_fraction:.1%} flagged unlike training images")
        self.calibration.setText("  ·  ".join(parts))
        self.reliability.show_bins(metrics.reliability)
        self.reliability.setVisible(bool(metrics.reliability))


def _setting_text(best: GridResult) -> str:
    if best.l2 is not None:
        return f"the linear head at L2 {best.l2:g}"
    return f"lr {best.lr:g} for {plural(best.epochs, 'epoch')}"


class RunResultsWidget(QWidget):
    """The validation grid beside the holdout panel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid_box = QGroupBox("Validation grid: accuracy / loss")
        grid_layout = QVBoxLayout(grid_box)
        self.grid_table = GridTableWidget()
        grid_layout.addWidget(self.grid_table)
        self.grid_hint = QLabel("Each cell: validation accuracy / mean cross-entropy. Best in green.")
        self.grid_hint.setStyleSheet("color: #666;")
        self.grid_hint.setWordWrap(True)
        grid_layout.addWidget(self.grid_hint)
        grid_layout.addStretch(1)
        holdout_box = QGroupBox("Holdout")
        holdout_layout = QVBoxLayout(holdout_box)
        self.holdout = HoldoutWidget()
        holdout_layout.addWidget(self.holdout)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(grid_box, 3)
        layout.addWidget(holdout_box, 2)
