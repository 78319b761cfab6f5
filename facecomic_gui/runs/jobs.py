"""Reading the runs folder, a job for a worker: each file is loaded (and so checked) off the GUI
thread; a file that does not load is listed with the reason."""

from __future__ import annotations

import os
import stat
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.common.cancel import CancelToken

if TYPE_CHECKING:
    from trainer.model.model_file import LoadedModel

RUN_SUFFIX = ".safetensors"


@dataclass(frozen=True, slots=True)
class RunEntry:
    path: Path
    model: LoadedModel | None = None  # None when the file could not be read
    error: str | None = None
    modified: float = 0.0

    @property
    def name(self) -> str:
        return self.path.name[: -len(RUN_SUFFIX)] if self.path.name.endswith(RUN_SUFFIX) else self.path.name

    @property
    def ok(self) -> bool:
        return self.model is not None

    @property
    def metadata(self) -> dict:
        return self.model.metadata if self.model is not None else {}

    @property
    def created(self) -> str:
        return self.model.created if self.model is not None else ""

    @property
    def dataset(self) -> str:
        return str(self.metadata.get("dataset") or "")

    @property
    def features(self) -> str:
        return self.model.feature_kind if self.model is not None else ""

    @property
    def best(self) -> str:
        best = self.model.best if self.model is not None else None
        return best.label if best is not None else ""

    @property
    def accuracy(self) -> float | None:
        holdout = self.model.holdout if self.model is not None else None
        return holdout.accuracy if holdout is not None else None

    @property
    def ece(self) -> float | None:
        holdout = self.model.holdout if self.model is not None else None
        return holdout.ece if holdout is not None else None

    @property
    def seconds(self) -> float | None:
        return self.model.training_seconds if self.model is not None else None


def read_entry(path: Path) -> RunEntry:
    """The run in ``path``, or the reason it cannot be read: a damaged file, and also whatever is
    not a file at all (a folder, a FIFO, a broken link named ``*.safetensors``)."""
    from trainer.common.errors import describe_error
    from trainer.model.model_file import load_model

    try:
        st = path.lstat()
    except OSError as err:
        return RunEntry(path, None, describe_error(err), 0.0)
    problem = _not_a_file(path, st)
    if problem:
        return RunEntry(path, None, problem, st.st_mtime)
    try:
        modified = path.stat().st_mtime
    except OSError:
        modified = st.st_mtime
    try:
        return RunEntry(path, load_model(path), None, modified)
    except Exception as err:  # load_model gives one sentence for any bad file
        return RunEntry(path, None, describe_error(err), modified)


def _not_a_file(path: Path, st: os.stat_result) -> str | None:
    """Why the entry is not a model file, before anything tries to open it (a FIFO would block)."""
    from trainer.common.outputs import describe_kind, shown

    if stat.S_ISLNK(st.st_mode) and not path.exists():
        return f"A broken link (nothing at {shown(os.readlink(path))})."
    if path.is_dir():
        return "A folder, not a model file."
    if not path.is_file():
        return f"Not a regular file ({describe_kind(path)})."
    return None


def list_runs_job(runs_dir: Path, *, cancel: CancelToken) -> Generator[None, None, list[RunEntry]]:
    """Every entry named ``*.safetensors`` in ``runs_dir``, readable or not (none when the folder
    does not exist yet)."""
    try:
        paths = sorted(p for p in Path(runs_dir).iterdir() if p.name.endswith(RUN_SUFFIX))
    except FileNotFoundError:
        return []
    entries = []
    for path in paths:
        cancel.raise_if_cancelled()
        entries.append(read_entry(path))
    return entries
    yield  # a generator, so it runs like every other job
