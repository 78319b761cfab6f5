"""The sort log, ``OUT/facecomic-sort-log.csv``: what sorting did to each file, written ahead.

One CSV row per step, appended, flushed and fsynced before the next step starts, with the columns
``source, destination, label, confidence, flag, sha256, action, run``. Before a file is touched a
row says what is about to happen (``moving``, ``copying``, ``removing duplicate``; when undoing,
``moving back``, ``removing copy``, ``restoring``); after it, a row says what happened (``moved``,
``copied``, ...) or ``not done``. So however a run ends (finished, cancelled, killed, the power
cut) the log names every file it touched, and ``recover`` settles the one step that may have been
under way by looking at the disk: the file is whole at its destination with the logged SHA-256
(the step is completed: a second name left behind is removed) or it is not (the step is marked
``not done`` and any temp file removed). Every sort and undo recovers first.

A run starts with a ``started copy`` or ``started move`` row and ends with ``finished``; a run
without its ``finished`` row was interrupted, and running the same sort again continues it. The
log is locked while a sort or an undo writes to it, so two cannot interleave.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from trainer.common.checksum import file_sha256
from trainer.common.errors import FaceComicError
from trainer.common.outputs import OutputError, fsync_dir, open_append, same_file, shown, stale_temps

LOG_NAME = "facecomic-sort-log.csv"
COLUMNS = ("source", "destination", "label", "confidence", "flag", "sha256", "action", "run")

STARTED_COPY, STARTED_MOVE, FINISHED = "started copy", "started move", "finished"
MOVING, MOVED = "moving", "moved"
COPYING, COPIED = "copying", "copied"
ALREADY_THERE = "already there"  # a copy's content was in its folder before: nothing written
REMOVING_DUPLICATE, REMOVED_DUPLICATE = "removing duplicate", "removed duplicate"
MOVING_BACK, MOVED_BACK = "moving back", "moved back"
REMOVING_COPY, REMOVED_COPY = "removing copy", "removed copy"
RESTORING, RESTORED = "restoring", "restored"
NOT_DONE = "not done"

OUTCOME_OF = {
    MOVING: MOVED,
    COPYING: COPIED,
    REMOVING_DUPLICATE: REMOVED_DUPLICATE,
    MOVING_BACK: MOVED_BACK,
    REMOVING_COPY: REMOVED_COPY,
    RESTORING: RESTORED,
}
UNDO_OF = {MOVED: MOVING_BACK, COPIED: REMOVING_COPY, REMOVED_DUPLICATE: RESTORING}
UNDONE = frozenset({MOVED_BACK, REMOVED_COPY, RESTORED})
SORTED = frozenset({MOVED, COPIED, ALREADY_THERE, REMOVED_DUPLICATE})


class SortError(FaceComicError):
    """A sort or an undo cannot start, or had to stop; one sentence naming the file or folder."""


@dataclass(frozen=True, slots=True)
class LogRow:
    source: str
    destination: str = ""
    label: str = ""
    confidence: str = ""
    flag: str = ""
    sha256: str = ""
    action: str = ""
    run: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """One file's placement in one run: what an intent, its outcome and its undo share."""
        return self.run, self.source, self.destination

    def but(self, action: str) -> LogRow:
        return replace(self, action=action)

    def cells(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in COLUMNS)


def new_run_id(taken: Collection[str] = ()) -> str:
    """``20260130T101500Z-4242``: when, and which process; ``-2``, ``-3``… after it when a run of
    this log already has that id (a sort, its undo and a new sort in one second: the new run's
    rows must not share the undone run's keys, or its undo would skip them)."""
    base = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"
    run, n = base, 1
    while run in taken:
        n += 1
        run = f"{base}-{n}"
    return run


def parse_log(text: str, path: Path) -> list[LogRow]:
    """The rows of a log's text. A last line cut short (the power failed mid-write) is dropped; a
    file that does not start with the header is not a sort log and is refused."""
    if not text:
        return []
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows: list[LogRow] = []
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        raise SortError(f"{shown(path)} is damaged (not valid CSV); it cannot be used.") from None
    if not records or tuple(records[0]) != COLUMNS:
        raise SortError(f"{shown(path)} is not a FaceComic sort log (its first line is not the header).")
    for record in records[1:]:
        if len(record) == len(COLUMNS):
            rows.append(LogRow(*record))
    return rows


def read_log(target: Path) -> list[LogRow]:
    """The rows of ``target``'s log without locking or changing it (for a dry run); [] when none."""
    path = target / LOG_NAME
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            return parse_log(handle.read(), path)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise SortError(f"Cannot read {shown(path)}: {err.strerror or err}.") from None


class SortLog:
    """An open log: its rows as read at open, and a lock held until ``close``."""

    def __init__(self, path: Path, handle, rows: list[LogRow]) -> None:
        self.path = path
        self._handle = handle
        self.rows = rows

    @classmethod
    def open(cls, target: Path, *, create: bool) -> SortLog:
        path = target / LOG_NAME
        if not create and not path.is_file():
            raise SortError(
                f"{shown(target)} has no {LOG_NAME}: nothing was sorted there, so nothing to undo."
            )
        try:
            handle = open_append(path)
        except OutputError as err:
            raise SortError(str(err)) from None
        except OSError as err:
            raise SortError(f"Cannot write {shown(path)}: {err.strerror or err}.") from None
        try:
            _lock(handle, target)
            with open(path, encoding="utf-8", errors="surrogateescape", newline="") as reader:
                text = reader.read()
            rows = parse_log(text, path)
            log = cls(path, handle, rows)
            if not text:
                log._write(COLUMNS)
            elif not text.endswith("\n"):
                log._write_raw("\n")  # after a cut-off line, the next row starts on its own line
        except BaseException:
            handle.close()
            raise
        return log

    def __enter__(self) -> SortLog:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()  # releases the lock

    def append(self, row: LogRow) -> None:
        """Write one row and make it durable before the caller takes the step it describes."""
        self._write(row.cells())
        self.rows.append(row)

    def _write(self, cells: Iterable[str]) -> None:
        buffer = io.StringIO(newline="")
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        self._write_raw(buffer.getvalue())

    def _write_raw(self, text: str) -> None:
        try:
            self._handle.write(text)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as err:
            raise SortError(f"Cannot write {shown(self.path)}: {err.strerror or err}.") from None

    # -- reading --------------------------------------------------------------------------------

    def pending(self) -> list[LogRow]:
        """Steps announced but never settled: at most one per run that was killed mid-step."""
        return pending_steps(self.rows)

    def start_run(self, move: bool, target: Path) -> str:
        run = new_run_id({row.run for row in self.rows})
        self.append(LogRow("", str(target), action=STARTED_MOVE if move else STARTED_COPY, run=run))
        return run

    def finish_run(self, run: str, target: Path) -> None:
        self.append(LogRow("", str(target), action=FINISHED, run=run))


def pending_steps(rows: Iterable[LogRow]) -> list[LogRow]:
    open_steps: dict[tuple[str, str, str], LogRow] = {}
    for row in rows:
        if row.action in OUTCOME_OF:
            open_steps[row.key] = row
        elif row.action in OUTCOME_OF.values() or row.action == NOT_DONE:
            open_steps.pop(row.key, None)
    return list(open_steps.values())


def undone_keys(rows: Iterable[LogRow]) -> set[tuple[str, str, str]]:
    return {row.key for row in rows if row.action in UNDONE}


def _lock(handle, target: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SortError(
            f"Another FaceComic sort or undo is working in {shown(target)}; wait for it to finish."
        ) from None


# -- recovery -------------------------------------------------------------------------------------


def holds(path: Path, sha256: str, *, follow_links: bool = False) -> bool:
    """Whether ``path`` is a regular file (not a link, unless ``follow_links``) whose content has
    this SHA-256."""
    try:
        if not stat.S_ISREG((os.stat if follow_links else os.lstat)(path).st_mode):
            return False
        return file_sha256(path) == sha256
    except OSError:
        return False


def drop_second_name(old: Path, new: Path, sha256: str) -> None:
    """A step that had placed the file at ``new`` and was killed before removing ``old``: remove
    ``old`` when it is the same file (a hard link) or the same content (a finished copy)."""
    if not os.path.lexists(old):
        return
    if same_file(old, new) or holds(old, sha256):
        old.unlink()
        fsync_dir(old.parent)


def remove_temps(final: Path) -> None:
    for temp in stale_temps(final):
        with contextlib.suppress(OSError):
            temp.unlink()


def recover(log: SortLog) -> int:
    """Settle every step the log announced but never settled; returns how many there were."""
    steps = log.pending()
    for row in steps:
        source, destination = Path(row.source), Path(row.destination)
        done = False
        if row.action in (MOVING, COPYING):
            done = holds(destination, row.sha256)
            if done and row.action == MOVING:
                drop_second_name(source, destination, row.sha256)
            if not done:
                remove_temps(destination)
        elif row.action in (MOVING_BACK, RESTORING):
            done = holds(source, row.sha256)
            if done and row.action == MOVING_BACK:
                drop_second_name(destination, source, row.sha256)
            if not done:
                remove_temps(source)
        elif row.action == REMOVING_DUPLICATE:
            done = not os.path.lexists(source)
        elif row.action == REMOVING_COPY:
            done = not os.path.lexists(destination)
        log.append(row.but(OUTCOME_OF[row.action] if done else NOT_DONE))
    return len(steps)


def last_run(rows: Iterable[LogRow]) -> tuple[LogRow, bool] | None:
    """The newest run's "started copy" or "started move" row, and whether it finished."""
    last, finished = None, set()
    for row in rows:
        if row.action in (STARTED_COPY, STARTED_MOVE):
            last = row
        elif row.action == FINISHED:
            finished.add(row.run)
    return None if last is None else (last, last.run in finished)
