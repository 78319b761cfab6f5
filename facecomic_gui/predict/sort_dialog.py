"""*Sort into folders…*: the plan (images per folder) for the Predict tab's answers, copy or
move, the target folder, then the sort in the background with progress and cancel, and *Undo*.
A view of a ``SortSession``."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common import dialogs
from facecomic_gui.common.widgets import error_banner, fit_table_height
from facecomic_gui.predict.sort_session import READY, SortSession
from trainer.common.text import plural
from trainer.data.dataset import display_name
from trainer.training.progress import format_duration

LOG_NOTE = (
    "Nothing is ever overwritten: a name already taken gets “name (2).jpg”, and a picture already in "
    "its folder is not copied again. Every step goes to facecomic-sort-log.csv in the target, so a "
    "sort that is interrupted can be finished by sorting again, and any sort can be undone."
)


def folder_title(folder: str) -> str:
    """``faces`` -> "faces/ (Real face)"; ``unsure/low-confidence`` -> "unsure/low-confidence/"."""
    if "/" in folder:
        return f"{folder}/"
    return f"{folder}/  ({display_name(folder)})"


class SortDialog(QDialog):
    sort_finished = Signal()  # a sort or an undo ended (done, cancelled or failed)

    def __init__(self, session: SortSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sort into folders")
        self.session = session
        self.target_edit = QLineEdit(session.target or "")
        self.target_edit.setPlaceholderText("The folder to sort into (created if missing)")
        self.target_edit.editingFinished.connect(self._on_target_edited)
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self._on_choose_clicked)
        target_row = QHBoxLayout()
        target_row.addWidget(QLabel("Into:"))
        target_row.addWidget(self.target_edit, 1)
        target_row.addWidget(self.choose_button)
        self.copy_radio = QRadioButton("Copy the images (the originals stay)")
        self.move_radio = QRadioButton("Move the images")
        self.mode = QButtonGroup(self)
        for i, radio in enumerate((self.copy_radio, self.move_radio)):
            self.mode.addButton(radio, i)
        self.mode.idClicked.connect(self._on_mode_clicked)
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.copy_radio)
        mode_row.addWidget(self.move_radio)
        mode_row.addStretch(1)

        self.heading = QLabel()
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Folder", "Images"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.left_label = QLabel()
        self.left_label.setWordWrap(True)
        self.left_label.setStyleSheet("color: #666;")
        self.error = error_banner()
        note = QLabel(LOG_NOTE)
        note.setWordWrap(True)
        note.setStyleSheet("color: #666;")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(10)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.sort_button = QPushButton("Sort")
        self.sort_button.setDefault(True)
        self.sort_button.clicked.connect(self._on_sort_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip(
            "Take back this sort: moved images go back, copies are deleted (each verified first)."
        )
        self.undo_button.clicked.connect(self._on_undo_clicked)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.undo_button)
        buttons.addStretch(1)
        for button in (self.sort_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addLayout(target_row)
        layout.addLayout(mode_row)
        layout.addWidget(self.heading)
        layout.addWidget(self.table)
        layout.addWidget(self.left_label)
        layout.addWidget(self.error)
        layout.addWidget(note)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)
        layout.addLayout(buttons)
        self.resize(620, self.sizeHint().height())
        session.changed.connect(self._on_session_changed)
        session.progressed.connect(self._on_progressed)
        session.job_finished.connect(self._on_job_finished)
        self._on_session_changed()

    # -- intents ---------------------------------------------------------------------------------

    def _on_target_edited(self) -> None:
        self.session.set_target(self.target_edit.text().strip() or None)

    def _on_choose_clicked(self) -> None:
        start = self.session.target or str(Path.home())
        folder = dialogs.ask_folder(self, "Sort into folder", start)
        if folder is not None:
            self.target_edit.setText(str(folder))
            self.session.set_target(str(folder))

    def _on_mode_clicked(self, button_id: int) -> None:
        self.session.set_move(button_id == 1)

    def _on_sort_clicked(self) -> None:
        self.session.start()

    def _on_cancel_clicked(self) -> None:
        self.session.cancel()

    def _on_undo_clicked(self) -> None:
        self.session.undo()

    def closeEvent(self, event) -> None:
        """Closing while it works stops between two images (the window never waits)."""
        self.session.cancel()
        super().closeEvent(event)

    # -- rendering ---------------------------------------------------------------------------------

    def _on_session_changed(self) -> None:
        session = self.session
        ready = session.state == READY
        (self.move_radio if session.move else self.copy_radio).setChecked(True)
        for widget in (self.target_edit, self.choose_button, self.copy_radio, self.move_radio):
            widget.setEnabled(ready)
        counts = session.counts()
        self.table.setRowCount(len(counts) + (1 if counts else 0))
        for row, (folder, count) in enumerate(counts.items()):
            self._set_row(row, folder_title(folder), count, muted=count == 0)
        if counts:
            self._set_row(len(counts), "Total", sum(counts.values()), bold=True)
        fit_table_height(self.table)  # the plan reads at a glance and nothing scrolls
        verb = "move" if session.move else "copy"
        total = sum(counts.values())
        self.heading.setText(
            f"Where the {plural(total, 'predicted image')} go ({verb}):" if counts else "Nothing to sort yet."
        )
        plan = session.plan
        left = plan.left_out if plan is not None else ()
        self.left_label.setText(
            f"{plural(len(left), 'image')} will stay where {'it is' if len(left) == 1 else 'they are'} "
            f"(unreadable, pasted or gone{', or links' if session.move else ''})."
            if left
            else ""
        )
        self.left_label.setVisible(bool(left))
        self.error.setText(session.plan_error or "")
        self.error.setVisible(bool(session.plan_error) and session.target is not None)
        self.sort_button.setText("Move" if session.move else "Copy")
        self.sort_button.setEnabled(session.can_start)
        self.cancel_button.setEnabled(session.state in ("sorting", "undoing"))
        self.undo_button.setVisible(session.run is not None)
        self.undo_button.setEnabled(session.can_undo)
        self.close_button.setEnabled(True)
        self.progress.setVisible(session.state != READY or bool(session.note or session.error))
        self._show_status()

    def _set_row(self, row: int, title: str, count: int, *, muted: bool = False, bold: bool = False) -> None:
        for column, text in enumerate((title, f"{count:,}")):
            item = QTableWidgetItem(text)
            if column == 1:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if muted:
                item.setForeground(Qt.GlobalColor.gray)
            if bold:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.table.setItem(row, column, item)

    def _on_progressed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self._show_status()

    def _show_status(self) -> None:
        session = self.session
        text = session.status()
        eta = session.eta_seconds()
        if eta is not None:
            text += f"  about {format_duration(eta)} left"
        if session.state == READY and session.left:
            shown = "; ".join(f"{Path(s).name}: {r}" for s, r in session.left[:3])
            text += f" ({shown}{'; …' if len(session.left) > 3 else ''})"
        self.status.setText(text)
        self.status.setStyleSheet("color: #b00020;" if session.error else "")

    def _on_job_finished(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if self.session.error is None else 0)
        self._on_session_changed()
        self.sort_finished.emit()
