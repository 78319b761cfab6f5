"""The Train tab's run parts: the status line with its progress bar, and the live plots of a run
(or of a saved run's history). Views only: the tab feeds them what the session says."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from facecomic_gui.train.plots import LINEAR_SERIES, AccuracyPlotWidget, LossPlotWidget, l2_position
from trainer.common.configs import GridSpec
from trainer.model.results import curves_by_run
from trainer.training import events as ev
from trainer.training.progress import Progress, format_duration

STATUS_INTERVAL_MS = 100
PROGRESS_STEPS = 1000


class RunStatusWidget(QWidget):
    """The phase, an ETA and a progress bar; redrawn from the latest progress on a timer (10 times
    a second), never per batch. Fixed geometry, so changing texts never re-lays out the plots."""

    def __init__(self, latest_progress, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._latest = latest_progress  # () -> Progress | None, only while a run is busy
        self._shown: Progress | None = None
        self.phase_label = QLabel("Ready.")
        self.phase_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.eta_label = QLabel()
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.eta_label.setFixedWidth(170)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(10)
        row = QHBoxLayout()
        row.addWidget(self.phase_label, 1)
        row.addWidget(self.eta_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer)
        self._timer.start()

    def start(self, text: str) -> None:
        self.phase_label.setText(text)
        self.eta_label.clear()
        self.progress.setValue(0)
        self._shown = None

    def end(self, text: str, fraction: float | None) -> None:
        """The run is over: ``text``, and the bar at ``fraction`` (None: leave it)."""
        self.phase_label.setText(text)
        self.eta_label.clear()
        if fraction is not None:
            self.progress.setValue(int(fraction * PROGRESS_STEPS))

    def _on_timer(self) -> None:
        progress = self._latest()
        if progress is None or progress is self._shown:
            return
        self._shown = progress
        self.phase_label.setText(progress.text)
        self.progress.setValue(int(progress.fraction * PROGRESS_STEPS))
        eta = progress.eta_seconds
        self.eta_label.setText("" if eta is None else f"about {format_duration(eta)} left")


class RunPlotsWidget(QWidget):
    """Training loss per batch (a series per learning rate, the final run's apart) and validation
    accuracy per epoch, live; for the linear head, its objective per iteration (a series per L2
    weight) and validation accuracy per L2 weight; or a saved run's curves."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss_plot = LossPlotWidget()
        self.accuracy_plot = AccuracyPlotWidget()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot, 3)
        layout.addWidget(self.accuracy_plot, 2)

    def start(self, grid: GridSpec, head: str = "mlp") -> None:
        for plot in (self.loss_plot, self.accuracy_plot):
            plot.clear()
        if head == "linear":
            self.loss_plot.set_axes("Training objective per iteration", "iteration")
            self.accuracy_plot.set_l2_axis(grid.l2)
        else:
            self.loss_plot.set_axes("Training loss per batch", "epoch")
            self.accuracy_plot.set_epoch_axis()
            for plot in (self.loss_plot, self.accuracy_plot):
                plot.set_epoch_range(max(grid.epochs))

    def add_event(self, event: object, final_epochs: int) -> None:
        match event:
            case ev.BatchFinished(phase="final" | "refit"):
                name = f"{event.phase}: lr {event.lr:g}, {final_epochs} ep"
                position = event.epoch - 1 + event.batch / event.batches_per_epoch
                self.loss_plot.add_point(name, position, event.loss, final=True)
            case ev.BatchFinished():
                position = event.epoch - 1 + event.batch / event.batches_per_epoch
                self.loss_plot.add_point(f"lr {event.lr:g}", position, event.loss)
            case ev.EpochFinished(phase="grid"):
                self.accuracy_plot.add_point(f"lr {event.lr:g}", event.epoch, event.val_accuracy)
            case ev.LinearFitFinished(phase="grid"):
                self._linear_curve(f"L2 {event.l2:g}", event.losses)
            case ev.LinearFitFinished(phase="final" | "refit"):
                self._linear_curve(f"{event.phase}: L2 {event.l2:g}", event.losses, final=True)
            case ev.ConfigFinished(l2=l2) if l2 is not None:
                self.accuracy_plot.add_point(LINEAR_SERIES, l2_position(l2), event.val_accuracy)

    def _linear_curve(self, name: str, losses, *, final: bool = False) -> None:
        self.loss_plot.set_series(name, list(range(1, len(losses) + 1)), list(losses), final=final)

    def show_history(self, model) -> None:
        """A saved run's curves: per-epoch train loss and validation accuracy per learning rate
        (for the linear head: per-iteration objective per L2 weight, validation accuracy per L2
        weight), and the final run's."""
        linear = model.head_kind == "linear"
        self.start(model.grid, model.head_kind)
        for curve in curves_by_run(model.history):
            self.loss_plot.set_series(curve.label, list(curve.epochs), list(curve.train_loss))
            if not linear:
                for epoch, accuracy in zip(curve.val_epochs, curve.val_accuracy, strict=True):
                    self.accuracy_plot.add_point(curve.label, epoch, accuracy)
        if linear:
            for result in model.grid_results:
                self.accuracy_plot.add_point(LINEAR_SERIES, l2_position(result.l2), result.val_accuracy)
        final = model.final_train_losses
        if final and model.best is not None:
            last = "refit" if model.refit_all else "final"
            name = (
                f"{last}: {model.best.label}" if linear else f"final: lr {model.best.lr:g}, {len(final)} ep"
            )
            self.loss_plot.set_series(name, list(range(1, len(final) + 1)), list(final), final=True)
        self.flush()

    def flush(self) -> None:
        self.loss_plot.flush()
        self.accuracy_plot.flush()
