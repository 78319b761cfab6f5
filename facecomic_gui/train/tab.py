"""Train tab: pick a dataset, run the grid search and final training in the background, watch it.
A view of a ``TrainingSession``: it renders the session and forwards intents to it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.dialogs import save_model_dialog
from facecomic_gui.common.thumbnails import ThumbnailCache
from facecomic_gui.common.why_session import WhySession
from facecomic_gui.common.widgets import error_banner, keep_space_when_hidden
from facecomic_gui.train.form import TrainForm
from facecomic_gui.train.gallery import ErrorGalleryWidget
from facecomic_gui.train.gallery_session import GallerySession, GallerySource
from facecomic_gui.train.plots import AccuracyPlotWidget, LossPlotWidget
from facecomic_gui.train.session import CANCELLING, IDLE, TrainingSession
from facecomic_gui.train.widgets import (
    DatasetSummaryWidget,
    GridTableWidget,
    HoldoutWidget,
    TrainSettingsWidget,
)
from trainer.common import events as ev
from trainer.common.configs import GridSpec
from trainer.common.progress import format_duration

STATUS_INTERVAL_MS = 100


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
        self._shown_progress = None
        self.gallery: ErrorGalleryWidget | None = None
        self._gallery_model = None
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
        dataset_box = QGroupBox("Dataset")
        dataset_layout = QVBoxLayout(dataset_box)
        row = QHBoxLayout()
        self.dataset_label = QLabel("No folder chosen")
        self.dataset_label.setWordWrap(True)
        self.dataset_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.choose_button = QPushButton("Choose folder…")
        self.choose_button.clicked.connect(self._on_choose_clicked)
        row.addWidget(self.dataset_label, 1)
        row.addWidget(self.choose_button)
        dataset_layout.addLayout(row)
        self.dataset_error = error_banner()
        dataset_layout.addWidget(self.dataset_error)
        self.summary = DatasetSummaryWidget(thumbnails)
        dataset_layout.addWidget(self.summary)

        settings_box = QGroupBox("Settings")
        settings_layout = QVBoxLayout(settings_box)
        self.settings = TrainSettingsWidget()
        self.settings.edited.connect(self._on_setting_edited)
        self.settings.paper_recipe_requested.connect(self._on_paper_recipe_clicked)
        settings_layout.addWidget(self.settings)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.cancel_button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(dataset_box)
        left_layout.addWidget(settings_box)
        left_layout.addLayout(buttons)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMinimumWidth(340)

        # Fixed geometry: changing texts must not re-lay out (and so repaint) the plots below.
        self.phase_label = QLabel("Ready.")
        self.phase_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.eta_label = QLabel()
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.eta_label.setFixedWidth(170)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_INTERVAL_MS)
        self._status_timer.timeout.connect(self._on_status_timer)
        self._status_timer.start()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(10)
        status_row = QHBoxLayout()
        status_row.addWidget(self.phase_label, 1)
        status_row.addWidget(self.eta_label)

        self.loss_plot = LossPlotWidget()
        self.accuracy_plot = AccuracyPlotWidget()
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 3)
        plots.addWidget(self.accuracy_plot, 2)

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
        self.holdout.cell_clicked.connect(self._on_confusion_cell_clicked)
        holdout_layout.addWidget(self.holdout)
        results = QHBoxLayout()
        results.addWidget(grid_box, 3)
        results.addWidget(holdout_box, 2)

        self.run_error = error_banner()
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

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(status_row)
        right_layout.addWidget(self.progress)
        right_layout.addWidget(self.run_error)
        right_layout.addLayout(plots, 1)
        right_layout.addLayout(results)
        right_layout.addLayout(actions)

        splitter = QSplitter()
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([360, 900])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

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
        if self.gallery is None or self._gallery_model is not model:  # one gallery per run shown
            self._close_gallery()
            self.gallery = ErrorGalleryWidget(
                GallerySession(GallerySource.of_model(model)), self._thumbnails, self,
                model=model, why=WhySession(self.session.jobs, "why-gallery"), corrections=self.corrections,
            )  # fmt: skip
            self._gallery_model = model
        self.gallery.setWindowTitle(f"Error gallery: {model.name}")
        self.gallery.show_cell(true_label, predicted_label, split)
        self.gallery.show()
        self.gallery.raise_()
        self.gallery.table.setFocus()
        self.gallery_opened.emit(self.gallery)
        return self.gallery

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
        session = self.session
        path = session.dataset_path
        self.dataset_label.setText(path or "No folder chosen")
        self.dataset_label.setToolTip(path or "")
        self.dataset_error.setText(session.scan_error or "")
        self.dataset_error.setVisible(session.scan_error is not None)
        if session.scan is None:
            self.summary.clear()
            if session.state == "scanning":
                self.summary.placeholder.setText("Scanning…")
        elif not session.busy:
            self.summary.show_scan(session.scan)
        self.summary.set_skipped(session.skipped)
        self._update_controls()

    def _on_run_opened(self, model) -> None:
        """Redraw the run's curves from its saved history: per-epoch train loss and validation
        accuracy per learning rate, and the final run's per-epoch loss."""
        self._close_gallery()
        self._on_run_started(model.grid)
        curves: dict[float, list] = {}
        for point in model.history:
            curves.setdefault(point.lr, []).append(point)
        for lr, points in curves.items():
            self.loss_plot.set_series(f"lr {lr:g}", [p.epoch for p in points], [p.train_loss for p in points])
            for p in points:
                if p.val_accuracy is not None:
                    self.accuracy_plot.add_point(f"lr {lr:g}", p.epoch, p.val_accuracy)
        final = model.final_train_losses
        if final and model.best is not None:
            self.loss_plot.set_series(
                f"final: lr {model.best.lr:g}, {len(final)} ep", list(range(1, len(final) + 1)), list(final),
                final=True,
            )  # fmt: skip
        self.loss_plot.flush()
        self.accuracy_plot.flush()
        created = str(model.metadata.get("created", ""))[:19].replace("T", " ")
        self.phase_label.setText(f"Reopened run from {created}." if created else self.session.status)
        self.progress.setValue(1000)
        dataset = model.metadata.get("dataset") or "?"
        where = f"{model.path}" if model.path else model.name
        self.result_label.setText(
            f"Run {model.name} on {dataset} (curves per epoch, from the saved history)."
        )
        self.result_label.setToolTip(where)
        self._update_controls()

    def _close_gallery(self) -> None:
        if self.gallery is not None:
            self.gallery.close()
            self.gallery.deleteLater()
            self.gallery = self._gallery_model = None

    def _on_run_started(self, grid: GridSpec) -> None:
        self.loss_plot.clear()
        self.accuracy_plot.clear()
        self.loss_plot.set_epoch_range(max(grid.epochs))
        self.accuracy_plot.set_epoch_range(max(grid.epochs))
        self.run_error.hide()
        self.result_label.clear()
        self.phase_label.setText(self.session.status)
        self.eta_label.clear()
        self.progress.setValue(0)
        self._shown_progress = None
        if self.session.busy:
            self._close_gallery()

    def _on_run_event(self, event: object) -> None:
        match event:
            case ev.BatchFinished(phase="final"):
                name = f"final: lr {event.lr:g}, {self.session.final_epochs} ep"
                self.loss_plot.add_point(
                    name, event.epoch - 1 + event.batch / event.batches_per_epoch, event.loss, final=True
                )
            case ev.BatchFinished():
                self.loss_plot.add_point(
                    f"lr {event.lr:g}", event.epoch - 1 + event.batch / event.batches_per_epoch, event.loss
                )
            case ev.EpochFinished(phase="grid"):
                self.accuracy_plot.add_point(f"lr {event.lr:g}", event.epoch, event.val_accuracy)

    def _on_grid_changed(self) -> None:
        session = self.session
        self.grid_table.show_grid(session.grid, session.grid_results, session.best, session.select_by)

    def _on_holdout_changed(self) -> None:
        session = self.session
        if session.holdout is None or not session.class_names:
            self.holdout.clear()
        else:
            self.holdout.show_metrics(session.holdout, session.class_names, session.best, session.refit_all)

    def _on_status_timer(self) -> None:
        progress = self.session.progress  # shown at most 10 times a second, not per batch
        if progress is None or progress is self._shown_progress or not self.session.busy:
            return
        self._shown_progress = progress
        self.phase_label.setText(progress.text)
        self.progress.setValue(int(progress.fraction * 1000))
        eta = progress.eta_seconds
        self.eta_label.setText("" if eta is None else f"about {format_duration(eta)} left")

    def _show_ending(self, text: str, progress: int | None) -> None:
        self.loss_plot.flush()
        self.accuracy_plot.flush()
        self.phase_label.setText(text)
        self.eta_label.clear()
        if progress is not None:
            self.progress.setValue(progress)
        self._update_controls()

    def _on_run_finished(self, outcome) -> None:
        self._show_ending(f"Finished in {format_duration(outcome.result.seconds)}.", 1000)
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
        self._show_ending(self.session.status, 0)
        self.run_cancelled.emit()


def _dropped_folder(mime) -> str | None:
    for url in mime.urls() if mime.hasUrls() else []:
        path = Path(url.toLocalFile())
        if url.isLocalFile() and path.is_dir():
            return str(path)
    return None
