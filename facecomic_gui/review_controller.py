"""The loop "see the mistakes, fix their labels, retrain" across the tabs: one corrections session
shared by the Predict tab and the error gallery, *Add to dataset…* (File menu and Predict tab),
*Retrain* on that data set with the current settings (through the Train tab's session), and, when
that run is saved, the Runs tab's comparison with the previous run on the same data set. Closing
the window with marks not yet added asks first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction

from facecomic_gui.common import dialogs
from facecomic_gui.common.corrections import CorrectionsSession
from facecomic_gui.runs.session import IDLE

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from trainer.data.additions import AdditionSummary


class ReviewController(QObject):
    retrain_started = Signal(str)  # the data set
    compared = Signal(object)  # the CompareDialog of the retrained run and the one before it

    def __init__(self, window: QMainWindow) -> None:
        """``window``: the ``MainWindow`` (its jobs, sessions, tabs and status bar)."""
        super().__init__(window)
        self.window = window
        self.corrections = CorrectionsSession(window.jobs)
        self._retraining: str | None = None  # the data set of the retrain run in progress
        self._compare: Path | None = None  # the retrained run's file, compared once it is listed
        window.predict_tab.review.set_corrections(self.corrections)
        window.train_tab.corrections = self.corrections
        window.predict_tab.review.add_requested.connect(self._on_add_requested)
        self.corrections.added.connect(self._on_added)
        self.corrections.add_failed.connect(self._on_add_failed)
        self.corrections.add_progressed.connect(self._on_add_progressed)
        self.corrections.changed.connect(self._on_marks_changed)
        train = window.train_session
        for emitter in (train.scan_failed, train.run_failed):
            emitter.connect(self._on_retrain_ended)
        train.run_cancelled.connect(self._on_retrain_ended)
        window.train_tab.run_finished.connect(self._on_run_finished)
        window.runs_tab.listed.connect(self._on_runs_listed)
        self.sort_action = QAction("Sort predictions into &folders…", window)
        self.sort_action.triggered.connect(self._on_sort_triggered)
        self.add_action = QAction("&Add marked images to dataset…", window)
        self.add_action.triggered.connect(self._on_add_requested)
        self._on_marks_changed(())

    def add_menu_actions(self, menu, before: QAction) -> None:
        """Into ``menu`` (File), just above ``before`` (Quit), with a line between."""
        menu.insertActions(before, [self.sort_action, self.add_action])
        menu.insertSeparator(before)

    # -- add to a data set, then retrain ---------------------------------------------------------

    def _on_add_requested(self, *_args) -> None:
        self.add_marked_to_dataset()

    def add_marked_to_dataset(self, dataset: str | None = None) -> bool:
        """Ask for the data set folder (the Train tab's is suggested), then add the marks not
        yet added; False when nothing was started."""
        if not self.corrections.unsaved():
            dialogs.show_error(
                self.window,
                "Nothing to add",
                "Mark images with their true class first (F: Real face, C: Comic).",
            )
            return False
        if dataset is None:
            start = (
                self.window.train_session.dataset_path or self.corrections.last_dataset or str(Path.home())
            )
            chosen = dialogs.ask_folder(self.window, "Add the marked images to a data set", start)
            if chosen is None:
                return False
            dataset = str(chosen)
        started = self.corrections.add_to_dataset(dataset)
        if started:
            self.window.statusBar().showMessage(f"Adding the marked images to {dataset}…")
        return started

    def _on_add_progressed(self, done: int, total: int) -> None:
        self.window.statusBar().showMessage(f"Adding the marked images: {done:,} of {total:,}…")

    def _on_added(self, summary: AdditionSummary) -> None:
        text = summary.describe()
        self.window.statusBar().showMessage(text, 10000)
        if dialogs.ask_retrain(self.window, text):
            self.retrain(summary.dataset)

    def _on_add_failed(self, message: str) -> None:
        self.window.statusBar().clearMessage()
        dialogs.show_error(self.window, "Could not add the images", message)

    def retrain(self, dataset: str) -> bool:
        """A run on ``dataset`` with the Train tab's current settings; when it is saved, the Runs
        tab compares it with the previous run on that data set."""
        train = self.window.train_session
        if train.busy:
            dialogs.show_error(self.window, "Training is running", "Retrain when the run in progress ends.")
            return False
        self._retraining = dataset
        self._compare = None
        train.train_after_next_scan()
        train.set_dataset(dataset)
        self.window.tabs.setCurrentWidget(self.window.train_tab)
        self.retrain_started.emit(dataset)
        return True

    def _on_retrain_ended(self, *_args) -> None:
        self._retraining = None

    def _on_run_finished(self, outcome) -> None:
        dataset, self._retraining = self._retraining, None
        if (
            dataset is not None
            and outcome.saved_to is not None
            and _same_folder(outcome.result.dataset_root, dataset)
        ):
            self._compare = outcome.saved_to  # the window refreshes the Runs tab; compared once listed
            # Whichever comes last opens the comparison: this end of the run, or the listing that
            # has its file. Waiting only for a listing to come would lose it when one already came.
            self._compare_if_listed()

    def _on_runs_listed(self) -> None:
        self._compare_if_listed()

    def _compare_if_listed(self) -> None:
        """The retrained run and the one before it, once the Runs tab lists the retrained run's
        file; a listing read before the file was saved does not count (the next one will)."""
        runs = self.window.runs_session
        path = self._compare
        if path is None or runs.state != IDLE or runs.index_of(path) is None:
            return
        self._compare = None
        dialog = self.window.runs_tab.compare_with_previous(path)
        if dialog is not None:
            self.compared.emit(dialog)
        else:
            self.window.statusBar().showMessage("Retrained: this is the first run on that data set.", 8000)

    # -- marks, sorting, closing -------------------------------------------------------------------

    def _on_marks_changed(self, _paths) -> None:
        self.add_action.setEnabled(bool(self.corrections.unsaved()))

    def _on_sort_triggered(self) -> None:
        self.window.tabs.setCurrentWidget(self.window.predict_tab)
        self.window.predict_tab.review.open_sort_dialog()

    def may_close(self) -> bool:
        """Whether the window may close: no marks left unsaved, or the user agrees to lose them."""
        unsaved = self.corrections.unsaved()
        return not unsaved or dialogs.confirm_close_with_marks(self.window, len(unsaved))

    def shutdown(self) -> None:
        self.corrections.shutdown()
        self.window.predict_tab.review.shutdown()


def _same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def apply_review_arguments(window, args):
    """``--show``, ``--mark PATH=CLASS`` and ``--sort-into DIR [--move]`` (after the images are
    predicted, for ``--screenshot``); returns the Sort dialog when one was opened, to be shown.
    ``ValueError`` for a mark that names no image or class."""
    tab = window.predict_tab
    show = getattr(args, "show", None)
    if show is not None:
        from facecomic_gui.predict.review import SHOW_CHOICES

        tab.filter_combo.setCurrentIndex(max(0, tab.filter_combo.findData(SHOW_CHOICES[show])))
    classes = window.current_model.class_names if window.current_model is not None else ()
    rows = {os.path.realpath(r.path): r for r in window.prediction_session.rows if r.path is not None}
    for path, name in getattr(args, "mark", None) or ():
        row = rows.get(os.path.realpath(path))
        if row is None or name not in classes:
            what = f"no image {path} was predicted" if row is None else f"the model has no class {name!r}"
            raise ValueError(f"cannot mark {path}={name}: {what}")
        answer = row.prediction.label if row.prediction is not None else None
        window.review.corrections.mark([row.path], name, [answer])
    target = getattr(args, "sort_into", None)
    if target is None:
        return None
    window.tabs.setCurrentWidget(tab)
    return tab.review.open_sort_dialog(str(target), move=getattr(args, "move", False))
