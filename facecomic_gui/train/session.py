"""The Train tab's state, in plain Python (no Qt): the dataset and its scan, the settings form,
the run's state machine (idle, scanning, running, cancelling), the grid results with the best
chosen by the trainer's ``pick_best``, progress, holdout and outcome. The tab renders it and sends
user intents back; jobs run through a ``JobRunner`` (Qt workers in the app, inline in tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from facecomic_gui.common.observable import Emitter, JobRunner
from facecomic_gui.train import jobs
from facecomic_gui.train.form import FormText, TrainForm, Validation, paper_recipe, replace_text, validate
from trainer.common.configs import GridSpec
from trainer.common.errors import describe_error
from trainer.features.registry import resolved_config
from trainer.model.results import GridResult, pick_best
from trainer.training import events as ev
from trainer.training.progress import Progress, ProgressTracker

if TYPE_CHECKING:
    from trainer.data.dataset import DatasetScan, SkippedFile
    from trainer.model.model_file import LoadedModel
    from trainer.model.results import HoldoutMetrics

IDLE, SCANNING, RUNNING, CANCELLING = "idle", "scanning", "running", "cancelling"


class TrainingSession:
    def __init__(self, jobs_runner: JobRunner, runs_dir: Path, form: TrainForm | None = None) -> None:
        self.jobs = jobs_runner
        self.runs_dir = runs_dir
        self.state = IDLE
        self.dataset_path: str | None = None
        self.scan: DatasetScan | None = None
        self.scan_error: str | None = None
        self.skipped: list[SkippedFile] = []
        self.form_text = FormText.from_form(form or TrainForm())
        self.validation: Validation = validate(self.form_text)
        self.grid: GridSpec = self.validation.form.grid if self.validation.form else GridSpec()
        # The head of the grid shown: the form's while previewing, the run's once it runs.
        self.head: str = self.validation.head
        self._reset_run()
        self._train_after_scan = False
        # Observer events (callbacks run on the caller's thread, the GUI thread in the app).
        self.state_changed = Emitter()  # (state)
        self.dataset_changed = Emitter()  # (): path, scan, scan error or skipped files changed
        self.scan_finished = Emitter()  # (DatasetScan)
        self.scan_failed = Emitter()  # (message)
        self.form_changed = Emitter()  # (): text or validation changed
        self.run_started = Emitter()  # (GridSpec)
        self.run_event = Emitter()  # (trainer event), for live plots
        self.grid_changed = Emitter()  # (): grid shape, results or best changed
        self.holdout_changed = Emitter()  # ()
        self.run_finished = Emitter()  # (TrainingOutcome), announced once idle
        self.run_failed = Emitter()  # (message), announced once idle
        self.run_cancelled = Emitter()  # (), announced once idle
        self.run_opened = Emitter()  # (LoadedModel): a saved run is shown as when it finished

    def _reset_run(self) -> None:
        self.grid_results: list[GridResult] = []
        self.best: GridResult | None = None
        self.select_by = "accuracy"  # how the run shown picks its best setting (its config's rule)
        self._run_refits = False  # whether the run in progress refits on every image
        self.holdout: HoldoutMetrics | None = None
        self.final_epochs = 0
        self.batches_seen = 0
        self.progress: Progress | None = None
        self.outcome: jobs.TrainingOutcome | None = None
        # The run shown (finished here, or reopened from the runs folder), and its classes.
        self.model: LoadedModel | None = None
        self.class_names: tuple[str, ...] = ()
        self.run_error: str | None = None
        self.status = "Ready."
        self._tracker = ProgressTracker()
        self._tracker_shown: Progress = self._tracker.current
        self._ending: tuple[Emitter, tuple] | None = None

    # -- state -----------------------------------------------------------------------------------

    @property
    def refit_all(self) -> bool:
        """Whether the run shown saved (or, while it runs, will save) a model refitted on every
        image after its holdout."""
        return self.model.refit_all if self.model is not None else self._run_refits

    @property
    def busy(self) -> bool:
        return self.state in (RUNNING, CANCELLING)

    @property
    def form(self) -> TrainForm | None:
        return self.validation.form

    @property
    def can_start(self) -> bool:
        return self.state == IDLE and self.scan is not None and self.form is not None

    @property
    def can_cancel(self) -> bool:
        return self.state == RUNNING

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    # -- form ------------------------------------------------------------------------------------

    def set_form_text(self, **changes: str) -> None:
        """A field was edited; ignored while a run uses the form."""
        if self.busy:
            return
        self._apply_text(replace_text(self.form_text, **changes))

    def use_paper_recipe(self) -> None:
        """Features, split and grid as in the paper; ignored while a run uses the form."""
        if not self.busy:
            self._apply_text(paper_recipe(self.form_text))

    def set_form(self, form: TrainForm) -> None:
        if not self.busy:
            self._apply_text(FormText.from_form(form))

    def _apply_text(self, text: FormText) -> None:
        if text == self.form_text:
            return
        self.form_text = text
        self.validation = validate(text)
        self.form_changed.emit()
        form = self.validation.form
        preview = (form.grid, self.validation.head) if form is not None else None
        if preview is not None and self.outcome is None and preview != (self.grid, self.head):
            self.grid, self.head = preview  # a preview of the run's table
            self.grid_changed.emit()

    # -- dataset ---------------------------------------------------------------------------------

    def set_dataset(self, path: str) -> None:
        """Scan ``path`` in the background, superseding a scan in progress; ignored during a run."""
        if self.busy:
            return
        self.dataset_path = path
        self.scan = None
        self.scan_error = None
        self.skipped = []
        self._set_state(SCANNING)
        self.dataset_changed.emit()
        self.jobs.start(
            "scan", jobs.scan_job, path,
            on_returned=self._on_scan_returned, on_errored=self._on_scan_errored,
            on_finished=self._on_scan_finished,
        )  # fmt: skip

    def train_after_next_scan(self) -> None:
        """Start training when the next scan succeeds; a failed scan disarms it, so a folder
        picked later does not start training by itself."""
        self._train_after_scan = True

    def _on_scan_returned(self, scan: DatasetScan) -> None:
        self.scan = scan
        self.skipped = list(scan.skipped)
        self._set_state(IDLE)  # before telling anyone, so a listener may start training at once
        self.dataset_changed.emit()
        self.scan_finished.emit(scan)
        if self._train_after_scan:
            self._train_after_scan = False
            self.start()

    def _on_scan_errored(self, err: BaseException) -> None:
        self.scan_error = describe_error(err)
        self._train_after_scan = False
        self._set_state(IDLE)
        self.dataset_changed.emit()
        self.scan_failed.emit(self.scan_error)

    def _on_scan_finished(self) -> None:
        if self.state == SCANNING:  # cancelled scans end here
            self._set_state(IDLE)

    # -- run -------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Start the grid search and final training; False when it cannot start now."""
        form = self.form
        if not self.can_start or form is None:
            return False
        self._reset_run()
        self.grid = form.grid
        resolved = resolved_config(form.config)
        self.select_by, self.head, self._run_refits = (
            resolved.select_by,
            resolved.head,
            bool(resolved.refit_all),
        )
        self.status = "Starting…"
        self._set_state(RUNNING)
        self.run_started.emit(form.grid)
        self.grid_changed.emit()
        self.holdout_changed.emit()
        self.jobs.start(
            "train", jobs.training_job, self.dataset_path, form.config, form.grid, self.runs_dir,
            on_yielded=self._on_run_event, on_returned=self._on_run_returned,
            on_errored=self._on_run_errored, on_aborted=self._on_run_aborted,
            on_finished=self._on_run_finished,
        )  # fmt: skip
        return True

    def cancel(self) -> None:
        if self.state == RUNNING:
            self.jobs.cancel("train")
            self.status = "Cancelling…"
            self._set_state(CANCELLING)

    def open_run(self, model: LoadedModel) -> bool:
        """Show a saved run as it was when it finished: grid, best, holdout, curves (from its
        history) and gallery. False while a run is in progress."""
        if self.busy:
            return False
        self._reset_run()
        self.model = model
        self.class_names = model.class_names
        self.grid = model.grid
        self.head = model.head_kind
        self.grid_results = list(model.grid_results)
        # Files name their head since the linear one came; before, every head was an MLP.
        saved = dataclasses.replace(model.train_config, head=model.head_kind)
        self.select_by = resolved_config(saved).select_by
        self.best = model.best
        self.holdout = model.holdout
        self.final_epochs = len(model.final_train_losses)
        self.status = f"Reopened {model.name}."
        self.run_opened.emit(model)
        self.grid_changed.emit()
        self.holdout_changed.emit()
        self.state_changed.emit(self.state)
        return True

    def shutdown(self) -> None:
        """Stop every job without waiting for it (the app joins its workers at exit)."""
        self.jobs.drop("scan")
        self.jobs.cancel("train")

    def _on_run_event(self, event: object) -> None:
        progress = self._tracker.update(event)
        match event:
            case ev.DatasetScanned():
                self.class_names = tuple(event.class_names)
            case ev.BatchFinished():
                self.batches_seen += 1
            case ev.ConfigFinished():
                self.grid_results.append(
                    GridResult(
                        event.lr, event.epochs, event.val_accuracy, event.val_loss,
                        head_accuracies=event.head_accuracies, l2=event.l2,
                    )
                )  # fmt: skip
                self.best = pick_best(self.grid_results, self.select_by)
            case ev.FinalTrainingStarted():
                self.final_epochs = event.epochs or 0
            case ev.FeaturesFinished() if event.unreadable:
                known = {s.path for s in self.skipped}
                self.skipped += [s for s in event.unreadable if s.path not in known]
                self.dataset_changed.emit()
            case ev.HoldoutEvaluated():
                self.holdout = event.metrics
        if progress is not self._tracker_shown:  # a new phase text, fraction or ETA
            self._tracker_shown = self.progress = progress
        self.run_event.emit(event)
        if isinstance(event, ev.ConfigFinished):
            self.grid_changed.emit()
        elif isinstance(event, ev.HoldoutEvaluated):
            self.holdout_changed.emit()

    def _on_run_returned(self, outcome: jobs.TrainingOutcome) -> None:
        self.outcome = outcome
        self.model = outcome.model
        self.status = "Finished."
        self._ending = (self.run_finished, (outcome,))

    def _on_run_errored(self, err: BaseException) -> None:
        self.run_error = describe_error(err)
        self.status = "Training failed."
        self._ending = (self.run_failed, (self.run_error,))

    def _on_run_aborted(self) -> None:
        self.status = "Cancelled. Nothing was saved."
        self._ending = (self.run_cancelled, ())

    def _on_run_finished(self) -> None:
        self._set_state(IDLE)
        # The outcome is announced only now, so listeners find the session idle and consistent.
        ending, self._ending = self._ending, None
        if ending is not None:
            ending[0].emit(*ending[1])
