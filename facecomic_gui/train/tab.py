"""Train tab: pick a dataset, run the grid search and final training in the background, watch it.
A view of a ``TrainingSession``: it renders the session and forwards intents to it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.dialogs import save_model_dialog
from facecomic_gui.common.thumbnails import ThumbnailCache
from facecomic_gui.common.widgets import error_banner, keep_space_when_hidden
from facecomic_gui.train.dataset_panel import DatasetPanelWidget
from facecomic_gui.train.form import TrainForm
from facecomic_gui.train.gallery import ErrorGalleryWidget, GalleryOpener
from facecomic_gui.train.results_panel import RunResultsWidget
from facecomic_gui.train.run_panel import RunPlotsWidget, RunStatusWidget
from facecomic_gui.train.session import CANCELLING, IDLE, TrainingSession
from facecomic_gui.train.settings_panel import TrainSettingsWidget
from trainer.common.configs import GridSpec
from trainer.training.progress import format_duration


class TrainTabWidget(QWidget):
    # The session's announcements as Qt signals, for the window and for qtbot.
    scan_finished = Signal(object)  # DatasetScan
    scan_failed = Signal(str)
    run_finished = Signal(object)  # TrainingOutcome
    run_failed = Signal(str)
    run_cancelled = Signal()
    use_model_requested = Signal(object)  # LoadedModel
    state_changed = Signal(str)
    gallery_opened = Signal(object)  # ErrorGalleryWidget
    corrections = None  # the window's CorrectionsSession: images in the gallery can be marked

    def __init__(
        self, session: TrainingSession, thumbnails: ThumbnailCache, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.session = session
        self._thumbnails = thumbnails
        self._galleries = GalleryOpener(self, thumbnails, session.jobs)
        self._build(thumbnails)
        session.state_changed.connect(self._on_state_changed)
        session.dataset_changed.connect(self._on_dataset_changed)
        session.form_changed.connect(self._on_form_changed)
        session.run_started.connect(self._on_run_started)
        session.run_event.connect(self._on_run_event)
        session.grid_changed.connect(self._on_grid_changed)
        session.holdout_changed.connect(self._on_holdout_changed)
        session.scan_finished.connect(self.scan_finished.emit)
        session.scan_failed.connect(self.scan_failed.emit)
        session.run_finished.connect(self._on_run_finished)
        session.run_failed.connect(self._on_run_failed)
        session.run_cancelled.connect(self._on_run_cancelled)
        session.run_opened.connect(self._on_run_opened)
        self._on_form_changed()
        self._on_grid_changed()
        self._update_controls()

    # -- layout --------------------------------------------------------------------------------

    def _build(self, thumbnails: ThumbnailCache) -> None:
        splitter = QSplitter()
        splitter.addWidget(self._build_left(thumbnails))
        splitter.addWidget(self._build_right())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([360, 900])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    def _build_left(self, thumbnails: ThumbnailCache) -> QWidget:
        """The dataset, the settings and the start and cancel buttons, scrolling as one column."""
        left = QWidget()
        layout = QVBoxLayout(left)
        layout.addWidget(self._build_dataset_box(thumbnails))
        settings_box = QGroupBox("Settings")
        settings_layout = QVBoxLayout(settings_box)
        self.settings = TrainSettingsWidget()
        self.settings.edited.connect(self._on_setting_edited)
        self.settings.paper_recipe_requested.connect(self._on_paper_recipe_clicked)
        settings_layout.addWidget(self.settings)
        layout.addWidget(settings_box)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMinimumWidth(340)
        return scroll

    def _build_dataset_box(self, thumbnails: ThumbnailCache) -> QGroupBox:
        self.dataset_panel = DatasetPanelWidget(thumbnails)
        panel = self.dataset_panel
        self.dataset_label, self.choose_button = panel.dataset_label, panel.choose_button
        self.dataset_error, self.summary = panel.dataset_error, panel.summary
        self.choose_button.clicked.connect(self._on_choose_clicked)
        return panel

    def _build_right(self) -> QWidget:
        """The run: status, live plots, the validation grid and the holdout, and what to do next."""
        self.status = RunStatusWidget(lambda: self.session.progress if self.session.busy else None)
        self.phase_label, self.eta_label, self.progress = (
            self.status.phase_label, self.status.eta_label, self.status.progress,
        )  # fmt: skip
        self.plots = RunPlotsWidget()
        self.loss_plot, self.accuracy_plot = self.plots.loss_plot, self.plots.accuracy_plot
        self.run_error = error_banner()
        right = QWidget()
        layout = QVBoxLayout(right)
        layout.addWidget(self.status)
        layout.addWidget(self.run_error)
        layout.addWidget(self.plots, 1)
        self.results = RunResultsWidget()
        self.grid_table, self.grid_hint, self.holdout = (
            self.results.grid_table,
            self.results.grid_hint,
            self.results.holdout,
        )
        self.holdout.cell_clicked.connect(self._on_confusion_cell_clicked)
        layout.addWidget(self.results)
        layout.addLayout(self._build_actions())
        return right

    def _build_actions(self) -> QHBoxLayout:
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.setFixedHeight(2 * self.result_label.fontMetrics().lineSpacing() + 4)
        self.save_button = QPushButton("Save model…")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.use_button = QPushButton("Use for predictions")
        self.use_button.clicked.connect(self._on_use_clicked)
        for button in (self.save_button, self.use_button):
            keep_space_when_hidden(button)
        actions = QHBoxLayout()
        actions.addWidget(self.result_label, 1)
        actions.addWidget(self.save_button)
        actions.addWidget(self.use_button)
        return actions

    # -- intents -------------------------------------------------------------------------------------

    def set_form(self, form: TrainForm) -> None:
        self.session.set_form(form)

    def form(self) -> TrainForm | None:
        return self.session.form

    def set_dataset(self, path: str) -> None:
        """Scan ``path`` in the background; ``scan_finished`` or ``scan_failed`` follows."""
        self.session.set_dataset(path)

    def start_training(self) -> None:
        self.session.start()

    def cancel_training(self) -> None:
        self.session.cancel()

    def choose_dataset(self) -> None:
        """Ask for a folder with the system dialog, then scan it."""
        start = self.session.dataset_path or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Choose a dataset folder", start)
        if path:
            self.set_dataset(path)

    def _on_choose_clicked(self) -> None:
        self.choose_dataset()

    def _on_setting_edited(self, name: str, text: str) -> None:
        self.session.set_form_text(**{name: text})

    def _on_paper_recipe_clicked(self) -> None:
        self.session.use_paper_recipe()

    def _on_start_clicked(self) -> None:
        self.start_training()

    def _on_cancel_clicked(self) -> None:
        self.cancel_training()

    def _on_save_clicked(self) -> None:
        if self.session.model is not None:
            save_model_dialog(self, self.session.model)

    def _on_use_clicked(self) -> None:
        if self.session.model is not None:
            self.use_model_requested.emit(self.session.model)

    def show_run(self, model) -> bool:
        """Show a saved run (a ``LoadedModel`` from the runs folder) as when it finished."""
        return self.session.open_run(model)

    def open_gallery(
        self, true_label: int, predicted_label: int, split: str = "holdout"
    ) -> ErrorGalleryWidget | None:
        """The error gallery of one confusion-matrix cell of the run shown."""
        model = self.session.model
        if model is None or self.session.busy:
            return None
        gallery = self._galleries.open(model, true_label, predicted_label, split, self.corrections)
        self.gallery_opened.emit(gallery)
        return gallery

    @property
    def gallery(self) -> ErrorGalleryWidget | None:
        return self._galleries.gallery

    def _on_confusion_cell_clicked(self, row: int, column: int) -> None:
        self.open_gallery(row, column)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.session.state == IDLE and _dropped_folder(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = _dropped_folder(event.mimeData())
        if folder:
            event.acceptProposedAction()
            self.set_dataset(folder)

    # -- rendering the session ---------------------------------------------------------------------

    def _update_controls(self) -> None:
        session = self.session
        self.start_button.setEnabled(session.can_start)
        self.cancel_button.setEnabled(session.can_cancel)
        self.cancel_button.setText("Cancelling…" if session.state == CANCELLING else "Cancel")
        self.choose_button.setEnabled(not session.busy)
        self.settings.setEnabled(not session.busy)
        finished = session.model is not None and not session.busy
        self.save_button.setVisible(finished)
        self.use_button.setVisible(finished)

    def _on_state_changed(self, state: str) -> None:
        self._update_controls()
        self.state_changed.emit(state)

    def _on_form_changed(self) -> None:
        self.settings.show_form(self.session.form_text, self.session.validation)
        self._update_controls()

    def _on_dataset_changed(self) -> None:
        self.dataset_panel.show_dataset(self.session)
        self._update_controls()

    def _on_run_opened(self, model) -> None:
        self._close_gallery()
        self._on_run_started(model.grid)
        self.plots.show_history(model)
        created = model.created
        self.status.end(f"Reopened run from {created}." if created else self.session.status, 1.0)
        dataset = model.metadata.get("dataset") or "?"
        self.result_label.setText(
            f"Run {model.name} on {dataset} (curves per epoch, from the saved history)."
        )
        self.result_label.setToolTip(f"{model.path}" if model.path else model.name)
        self._update_controls()

    def _close_gallery(self) -> None:
        self._galleries.close()

    def _on_run_started(self, grid: GridSpec) -> None:
        self.plots.start(grid, self.session.head)
        self.run_error.hide()
        self.result_label.clear()
        self.status.start(self.session.status)
        if self.session.busy:
            self._close_gallery()

    def _on_run_event(self, event: object) -> None:
        self.plots.add_event(event, self.session.final_epochs)

    def _on_grid_changed(self) -> None:
        session = self.session
        self.grid_table.show_grid(
            session.grid, session.grid_results, session.best, session.select_by, session.head
        )

    def _on_holdout_changed(self) -> None:
        session = self.session
        if session.holdout is None or not session.class_names:
            self.holdout.clear()
        else:
            self.holdout.show_metrics(session.holdout, session.class_names, session.best, session.refit_all)

    def _show_ending(self, text: str, fraction: float | None) -> None:
        self.plots.flush()
        self.status.end(text, fraction)
        self._update_controls()

    def _on_run_finished(self, outcome) -> None:
        self._show_ending(f"Finished in {format_duration(outcome.result.seconds)}.", 1.0)
        if outcome.saved_to is not None:
            self.result_label.setText(f"Saved automatically as {outcome.saved_to.name} in your runs folder.")
            self.result_label.setToolTip(str(outcome.saved_to))
        else:
            self.result_label.setText(
                f"Could not save automatically ({outcome.save_error}). Use Save model… to keep it."
            )
        self.run_finished.emit(outcome)

    def _on_run_failed(self, message: str) -> None:
        self.run_error.setText(f"Training stopped: {message}")
        self.run_error.show()
        self._show_ending(self.session.status, None)
        self.run_failed.emit(message)

    def _on_run_cancelled(self) -> None:
        self._show_ending(self.session.status, 0.0)
        self.run_cancelled.emit()


def _dropped_folder(mime) -> str | None:
    for url in mime.urls() if mime.hasUrls() else []:
        path = Path(url.toLocalFile())
        if url.isLocalFile() and path.is_dir():
            return str(path)
    return None
