"""The Runs tab: the runs folder as a table (date, data set, features, best setting, holdout
accuracy, ECE, duration), read in the background; unreadable files listed with the reason.
Actions: open in the Train tab, compare two runs' curves, use for predictions, rename, delete."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.dialogs import show_error
from facecomic_gui.common.widgets import error_banner
from facecomic_gui.runs.jobs import RunEntry
from facecomic_gui.runs.session import LOADING, RunsSession
from trainer.model.results import curves_by_run
from trainer.training.progress import format_duration

HEADERS = (
    "Name",
    "Date (UTC)",
    "Data set",
    "Features",
    "Best setting",
    "Holdout accuracy",
    "ECE",
    "Duration",
)
NAME, DATE, DATASET, FEATURES, BEST, ACCURACY, ECE, DURATION = range(len(HEADERS))
ERROR_COLOUR = QColor("#b00020")
RUN_COLOURS = ("#1f77b4", "#d62728")
LR_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)


def run_facts(entry: RunEntry) -> str:
    """ "612 faces, 603 comics; holdout 93.1%": the data a run had and how it scored."""
    counts = entry.metadata.get("class_counts") or {}
    data = ", ".join(f"{n:,} {name}" for name, n in counts.items())
    score = "" if entry.accuracy is None else f"holdout {entry.accuracy:.1%}"
    return "; ".join(part for part in (data, score) if part)


class CompareDialog(QDialog):
    """Two runs' training loss and validation accuracy per epoch on one pair of plots: a colour
    per run, a line style per learning rate (a linear head's: per L2 weight, over iterations)."""

    def __init__(self, first: RunEntry, second: RunEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare {first.name} and {second.name}")
        self.loss_plot = pg.PlotWidget(title="Training loss per epoch")
        self.accuracy_plot = pg.PlotWidget(title="Validation accuracy per epoch")
        for plot, label in ((self.loss_plot, "cross-entropy"), (self.accuracy_plot, "accuracy")):
            plot.setLabel("bottom", "epoch (linear head: iteration)")
            plot.setLabel("left", label)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setMenuEnabled(False)
            plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)
        self.curves: dict[str, dict[str, tuple[list, list]]] = {"loss": {}, "accuracy": {}}
        for n, (tag, entry) in enumerate((("A", first), ("B", second))):
            self._add_run(tag, entry, RUN_COLOURS[n])
        caption = QLabel(f"A: {first.name} ({run_facts(first)})<br>B: {second.name} ({run_facts(second)})")
        caption.setWordWrap(True)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.accuracy_plot)
        layout = QVBoxLayout(self)
        layout.addWidget(caption)
        layout.addLayout(plots, 1)
        self.resize(1000, 460)

    def _add_run(self, tag: str, entry: RunEntry, colour: str) -> None:
        for i, curve in enumerate(curves_by_run(entry.model.history)):
            pen = pg.mkPen(colour, width=2, style=LR_STYLES[i % len(LR_STYLES)])
            name = f"{tag}: {curve.label}"
            epochs, losses = list(curve.epochs), list(curve.train_loss)
            val_epochs, accuracy = list(curve.val_epochs), list(curve.val_accuracy)
            self.loss_plot.plot(epochs, losses, pen=pen, name=name)
            # A linear fit is scored once, at its last iteration: a marker, not a line.
            symbol = {"symbol": "o", "symbolBrush": colour, "symbolPen": None} if len(val_epochs) == 1 else {}
            self.accuracy_plot.plot(val_epochs, accuracy, pen=pen, name=name, **symbol)
            self.curves["loss"][name] = (epochs, losses)
            self.curves["accuracy"][name] = (val_epochs, accuracy)


class RunsTabWidget(QWidget):
    open_run_requested = Signal(object)  # LoadedModel, shown in the Train tab
    use_model_requested = Signal(object)  # LoadedModel, for the Predict tab
    listed = Signal()  # the folder has been read (again)

    def __init__(self, session: RunsSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.compare_dialog: CompareDialog | None = None
        self.folder_label = QLabel()
        self.folder_label.setStyleSheet("color: #666;")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = error_banner()
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        # Names are long ("20261129-101500-face2comics-sample"): one line, cut in the middle so the
        # date and the end both show, the full name in the tooltip.
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.itemDoubleClicked.connect(self._on_double_clicked)
        self.empty = QLabel("No runs yet: every finished training run is saved here automatically.")
        self.empty.setStyleSheet("color: #666;")

        self.open_button = QPushButton("Open in Train tab")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Select two runs to plot their loss and accuracy curves together.")
        self.use_button = QPushButton("Use for predictions")
        self.rename_button = QPushButton("Rename…")
        self.delete_button = QPushButton("Delete…")
        self.refresh_button = QPushButton("Refresh")
        buttons = QHBoxLayout()
        for button, slot in (
            (self.open_button, self._on_open_clicked),
            (self.compare_button, self._on_compare_clicked),
            (self.use_button, self._on_use_clicked),
            (self.rename_button, self._on_rename_clicked),
            (self.delete_button, self._on_delete_clicked),
        ):
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.refresh_button.clicked.connect(self._on_refresh_clicked)
        buttons.addWidget(self.refresh_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.folder_label)
        layout.addWidget(self.error)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addLayout(buttons)
        session.changed.connect(self._on_session_changed)
        session.selection_changed.connect(self._update_buttons)
        self._on_session_changed()

    # -- intents ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        self.session.refresh()

    def select_rows(self, rows: list[int]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row in rows:
            self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def open_selected(self) -> None:
        entry = self.session.current
        if entry is not None:
            self.open_run_requested.emit(entry.model)

    def compare_selected(self) -> CompareDialog | None:
        if not self.session.can_compare:
            return None
        first, second = self.session.selected_entries
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = CompareDialog(first, second, self)
        self.compare_dialog.show()
        return self.compare_dialog

    def compare_with_previous(self, path) -> CompareDialog | None:
        """The run saved at ``path`` (B) and the previous run on the same data set (A), selected
        and compared; None when there is no earlier run on it."""
        index = self.session.index_of(path)
        previous = self.session.previous_on_same_dataset(index) if index is not None else None
        if previous is None:
            return None
        self.select_rows([index, previous])
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        entries = self.session.entries
        self.compare_dialog = CompareDialog(entries[previous], entries[index], self)
        self.compare_dialog.show()
        return self.compare_dialog

    def rename_selected(self) -> None:
        entry = self.session.current
        if entry is None:
            return
        name, ok = QInputDialog.getText(
            self, "Rename run", "New name:", QLineEdit.EchoMode.Normal, entry.name
        )
        if not ok:
            return
        problem = self.session.rename(entry, name)
        if problem:
            show_error(self, "Could not rename the run", problem)

    def delete_selected(self) -> None:
        chosen = self.session.selected_entries
        if len(chosen) != 1:
            return
        entry = chosen[0]
        answer = QMessageBox.question(
            self, "Delete run", f"Delete {entry.path.name} from the runs folder? This cannot be undone."
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        problem = self.session.delete(entry)
        if problem:
            show_error(self, "Could not delete the run", problem)

    def _on_open_clicked(self) -> None:
        self.open_selected()

    def _on_double_clicked(self, _item) -> None:
        self.open_selected()

    def _on_compare_clicked(self) -> None:
        self.compare_selected()

    def _on_use_clicked(self) -> None:
        entry = self.session.current
        if entry is not None:
            self.use_model_requested.emit(entry.model)

    def _on_rename_clicked(self) -> None:
        self.rename_selected()

    def _on_delete_clicked(self) -> None:
        self.delete_selected()

    def _on_refresh_clicked(self) -> None:
        self.refresh()

    def _on_selection_changed(self) -> None:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        self.session.select(rows)

    # -- rendering -------------------------------------------------------------------------------

    def _on_session_changed(self) -> None:
        session = self.session
        loading = session.state == LOADING
        self.folder_label.setText(f"Runs folder: {session.runs_dir}" + ("  (reading…)" if loading else ""))
        self.error.setText(session.error or "")
        self.error.setVisible(bool(session.error))
        self.table.blockSignals(True)
        self.table.clearSpans()
        self.table.setRowCount(len(session.entries))
        for row, entry in enumerate(session.entries):
            self._show_entry(row, entry)
        self.table.clearSelection()
        for row in session.selected:
            for column in range(len(HEADERS)):
                item = self.table.item(row, column)
                if item is not None:
                    item.setSelected(True)
        self.table.blockSignals(False)
        self.empty.setVisible(not session.entries and not loading)
        self._update_buttons()
        if not loading:
            self.listed.emit()

    def _show_entry(self, row: int, entry: RunEntry) -> None:
        name = QTableWidgetItem(entry.name)
        name.setToolTip(f"{entry.path.name}\nin {entry.path.parent}")
        self.table.setItem(row, NAME, name)
        if not entry.ok:
            reason = QTableWidgetItem(f"Cannot be read: {entry.error}")
            reason.setForeground(QBrush(ERROR_COLOUR))
            reason.setToolTip(entry.error or "")
            # It spans the columns after the name; sized as one cell, a long reason would widen the
            # Date column and squeeze the names to "202… face…".
            reason.setSizeHint(QSize(0, 0))
            self.table.setItem(row, DATE, reason)
            for column in range(DATE + 1, len(HEADERS)):
                self.table.setItem(row, column, QTableWidgetItem(""))
            self.table.setSpan(row, DATE, 1, len(HEADERS) - DATE)
            return
        values = {
            DATE: entry.created,
            DATASET: entry.dataset,
            FEATURES: entry.features,
            BEST: entry.best,
            ACCURACY: "" if entry.accuracy is None else f"{entry.accuracy:.1%}",
            ECE: "" if entry.ece is None else f"{entry.ece:.3f}",
            DURATION: "" if entry.seconds is None else format_duration(entry.seconds),
        }
        for column, text in values.items():
            item = QTableWidgetItem(text)
            if column in (ACCURACY, ECE, DURATION):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)

    def _update_buttons(self) -> None:
        session = self.session
        one = session.current is not None
        self.open_button.setEnabled(one)
        self.use_button.setEnabled(one)
        self.rename_button.setEnabled(one)
        self.compare_button.setEnabled(session.can_compare)
        self.delete_button.setEnabled(session.can_delete)

    def row_texts(self, row: int) -> list[str]:
        """What a row shows, cell by cell (for tests and screenshots)."""
        return [
            self.table.item(row, c).text() if self.table.item(row, c) else "" for c in range(len(HEADERS))
        ]
