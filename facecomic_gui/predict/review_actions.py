"""The Predict tab's review tools: marking rows with their true class (F, C, the row menu), the
*Sort into folders…* and *Add to dataset…* buttons. The tab places the buttons and the menu
entries; the marks live in a shared ``CorrectionsSession`` (set by the window)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QPushButton, QWidget

from facecomic_gui.common.corrections import CorrectionsSession
from facecomic_gui.common.mark_actions import MarkActions
from facecomic_gui.predict.sort_dialog import SortDialog
from facecomic_gui.predict.sort_session import SortSession
from facecomic_gui.predict.table import DETAILS, LABEL


class PredictReviewTools(QObject):
    add_requested = Signal()  # *Add to dataset…* was clicked

    def __init__(self, tab: QWidget) -> None:
        """``tab``: the ``PredictTabWidget`` (its session, view, table model and selection)."""
        super().__init__(tab)
        self.tab = tab
        self.corrections: CorrectionsSession | None = None
        self.sort_dialog: SortDialog | None = None
        self.last_target: str | None = None
        self.marks = MarkActions(tab.view, self._targets, self)
        self.sort_button = QPushButton("Sort into folders…")
        self.sort_button.setToolTip(
            "Copy or move the images into a folder per class, and unsure/ per reason."
        )
        self.sort_button.clicked.connect(self._on_sort_clicked)
        self.add_button = QPushButton("Add to dataset…")
        self.add_button.setToolTip(
            "Copy the images you marked with their true class (F: Real face, C: Comic) into a data set."
        )
        self.add_button.clicked.connect(self.add_requested)
        session = tab.session
        session.model_changed.connect(self._on_model_changed)
        session.predictions_finished.connect(self.update_buttons)
        session.rows_reset.connect(self.update_buttons)
        self._on_model_changed()

    def set_corrections(self, corrections: CorrectionsSession) -> None:
        self.corrections = corrections
        self.marks.set_corrections(corrections)
        self.tab.table_model.corrections = corrections
        corrections.changed.connect(self._on_marks_changed)
        self.update_buttons()

    def _targets(self) -> list[tuple[str, str | None]]:
        """The selected rows that can be marked: a file, with an answer."""
        return [
            (str(r.path), r.prediction.label)
            for r in self.tab.selected_rows()
            if r.path is not None and r.prediction is not None and r.prediction.ok
        ]

    # -- the session's events ---------------------------------------------------------------------

    def _on_model_changed(self) -> None:
        model = self.tab.session.model
        self.marks.set_classes(model.class_names if model is not None else ())
        self.update_buttons()

    def _on_marks_changed(self, _paths) -> None:
        model = self.tab.table_model
        if model.rowCount():
            model.dataChanged.emit(model.index(0, LABEL), model.index(model.rowCount() - 1, DETAILS))
        self.update_buttons()

    def update_buttons(self, *_args) -> None:
        session = self.tab.session
        self.sort_button.setEnabled(any(p.ok for p in session.predictions()) and session.model is not None)
        unsaved = len(self.corrections.unsaved()) if self.corrections is not None else 0
        self.add_button.setText(f"Add {unsaved:,} marked to dataset…" if unsaved else "Add to dataset…")
        self.add_button.setEnabled(bool(unsaved) and not (self.corrections and self.corrections.adding))

    # -- sorting ---------------------------------------------------------------------------------

    def _on_sort_clicked(self) -> None:
        self.open_sort_dialog()

    def open_sort_dialog(self, target: str | None = None, *, move: bool = False) -> SortDialog | None:
        """The plan for every answered image of the tab (a new dialog each time: the rows may
        have changed)."""
        session = self.tab.session
        if session.model is None:
            return None
        if self.sort_dialog is not None:
            self.sort_dialog.close()
            self.sort_dialog.deleteLater()
        sort = SortSession(
            session.jobs,
            session.predictions(),
            session.model.class_names,
            target or self.last_target,
            move=move,
        )
        sort.files_moved.connect(self._on_files_moved)
        sort.changed.connect(self._on_sort_changed)
        self.sort_dialog = SortDialog(sort, self.tab)
        self.sort_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.sort_dialog.show()
        return self.sort_dialog

    def _on_sort_changed(self) -> None:
        if self.sort_dialog is not None and self.sort_dialog.session.target:
            self.last_target = self.sort_dialog.session.target

    def _on_files_moved(self, moved: dict[str, str]) -> None:
        self.tab.session.relocate(moved)
        if self.corrections is not None:
            self.corrections.relocate(moved)

    def shutdown(self) -> None:
        if self.sort_dialog is not None:
            self.sort_dialog.session.shutdown()
