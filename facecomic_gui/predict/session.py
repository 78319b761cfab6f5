"""The Predict tab's state, in plain Python (no Qt): one row per image with its prediction, the
model in use (or loading, or failed), inputs queued behind the running job, the label filter and
the counts. The tab and its table render it; jobs run through a ``JobRunner``, latest only, so a
model switch or Clear never waits for a running batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from facecomic_gui.common.observable import Emitter, JobRunner
from facecomic_gui.predict import jobs
from facecomic_gui.predict.review import ERROR_KEY, NOT_A_FACE_KEY, UNCERTAIN_FIRST_KEY, UNSURE_KEY
from trainer.common.errors import describe_error
from trainer.model.face_likeness import NOT_A_FACE

if TYPE_CHECKING:
    from trainer.model.model_file import LoadedModel
    from trainer.prediction.predictor import Prediction

Source = Path | Image.Image
PENDING_KEY = "__pending__"  # the rows still being predicted


@dataclass
class PredictionRow:
    key: str  # thumbnail cache key; a path, or "pasted:N" for clipboard images
    name: str
    source: Source
    prediction: Prediction | None = None

    @property
    def filter_key(self) -> str:
        """The class name, ERROR_KEY when unreadable, PENDING_KEY while predicting."""
        p = self.prediction
        return PENDING_KEY if p is None else (p.label if p.ok else ERROR_KEY)

    @property
    def path(self) -> Path | None:
        """The image's file, absolute; None for a pasted in-memory image."""
        return self.source.absolute() if isinstance(self.source, Path) else None

    @property
    def unsure(self) -> bool:
        """Predicted, but flagged (not a face, unlike the training images, or low confidence)."""
        return self.prediction is not None and self.prediction.ok and self.prediction.unsure

    @property
    def not_a_face(self) -> bool:
        return self.unsure and self.prediction.flag == NOT_A_FACE


def source_name(source: Source, counter: int) -> tuple[str, str]:
    if isinstance(source, Image.Image):
        return f"pasted:{counter}", f"Pasted image {counter}"
    return str(source), source.name


@dataclass
class _Job:
    inputs: list[Source]
    first_row: int | None  # None: new rows; else re-predict existing rows from here


class PredictionSession:
    def __init__(self, jobs_runner: JobRunner) -> None:
        self.jobs = jobs_runner
        self.rows: list[PredictionRow] = []
        self.model: LoadedModel | None = None
        self.model_loading = False
        self.model_error: str | None = None
        # A class name, ERROR_KEY, UNSURE_KEY, NOT_A_FACE_KEY, UNCERTAIN_FIRST_KEY, or None for all.
        self.label_filter: str | None = None
        self._waiting: list[Source] = []  # dropped while the model was still loading
        self._queue: list[_Job] = []
        self._job: _Job | None = None
        self._pasted = 0
        self.rows_about_to_be_added = Emitter()  # (first, count)
        self.rows_added = Emitter()  # (first, count)
        self.predictions_changed = Emitter()  # (first, count)
        self.rows_about_to_reset = Emitter()  # ()
        self.rows_reset = Emitter()  # ()
        self.model_changed = Emitter()  # (): model, loading or error changed
        self.filter_changed = Emitter()  # ()
        self.predictions_finished = Emitter()  # (): nothing queued or running any more
        self.failed = Emitter()  # (message): a prediction job failed
        self.needs_model = Emitter()  # (): inputs came while no model is loaded or loading

    # -- model -------------------------------------------------------------------------------------

    def set_model_loading(self) -> None:
        self.model_loading = True
        self.model_changed.emit()

    def set_model_error(self, message: str | None) -> None:
        """The load failed: ``message`` is shown as a banner (None: the caller told the user)."""
        self.model_loading = False
        self.model_error = message
        self._waiting.clear()
        self.model_changed.emit()

    def set_model(self, model: LoadedModel) -> None:
        """Use ``model`` from now on; rows already here are predicted again with it, and inputs
        not yet turned into rows (queued, or in the job being dropped) follow in order."""
        self.model = model
        self.model_loading = False
        self.model_error = None
        if self.label_filter not in (
            None,
            ERROR_KEY,
            UNSURE_KEY,
            NOT_A_FACE_KEY,
            UNCERTAIN_FIRST_KEY,
            *model.class_names,
        ):
            self.label_filter = None
            self.filter_changed.emit()
        not_yet_rows = [job for job in self._pending_jobs() if job.first_row is None]
        self._drop_jobs()
        if self.rows:
            for row in self.rows:
                row.prediction = None
            self.predictions_changed.emit(0, len(self.rows))
            self._queue.append(_Job([r.source for r in self.rows], 0))
        self._queue += [_Job(job.inputs, None) for job in not_yet_rows]
        self.model_changed.emit()
        waiting, self._waiting = self._waiting, []
        self._queue += [_Job(waiting, None)] if waiting else []
        if self._queue:
            self._start_next()

    # -- input -------------------------------------------------------------------------------------

    def add_inputs(self, inputs: list[Source]) -> None:
        """Predict files, folders (recursively) and in-memory images."""
        if not inputs:
            return
        if self.model is None:
            if self.model_loading:
                self._waiting.extend(inputs)
            else:
                self.needs_model.emit()
            return
        self._queue.append(_Job(list(inputs), None))
        if not self.busy_running:
            self._start_next()

    def clear(self) -> None:
        """Forget every row at once; a running batch is dropped, not waited for."""
        self._queue.clear()
        self._drop_jobs()
        self.rows_about_to_reset.emit()
        self.rows.clear()
        self.rows_reset.emit()
        self.predictions_finished.emit()

    def set_filter(self, label: str | None) -> None:
        if label != self.label_filter:
            self.label_filter = label
            self.filter_changed.emit()

    def shutdown(self) -> None:
        self._queue.clear()
        self._drop_jobs()

    # -- queries ---------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._job is not None or bool(self._queue)

    @property
    def busy_running(self) -> bool:
        return self._job is not None

    def predictions(self) -> list[Prediction]:
        return [r.prediction for r in self.rows if r.prediction is not None]

    def counts(self) -> dict[str, int]:
        """Rows per class, ERROR_KEY and PENDING_KEY; UNSURE_KEY counts flagged rows, which are
        also counted in their class, and NOT_A_FACE_KEY those flagged "not a face"."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.filter_key] = counts.get(row.filter_key, 0) + 1
            if row.unsure:
                counts[UNSURE_KEY] = counts.get(UNSURE_KEY, 0) + 1
            if row.not_a_face:
                counts[NOT_A_FACE_KEY] = counts.get(NOT_A_FACE_KEY, 0) + 1
        return counts

    def shown(self, row: PredictionRow) -> bool:
        if self.label_filter == UNSURE_KEY:
            return row.unsure
        if self.label_filter == NOT_A_FACE_KEY:
            return row.not_a_face
        return self.label_filter in (None, UNCERTAIN_FIRST_KEY) or row.filter_key == self.label_filter

    def relocate(self, moved: dict[str, str]) -> None:
        """Files were moved (sorted into folders, or back): rows follow them, so opening, *Why?*
        and *Show in folder* find them. The thumbnail key stays (the picture is the same)."""
        import dataclasses

        changed = False
        for row in self.rows:
            new = moved.get(os.path.abspath(row.path)) if row.path is not None else None
            if new is not None:
                row.source, row.name = Path(new), Path(new).name
                if row.prediction is not None:
                    row.prediction = dataclasses.replace(row.prediction, source=new)
                changed = True
        if changed:
            self.predictions_changed.emit(0, len(self.rows))

    # -- jobs --------------------------------------------------------------------------------------

    def _pending_jobs(self) -> list[_Job]:
        return ([self._job] if self._job is not None else []) + self._queue

    def _drop_jobs(self) -> None:
        self.jobs.drop("predict")
        self._job = None

    def _start_next(self) -> None:
        if not self._queue or self.model is None:
            self._queue.clear()
            self.predictions_finished.emit()
            return
        self._job = self._queue.pop(0)
        self.jobs.start(
            "predict", jobs.predict_job, self.model, self._job.inputs,
            on_yielded=self._on_job_event, on_errored=self._on_job_errored,
            on_finished=self._on_job_finished,
        )  # fmt: skip

    def _add_rows(self, sources: list[Source]) -> int:
        first = len(self.rows)
        if sources:
            self.rows_about_to_be_added.emit(first, len(sources))
            for source in sources:
                if isinstance(source, Image.Image):
                    self._pasted += 1
                self.rows.append(PredictionRow(*source_name(source, self._pasted), source))
            self.rows_added.emit(first, len(sources))
        return first

    def _on_job_event(self, event: jobs.ImagesFound | jobs.BatchPredicted) -> None:
        job = self._job
        if job is None:
            return
        if isinstance(event, jobs.ImagesFound):
            if job.first_row is None:
                job.first_row = self._add_rows(list(event.sources))
        elif event.predictions:
            first = job.first_row + event.start
            for offset, prediction in enumerate(event.predictions):
                self.rows[first + offset].prediction = prediction
            self.predictions_changed.emit(first, len(event.predictions))

    def _on_job_errored(self, err: BaseException) -> None:
        self.failed.emit(describe_error(err))

    def _on_job_finished(self) -> None:
        self._job = None
        self._start_next()
