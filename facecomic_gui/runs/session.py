"""The Runs tab's state, in plain Python (no Qt): the runs folder's entries (read in the
background), the selection, and renaming or deleting a run file."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from facecomic_gui.common.observable import Emitter, JobRunner
from facecomic_gui.runs import jobs
from facecomic_gui.runs.jobs import RUN_SUFFIX, RunEntry
from trainer.common.errors import describe_error
from trainer.common.new_files import rename_new

IDLE, LOADING = "idle", "loading"
MAX_NAME = 120
_BAD_NAME = re.compile(r"[/\\\x00-\x1f]")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run's file name, or None when it can."""
    if not name.strip():
        return "The name is empty."
    if name != name.strip():
        return "The name starts or ends with a space."
    if _BAD_NAME.search(name):
        return "The name may not contain slashes or control characters."
    if name.startswith("."):
        return "The name may not start with a dot."
    if len(name) > MAX_NAME:
        return f"The name is longer than {MAX_NAME} characters."
    return None


class RunsSession:
    def __init__(self, jobs_runner: JobRunner, runs_dir: Path) -> None:
        self.jobs = jobs_runner
        self.runs_dir = Path(runs_dir)
        self.state = IDLE
        self.entries: list[RunEntry] = []
        self.error: str | None = None  # the folder could not be read at all
        self.selected: list[int] = []  # indices into entries, in the order picked
        self.changed = Emitter()  # (): entries or state changed
        self.selection_changed = Emitter()  # ()

    # -- reading ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the folder again in the background (a refresh in progress is superseded)."""
        self.state = LOADING
        self.changed.emit()
        self.jobs.start(
            "runs", jobs.list_runs_job, self.runs_dir,
            on_returned=self._on_listed, on_errored=self._on_list_errored, on_finished=self._on_finished,
        )  # fmt: skip

    def _on_listed(self, entries: list[RunEntry]) -> None:
        selected = {self.entries[i].path for i in self.selected if i < len(self.entries)}
        # Newest first: by the time saved in the file, else the file's time.
        self.entries = sorted(entries, key=lambda e: (e.created or "", e.modified), reverse=True)
        self.selected = [i for i, e in enumerate(self.entries) if e.path in selected]
        self.error = None

    def _on_list_errored(self, err: BaseException) -> None:
        self.error = describe_error(err)

    def _on_finished(self) -> None:
        self.state = IDLE
        self.changed.emit()
        self.selection_changed.emit()

    # -- selection -------------------------------------------------------------------------------

    def select(self, indices: list[int]) -> None:
        indices = [i for i in indices if 0 <= i < len(self.entries)]
        if indices != self.selected:
            self.selected = indices
            self.selection_changed.emit()

    @property
    def selected_entries(self) -> list[RunEntry]:
        return [self.entries[i] for i in self.selected]

    @property
    def current(self) -> RunEntry | None:
        """The one readable run selected, for Open, Use, Rename; None otherwise."""
        chosen = self.selected_entries
        return chosen[0] if len(chosen) == 1 and chosen[0].ok else None

    @property
    def can_compare(self) -> bool:
        chosen = self.selected_entries
        return len(chosen) == 2 and all(e.ok for e in chosen)

    def index_of(self, path: Path) -> int | None:
        return next((i for i, e in enumerate(self.entries) if e.path == Path(path)), None)

    def previous_on_same_dataset(self, index: int) -> int | None:
        """The newest readable run older than ``index``'s, trained on the same data set folder (the
        runs are listed newest first), for comparing a retrained run with the one before it."""
        entry = self.entries[index]
        folder = _dataset_folder(entry)
        if folder is None:
            return None
        for i in range(index + 1, len(self.entries)):
            if self.entries[i].ok and _dataset_folder(self.entries[i]) == folder:
                return i
        return None

    @property
    def can_delete(self) -> bool:
        return len(self.selected) == 1

    # -- changes ---------------------------------------------------------------------------------

    def rename(self, entry: RunEntry, new_name: str) -> str | None:
        """Rename the run's file in its folder; the reason as one sentence when it cannot."""
        if new_name.endswith(RUN_SUFFIX):
            new_name = new_name[: -len(RUN_SUFFIX)]
        problem = name_problem(new_name)
        if problem:
            return problem
        target = entry.path.with_name(new_name + RUN_SUFFIX)
        if target == entry.path:
            return None
        try:
            rename_new(entry.path, target)  # never over another file: a taken name fails, atomically
        except FileExistsError:
            return f"A run named {new_name} already exists."
        except OSError as err:
            return f"Could not rename {entry.path.name}: {err.strerror or err}."
        model = dataclasses.replace(entry.model, path=target) if entry.model is not None else None
        self._replace(entry, dataclasses.replace(entry, path=target, model=model))
        return None

    def delete(self, entry: RunEntry) -> str | None:
        try:
            entry.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            return f"Could not delete {entry.path.name}: {err.strerror or err}."
        self.entries = [e for e in self.entries if e is not entry]
        self.selected = []
        self.changed.emit()
        self.selection_changed.emit()
        return None

    def _replace(self, old: RunEntry, new: RunEntry) -> None:
        self.entries = [new if e is old else e for e in self.entries]
        self.changed.emit()
        self.selection_changed.emit()

    def shutdown(self) -> None:
        self.jobs.drop("runs")


def _dataset_folder(entry: RunEntry) -> str | None:
    root = entry.model.dataset_root if entry.model is not None else None
    return os.path.normpath(os.path.abspath(root)) if root else None
