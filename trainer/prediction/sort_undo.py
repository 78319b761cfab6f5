"""Undoing a sort from its log, newest first: each file's SHA-256 is checked before it goes back,
and what cannot be verified stays where it is and is reported."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Generator, Iterable
from pathlib import Path

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.new_files import ContentMismatchError, copy_file_new, move_file
from trainer.common.outputs import fsync_dir, same_file, shown
from trainer.data.walk import is_inside
from trainer.prediction.sort_events import (
    ImageNotRestored,
    ImageRestored,
    UndoEvent,
    UndoStarted,
    UndoSummary,
)
from trainer.prediction.sort_log import (
    COPIED,
    LOG_NAME,
    MOVED,
    MOVED_BACK,
    MOVING_BACK,
    NOT_DONE,
    REMOVED_COPY,
    REMOVING_COPY,
    RESTORED,
    RESTORING,
    UNDO_OF,
    LogRow,
    SortError,
    SortLog,
    holds,
    recover,
    undone_keys,
)
from trainer.prediction.sort_plan import STOPPING_ERRORS


def undo_sort(
    target: str | os.PathLike[str],
    *,
    runs: Collection[str] | None = None,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Generator[UndoEvent, None, UndoSummary]:
    """Take back what the log says was sorted into ``target`` (every run, or those in ``runs``),
    newest first: moved images go back, copies are deleted, removed duplicates are copied back.
    Every file's SHA-256 is checked against the log first; what cannot be verified is left as it
    is and reported (``ImageNotRestored``). Empty folders the sort made are removed."""
    place = Path(os.path.abspath(target))
    if not place.is_dir():
        raise SortError(f"{shown(place)} is not a folder; --undo-sort needs the folder a sort wrote to.")
    with SortLog.open(place, create=False) as log:
        recovered = recover(log)
        undone = undone_keys(log.rows)
        todo = [
            row
            for row in log.rows
            if row.action in UNDO_OF and row.key not in undone and (runs is None or row.run in runs)
        ]
        todo.reverse()
        yield UndoStarted(str(place), len(todo), recovered)
        actions: dict[str, int] = {}
        refused: list[ImageNotRestored] = []
        folders: set[Path] = set()
        for done, row in enumerate(todo, 1):
            cancel.raise_if_cancelled()
            event = _undo_one(log, row, done, len(todo))
            if isinstance(event, ImageNotRestored):
                refused.append(event)
            else:
                actions[event.action] = actions.get(event.action, 0) + 1
                folders.add(Path(row.destination).parent)
            yield event
        _remove_empty_folders(folders, place)
    return UndoSummary(str(place), len(todo), actions, tuple(refused), str(place / LOG_NAME))


def _undo_one(log: SortLog, row: LogRow, done: int, total: int) -> ImageRestored | ImageNotRestored:
    source, destination = Path(row.source), Path(row.destination)

    def refuse(reason: str) -> ImageNotRestored:
        return ImageNotRestored(row.source, row.destination, reason)

    if not holds(destination, row.sha256):
        if not os.path.lexists(destination):
            return refuse(f"{shown(destination)} is gone, so it cannot go back")
        return refuse(f"{shown(destination)} changed since it was sorted (its SHA-256 differs); it stays")
    if row.action == COPIED:
        # A copied link's original is the file it names: still there, the copy may go (unless
        # the link now names the copy itself, the only one left).
        if not holds(source, row.sha256, follow_links=True) or same_file(source, destination):
            return refuse(
                f"the original {shown(source)} is gone or changed, so the copy {shown(destination)} stays "
                "(it may be the only one)"
            )
        log.append(row.but(REMOVING_COPY))
        try:
            destination.unlink()
        except OSError as err:
            log.append(row.but(NOT_DONE))
            return refuse(f"cannot delete the copy ({err.strerror or err})")
        fsync_dir(destination.parent)
        log.append(row.but(REMOVED_COPY))
        return ImageRestored(done, total, row.source, row.destination, REMOVED_COPY)
    if os.path.lexists(source):
        return refuse(f"something is at {shown(source)} again, so {shown(destination)} stays")
    try:
        source.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return refuse(f"cannot recreate the folder {shown(source.parent)} ({err.strerror or err})")
    intent, outcome = (MOVING_BACK, MOVED_BACK) if row.action == MOVED else (RESTORING, RESTORED)
    log.append(row.but(intent))
    try:
        if row.action == MOVED:
            move_file(destination, source, expected_sha256=row.sha256)
        else:
            copy_file_new(destination, source, expected_sha256=row.sha256)
    except (OSError, ContentMismatchError) as err:
        with contextlib.suppress(SortError):
            log.append(row.but(NOT_DONE))
        if isinstance(err, OSError) and err.errno in STOPPING_ERRORS:
            raise SortError(
                f"{err.strerror or err} ({shown(err.filename or source)}); the images not yet restored are "
                "still sorted: fix this and undo again."
            ) from None
        reason = str(err) if isinstance(err, ContentMismatchError) else (err.strerror or str(err))
        return refuse(reason.rstrip("."))
    log.append(row.but(outcome))
    return ImageRestored(done, total, row.source, row.destination, outcome)


def _remove_empty_folders(folders: Iterable[Path], target: Path) -> None:
    """The class and reason folders left empty by the undo (never the target, never a folder
    with anything in it: ``rmdir`` refuses those)."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        current = folder
        while current != target and is_inside(str(current), str(target)):
            try:
                current.rmdir()
            except OSError:
                break
            current = current.parent
