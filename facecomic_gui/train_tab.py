"""Train tab: pick a dataset, run the grid search and final training in the background, watch it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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

from facecomic_gui import jobs
from facecomic_gui.dialogs import save_model_dialog
from facecomic_gui.plots import AccuracyPlotWidget, LossPlotWidget
from facecomic_gui.settings import TrainForm
from facecomic_gui.thumbnails import ThumbnailCache
from facecomic_gui.train_widgets import (
    DatasetSummaryWidget,
    GridTableWidget,
    HoldoutWidget,
    TrainSettingsWidget,
    error_banner,
    keep_space_when_hidden,
)
from facecomic_gui.worker import GeneratorWorker
from trainer.common import events as ev
from trainer.common.errors import FaceComicError
from trainer.common.progress import ProgressTracker, format_duration

if TYPE_CHECKING:
    from trainer.data.dataset import DatasetScan

IDLE, SCANNING, RUNNING, CANCELLING = "idle", "scanning", "running", "cancelling"
STATUS_INTERVAL_MS = 100


def describe_error(err: BaseException) -> str:
    """One sentence for the user; a FaceComicError already is one."""
    if isinstance(err, FaceComicError):
        return str(err)
    if isinstance(err, MemoryError):
        return "Out of memory: the data set is too large for this machine's RAM."
    if isinstance(err, OSError):
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        return f"{err.strerror or err}{where}."
    return f"Unexpected error: {type(err).__name__}: {err}".rstrip(": ") + "."


class TrainTabWidget(QWidget):
    scan_finished = Signal(object)  # DatasetScan
    scan_failed = Signal(str)
    run_finished = Signal(object)  # jobs.TrainingOutcome
    run_failed = Signal(str)
    run_cancelled = Signal()
    use_model_requested = Signal(object)  # LoadedModel
    state_changed = Signal(str)

    def __init__(self, thumbnails: ThumbnailCache, runs_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._runs_dir = runs_dir
        self._state = IDLE
        self._scan: DatasetScan | None = None
        self._dataset_path: str | None = None
        self._scan_worker: GeneratorWorker | None = None
        self._train_worker: GeneratorWorker | None = None
        self._tracker = ProgressTracker()
        self._final_epochs = 0
        self._announce: Callable[[], None] | None = None
        self.outcome: jobs.TrainingOutcome | None = None
        self._build(thumbnails)
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
        self.settings.changed.connect(self._on_settings_changed)
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
        self._latest_progress = None
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

    # -- state -----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def _set_state(self, state: str) -> None:
        self._state = state
        self._update_controls()
        self.state_changed.emit(state)

    def _on_settings_changed(self) -> None:
        self._update_controls()

    def _update_controls(self) -> None:
        busy = self._state in (RUNNING, CANCELLING)
        ready = self._scan is not None and self.settings.form() is not None
        self.start_button.setEnabled(self._state == IDLE and ready)
        self.cancel_button.setEnabled(self._state == RUNNING)
        self.cancel_button.setText("Cancelling…" if self._state == CANCELLING else "Cancel")
        self.choose_button.setEnabled(not busy)
        self.settings.setEnabled(not busy)
        finished = self.outcome is not None and not busy
        self.save_button.setVisible(finished)
        self.use_button.setVisible(finished)

    def set_form(self, form: TrainForm) -> None:
        self.settings.set_form(form)
        if self.outcome is None and self._state != RUNNING:
            self.grid_table.set_grid(form.grid.learning_rates, form.grid.epochs)  # a preview of the run

    def form(self) -> TrainForm | None:
        return self.settings.form()

    @property
    def dataset_path(self) -> str | None:
        return self._dataset_path

    # -- dataset ---------------------------------------------------------------------------------

    def _on_choose_clicked(self) -> None:
        self.choose_dataset()

    def choose_dataset(self) -> None:
        """Ask for a folder with the system dialog, then scan it."""
        start = self._dataset_path or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Choose a dataset folder", start)
        if path:
            self.set_dataset(path)

    def set_dataset(self, path: str) -> None:
        """Scan ``path`` in the background; ``scan_finished`` or ``scan_failed`` follows."""
        if self._state in (RUNNING, CANCELLING):
            return
        if self._scan_worker is not None:
            self._scan_worker.cancel()  # not joined: a slow disk must not freeze the window
        self._dataset_path = path
        self._scan = None
        self.dataset_label.setText(path)
        self.dataset_label.setToolTip(path)
        self.dataset_error.hide()
        self.summary.clear()
        self.summary.placeholder.setText("Scanning…")
        self._set_state(SCANNING)
        worker = GeneratorWorker(jobs.scan_job, path)
        # A superseded scan may still report; each slot ignores all but the current worker.
        worker.returned.connect(lambda scan, w=worker: self._on_scan_returned(w, scan))
        worker.errored.connect(lambda err, w=worker: self._on_scan_errored(w, err))
        worker.finished.connect(lambda w=worker: self._on_scan_finished(w))
        self._scan_worker = worker
        worker.start()

    def _on_scan_returned(self, worker: GeneratorWorker, scan: DatasetScan) -> None:
        if worker is not self._scan_worker:
            return
        self._scan = scan
        self.summary.show_scan(scan)
        self._set_state(IDLE)  # before telling anyone, so a listener may start training at once
        self.scan_finished.emit(scan)

    def _on_scan_errored(self, worker: GeneratorWorker, err: BaseException) -> None:
        if worker is not self._scan_worker:
            return
        message = describe_error(err)
        self.summary.clear()
        self.dataset_error.setText(message)
        self.dataset_error.show()
        self.scan_failed.emit(message)

    def _on_scan_finished(self, worker: GeneratorWorker) -> None:
        if worker is self._scan_worker and self._state == SCANNING:
            self._set_state(IDLE)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._state == IDLE and _dropped_folder(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = _dropped_folder(event.mimeData())
        if folder:
            event.acceptProposedAction()
            self.set_dataset(folder)

    # -- training --------------------------------------------------------------------------------

    def _on_start_clicked(self) -> None:
        self.start_training()

    def _on_cancel_clicked(self) -> None:
        self.cancel_training()

    def start_training(self) -> None:
        form = self.settings.form()
        if self._state != IDLE or self._scan is None or form is None:
            return
        grid = form.grid
        self.outcome = None
        self._tracker = ProgressTracker()
        self.loss_plot.clear()
        self.accuracy_plot.clear()
        self.loss_plot.set_epoch_range(max(grid.epochs))
        self.accuracy_plot.set_epoch_range(max(grid.epochs))
        self.grid_table.set_grid(grid.learning_rates, grid.epochs)
        self.holdout.clear()
        self.run_error.hide()
        self.result_label.clear()
        self.phase_label.setText("Starting…")
        self.eta_label.clear()
        self.progress.setValue(0)
        worker = GeneratorWorker(jobs.training_job, self._dataset_path, form.config, grid, self._runs_dir)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_run_returned)
        worker.errored.connect(self._on_run_errored)
        worker.aborted.connect(self._on_run_aborted)
        worker.finished.connect(self._on_run_finished)
        self._train_worker = worker
        self._set_state(RUNNING)
        worker.start()

    def cancel_training(self) -> None:
        if self._state == RUNNING and self._train_worker is not None:
            self._train_worker.cancel()
            self.phase_label.setText("Cancelling…")
            self._set_state(CANCELLING)

    def _on_event(self, event: object) -> None:
        progress = self._tracker.update(event)
        match event:
            case ev.BatchFinished(phase="final"):
                name = f"final: lr {event.lr:g}, {self._final_epochs} ep"
                self.loss_plot.add_point(
                    name, event.epoch - 1 + event.batch / event.batches_per_epoch, event.loss, final=True
                )
            case ev.BatchFinished():
                self.loss_plot.add_point(
                    f"lr {event.lr:g}", event.epoch - 1 + event.batch / event.batches_per_epoch, event.loss
                )
            case ev.EpochFinished(phase="grid"):
                self.accuracy_plot.add_point(f"lr {event.lr:g}", event.epoch, event.val_accuracy)
            case ev.ConfigFinished():
                self.grid_table.set_score(event.lr, event.epochs, event.val_accuracy, event.val_loss)
            case ev.FinalTrainingStarted():
                self._final_epochs = event.epochs
            case ev.DecodeFinished():
                if event.unreadable:
                    self.summary.add_skipped(event.unreadable)
            case ev.HoldoutEvaluated():
                self.holdout.show_metrics(event.metrics, self._scan.class_names, self.grid_table.best())
        if isinstance(event, (ev.DecodeProgressed, ev.BatchFinished, ev.DecodeFinished, ev.HoldoutEvaluated)):
            self._latest_progress = progress  # shown by the status timer, at most 10 times a second

    def _on_status_timer(self) -> None:
        progress, self._latest_progress = self._latest_progress, None
        if progress is None:
            return
        self.phase_label.setText(progress.text)
        self.progress.setValue(int(progress.fraction * 1000))
        eta = progress.eta_seconds
        self.eta_label.setText("" if eta is None else f"about {format_duration(eta)} left")

    def _on_run_returned(self, outcome: jobs.TrainingOutcome) -> None:
        self.outcome = outcome
        self._latest_progress = None
        self.phase_label.setText(f"Finished in {format_duration(outcome.result.seconds)}.")
        self.eta_label.clear()
        self.progress.setValue(1000)
        if outcome.saved_to is not None:
            self.result_label.setText(f"Saved automatically as {outcome.saved_to.name} in your runs folder.")
            self.result_label.setToolTip(str(outcome.saved_to))
        else:
            self.result_label.setText(
                f"Could not save automatically ({outcome.save_error}). Use Save model… to keep it."
            )
        self._announce = lambda: self.run_finished.emit(outcome)

    def _on_run_errored(self, err: BaseException) -> None:
        message = describe_error(err)
        self.run_error.setText(f"Training stopped: {message}")
        self.run_error.show()
        self._latest_progress = None
        self.phase_label.setText("Training failed.")
        self.eta_label.clear()
        self._announce = lambda: self.run_failed.emit(message)

    def _on_run_aborted(self) -> None:
        self._latest_progress = None
        self.phase_label.setText("Cancelled. Nothing was saved.")
        self.eta_label.clear()
        self.progress.setValue(0)
        self._announce = self.run_cancelled.emit

    def _on_run_finished(self) -> None:
        self.loss_plot.flush()
        self.accuracy_plot.flush()
        self._set_state(IDLE)
        # The outcome is announced only now, so listeners find the tab idle and consistent.
        announce, self._announce = self._announce, None
        if announce is not None:
            announce()

    # -- results ---------------------------------------------------------------------------------

    def _on_save_clicked(self) -> None:
        if self.outcome is None:
            return
        save_model_dialog(self, self.outcome.model)

    def _on_use_clicked(self) -> None:
        if self.outcome is not None:
            self.use_model_requested.emit(self.outcome.model)


def _dropped_folder(mime) -> str | None:
    for url in mime.urls() if mime.hasUrls() else []:
        path = Path(url.toLocalFile())
        if url.isLocalFile() and path.is_dir():
            return str(path)
    return None
