"""*Sort into folders…*, in plain Python (no Qt): the target and copy-or-move the user picked, the
plan (images per folder) for the Predict tab's answers, then the sort in the background with
progress, cancel, and *Undo*. The dialog renders it; the work is ``trainer.prediction.sorting``,
run through a ``JobRunner``. Moved files are announced (``files_moved``) so the Predict tab's
rows and the marks follow them."""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from facecomic_gui.common.observable import Emitter, JobRunner
from trainer.common.cancel import CancelToken
from trainer.common.errors import describe_error
from trainer.common.text import plural

if TYPE_CHECKING:
    from trainer.prediction.sort_events import SortSummary, UndoSummary
    from trainer.prediction.sort_plan import SortPlan

READY, SORTING, CANCELLING, UNDOING = "ready", "sorting", "cancelling", "undoing"
MOVED_AWAY = ("moved", "removed duplicate")  # the source is gone; its picture is at the destination
MOVED_BACK = ("moved back", "restored")


class SortSession:
    def __init__(
        self,
        jobs_runner: JobRunner,
        predictions: Sequence,
        class_names: Sequence[str],
        target: str | None = None,
        *,
        move: bool = False,
    ) -> None:
        self.jobs = jobs_runner
        self.predictions = list(predictions)
        self.class_names = tuple(class_names)
        self.target: str | None = target
        self.move = move
        self.state = READY
        self._job = READY
        self.plan: SortPlan | None = None
        self.plan_error: str | None = None
        self.done = 0
        self.total = 0
        self._started_at = 0.0
        self.summary: SortSummary | None = None  # the last sort's (None while one runs)
        self.run: str | None = None  # the run *Undo* takes back
        self.error: str | None = None
        self.left: list[tuple[str, str]] = []  # (source, reason) of the images the last job left
        self.note = ""  # how the last job ended, one sentence
        self._moved: dict[str, str] = {}
        self.changed = Emitter()  # (): plan, state or result changed
        self.progressed = Emitter()  # (done, total)
        self.job_finished = Emitter()  # (): a sort or an undo ended, however
        self.files_moved = Emitter()  # ({old path: new path})
        self._replan()

    # -- choices -----------------------------------------------------------------------------------

    def set_target(self, target: str | None) -> None:
        if self.state == READY and target != self.target:
            self.target = target or None
            self._replan()

    def set_move(self, move: bool) -> None:
        if self.state == READY and move != self.move:
            self.move = move
            self._replan()

    def _replan(self) -> None:
        from trainer.common.errors import FaceComicError
        from trainer.prediction.sort_plan import check_target, plan_sort

        self.plan, self.plan_error = None, None
        if not self.target:
            self.plan_error = "Choose the folder to sort into."
        else:
            sources = [str(p.source) for p in self.predictions if p.ok and os.path.lexists(str(p.source))]
            try:
                check_target(self.target, sources)
                self.plan = plan_sort(
                    self.predictions, self.target, move=self.move, class_names=self.class_names
                )
            except FaceComicError as err:
                self.plan_error = str(err)
        self.changed.emit()

    # -- queries -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.state != READY

    @property
    def can_start(self) -> bool:
        return self.state == READY and self.plan is not None and bool(self.plan.items)

    @property
    def can_undo(self) -> bool:
        return self.state == READY and self.run is not None

    def counts(self) -> dict[str, int]:
        return self.plan.counts() if self.plan is not None else {}

    def eta_seconds(self) -> float | None:
        if self.state not in (SORTING, UNDOING) or not self.done:
            return None
        rate = self.done / max(time.monotonic() - self._started_at, 1e-6)
        return max(0.0, (self.total - self.done) / rate)

    def status(self) -> str:
        verb = "Moving" if self.move else "Copying"
        if self.state == SORTING:
            return f"{verb} {self.done:,} of {self.total:,}…"
        if self.state == CANCELLING:
            return f"Cancelling after {self.done:,} of {self.total:,}…"
        if self.state == UNDOING:
            return f"Undoing: {self.done:,} of {self.total:,}…"
        return self.error or self.note

    # -- work ------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Sort in the background; False when it cannot start now."""
        from trainer.prediction.sorting import execute_sort

        if not self.can_start:
            return False
        self._begin(SORTING, len(self.plan.items))
        self.jobs.start(
            "sort", sort_job, execute_sort, self.plan,
            on_yielded=self._on_sort_event, on_returned=self._on_sorted, on_errored=self._on_errored,
            on_aborted=self._on_aborted, on_finished=self._on_finished,
        )  # fmt: skip
        return True

    def cancel(self) -> None:
        """Stop between two images; what was done stays, for *Undo* or another *Sort*."""
        if self.state in (SORTING, UNDOING):
            self.jobs.cancel("sort")
            self.state = CANCELLING
            self.changed.emit()

    def undo(self) -> bool:
        """Take back the last sort (its run, per the log) in the background."""
        from trainer.prediction.sort_undo import undo_sort

        if not self.can_undo:
            return False
        self._begin(UNDOING, 0)
        self.jobs.start(
            "sort", undo_job, undo_sort, self.target, (self.run,),
            on_yielded=self._on_undo_event, on_returned=self._on_undone, on_errored=self._on_errored,
            on_aborted=self._on_aborted, on_finished=self._on_finished,
        )  # fmt: skip
        return True

    def shutdown(self) -> None:
        self.jobs.cancel("sort")

    def _begin(self, state: str, total: int) -> None:
        self.state, self._job, self.done, self.total = state, state, 0, total
        self._started_at = time.monotonic()
        self.error, self.note, self.left, self._moved = None, "", [], {}
        self.changed.emit()

    def _on_sort_event(self, event) -> None:
        from trainer.prediction import sort_events

        if isinstance(event, sort_events.SortStarted):
            self.run = event.run
        elif isinstance(event, sort_events.ImageSorted):
            self.done = event.done
            if event.action in MOVED_AWAY:
                self._moved[event.source] = event.destination
            self.progressed.emit(event.done, event.total)
        elif isinstance(event, sort_events.ImageLeftInPlace):
            self.done += 1
            self.left.append((event.source, event.reason))

    def _on_undo_event(self, event) -> None:
        from trainer.prediction import sort_events

        if isinstance(event, sort_events.UndoStarted):
            self.total = event.total
        elif isinstance(event, sort_events.ImageRestored):
            self.done = event.done
            if event.action in MOVED_BACK:
                self._moved[event.destination] = event.source
            self.progressed.emit(event.done, event.total)
        elif isinstance(event, sort_events.ImageNotRestored):
            self.done += 1
            self.left.append((event.destination, event.reason))

    def _on_sorted(self, summary: SortSummary) -> None:
        self.summary = summary
        verb = "Moved" if summary.move else "Copied"
        extra = {k: v for k, v in summary.actions.items() if k not in ("moved", "copied")}
        details = " (" + ", ".join(f"{v:,} {k}" for k, v in extra.items()) + ")" if extra else ""
        self.note = f"{verb} {plural(summary.sorted, 'image')} into {summary.target}{details}."
        if self.left:
            self.note += f" {plural(len(self.left), 'image')} stayed where {'it was' if len(self.left) == 1 else 'they were'}."

    def _on_undone(self, summary: UndoSummary) -> None:
        self.run = None
        done = ", ".join(f"{v:,} {k}" for k, v in summary.actions.items()) or "nothing to undo"
        self.note = f"Undone: {done}."
        if summary.refused:
            first = summary.refused[0]
            self.note += (
                f" {plural(len(summary.refused), 'image')} could not be verified and stayed ({first.reason})."
            )

    def _on_errored(self, err: BaseException) -> None:
        self.error = describe_error(err)

    def _on_aborted(self) -> None:
        if self._job == UNDOING:
            self.note = f"Cancelled after {self.done:,} of {self.total:,} taken back; Undo again to finish."
        else:
            self.note = (
                f"Cancelled after {self.done:,} of {self.total:,}; nothing is half-done. "
                "Sort again to finish, or Undo to take back what was done."
            )

    def _on_finished(self) -> None:
        self.state = READY
        moved, self._moved = self._moved, {}
        if moved:
            self.files_moved.emit(moved)
        # The plan is of the files where they were: moved ones are gone from it, so a cancelled
        # sort continues with the rest, and after an undo the whole plan is back.
        self._replan()
        self.job_finished.emit()


def sort_job(execute, plan: SortPlan, *, cancel: CancelToken) -> Generator[object, None, SortSummary]:
    return (yield from execute(plan, cancel=cancel))


def undo_job(
    undo, target: str, runs: tuple[str, ...], *, cancel: CancelToken
) -> Generator[object, None, UndoSummary]:
    return (yield from undo(Path(target), runs=runs, cancel=cancel))
