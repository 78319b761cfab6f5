"""Sorting images into folders by their predictions, and undoing it, without ever losing a file.

``plan_sort`` turns predictions into a ``SortPlan``: each readable image goes to
``OUT/<class folder>/`` (``faces/``, ``comics/``: the model's class names) or, when its answer is
flagged, to ``OUT/unsure/<reason>/`` (``not-a-face``, ``unlike-training-images``,
``low-confidence``). ``execute_sort`` copies or moves the files (a generator of small events, as
training is; cancel is checked between files) and ``undo_sort`` takes them back, both through the
write-ahead log of ``sort_log`` and the no-replace moves of ``trainer.common.new_files``:

- a file keeps its name in its new folder; a name that is taken gets ``name (2).jpg``, and nothing
  is ever replaced;
- content that was in the folder before this run (an earlier sort of the same images) is not
  written again: a copy is ``already there``; a move removes the source, whose identical content
  is there (``removed duplicate``; undo copies it back). Each image of one run gets its own file,
  so two identical inputs give two files, as the source had;
- a kill at any moment leaves each image whole at its source or at its destination; running the
  same sort again settles the step under way and continues the run (``sort_log.recover``);
- undo verifies each file's SHA-256 against the log and refuses what it cannot verify: a file
  changed since, a source path taken again, or a copy whose original is gone (the copy may be the
  only one left, so it stays).

This module executes a plan; the plan is ``sort_plan``'s, the events ``sort_events``' and the
undo ``sort_undo``'s.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection, Generator
from dataclasses import replace
from pathlib import Path

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.checksum import file_sha256
from trainer.common.new_files import ContentMismatchError, copy_file_new, free_names, move_file
from trainer.common.outputs import fsync_dir, shown
from trainer.common.text import plural
from trainer.data.walk import is_hidden, is_inside
from trainer.prediction.sort_events import (
    ImageLeftInPlace,
    ImageSorted,
    SortEvent,
    SortStarted,
    SortSummary,
)
from trainer.prediction.sort_log import (
    ALREADY_THERE,
    COPIED,
    COPYING,
    LOG_NAME,
    MOVED,
    MOVING,
    NOT_DONE,
    REMOVED_DUPLICATE,
    REMOVING_DUPLICATE,
    SORTED,
    STARTED_MOVE,
    LogRow,
    SortError,
    SortLog,
    holds,
    last_run,
    pending_steps,
    read_log,
    recover,
)
from trainer.prediction.sort_plan import DONE_BEFORE, STOPPING_ERRORS, SortItem, SortPlan

# -- contents already in place -----------------------------------------------------------------


class _Contents:
    """Files already in each destination folder that this run did not put there, by size; hashed
    only when an image of the same size comes, and each at most once."""

    def __init__(self, target: Path, placed_by_run: Collection[str]) -> None:
        self.target = target
        self.placed = set(placed_by_run)
        self._by_size: dict[str, dict[int, list[Path]]] = {}
        self._by_hash: dict[str, dict[str, Path]] = {}

    def find(self, folder: str, size: int, sha256: str) -> Path | None:
        sizes = self._by_size.get(folder)
        if sizes is None:
            sizes = self._by_size[folder] = self._list(self.target / folder)
            self._by_hash[folder] = {}
        hashes = self._by_hash[folder]
        hashed_now = set()
        for path in sizes.pop(size, ()):
            with contextlib.suppress(OSError):
                hashes.setdefault(file_sha256(path), path)
                hashed_now.add(path)
        found = hashes.get(sha256)
        if found is None:
            return None
        # A file hashed by an earlier image may have changed since; one hashed just now is current.
        return found if found in hashed_now or holds(found, sha256) else None

    def _list(self, folder: Path) -> dict[int, list[Path]]:
        sizes: dict[int, list[Path]] = {}
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return sizes
        for entry in entries:
            path = Path(entry.path)
            if is_hidden(entry.name) or str(path) in self.placed:
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    sizes.setdefault(entry.stat(follow_symlinks=False).st_size, []).append(path)
        return sizes


# -- sorting -----------------------------------------------------------------------------------


def execute_sort(
    plan: SortPlan, *, dry_run: bool = False, cancel: CancelToken = NEVER_CANCELLED
) -> Generator[SortEvent, None, SortSummary]:
    """Copy or move every image of ``plan``; with ``dry_run``, say what would happen and touch
    nothing. Yields ``SortStarted``, then ``ImageSorted`` or ``ImageLeftInPlace`` per image;
    returns the ``SortSummary``. ``SortError`` stops it (a full disk: one sentence, the images not
    yet reached left where they were); ``Cancelled`` stops it between two images. Either way the
    log lets the same sort continue, or ``undo_sort`` take it back."""
    if dry_run:
        return (yield from _Sorter(plan, None, cancel).run())
    try:
        plan.target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SortError(f"Cannot create {shown(plan.target)}: {err.strerror or err}.") from None
    with SortLog.open(plan.target, create=True) as log:
        return (yield from _Sorter(plan, log, cancel).run())


class _Sorter:
    def __init__(self, plan: SortPlan, log: SortLog | None, cancel: CancelToken) -> None:
        self.plan, self.log, self.cancel = plan, log, cancel
        self.dry_run = log is None
        self.counts: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        self.left: list[ImageLeftInPlace] = []
        self.taken: set[Path] = set()  # names a dry run has given out
        self.done = 0

    def run(self) -> Generator[SortEvent, None, SortSummary]:
        plan = self.plan
        if self.log is not None:
            recovered = recover(self.log)
            rows = self.log.rows
        else:
            rows = read_log(plan.target)
            recovered = len(pending_steps(rows))
        run, resumed, earlier = self._resume_or_start(rows)
        self.earlier = earlier
        placed = {r.destination for r in earlier.values() if r.action in (MOVED, COPIED)}
        self.contents = _Contents(plan.target, placed)
        total = len(plan.items)
        yield SortStarted(run, str(plan.target), plan.move, total, self.dry_run, resumed, recovered)
        for item in plan.items:
            self.cancel.raise_if_cancelled()
            event = self._sort_one(item, run)
            if isinstance(event, ImageLeftInPlace):
                self.left.append(event)
            else:
                self.counts[item.folder] = self.counts.get(item.folder, 0) + 1
                self.actions[event.action] = self.actions.get(event.action, 0) + 1
            self.done += 1
            if isinstance(event, ImageSorted):
                event = ImageSorted(
                    self.done, total, event.source, event.destination, event.action, item.folder
                )
            yield event
        if self.log is not None:
            self.log.finish_run(run, plan.target)
        return SortSummary(
            str(plan.target), plan.move, run, total, self.counts, self.actions, tuple(self.left),
            self.dry_run, str(plan.target / LOG_NAME),
        )  # fmt: skip

    def _resume_or_start(self, rows: list[LogRow]) -> tuple[str, bool, dict[str, LogRow]]:
        """The run to continue (the newest, unfinished, of the same kind) or a new one; and what
        that run already did, by source."""
        newest = last_run(rows)
        if newest is not None and not newest[1] and (newest[0].action == STARTED_MOVE) == self.plan.move:
            run = newest[0].run
            return run, True, {r.source: r for r in rows if r.run == run and r.action in SORTED}
        if self.log is None:
            return "(dry run)", False, {}
        return self.log.start_run(self.plan.move, self.plan.target), False, {}

    def _sort_one(self, item: SortItem, run: str) -> ImageSorted | ImageLeftInPlace:
        source = item.source
        try:
            st = os.lstat(source)
            if stat.S_ISLNK(st.st_mode) and self.plan.move:
                return ImageLeftInPlace(str(source), "it became a link; links are not moved")
            sha = file_sha256(source)
            size = os.stat(source).st_size
        except OSError as err:
            return ImageLeftInPlace(str(source), f"cannot read it ({err.strerror or err})")
        row = LogRow(str(source), "", item.label, f"{item.confidence:.6f}", item.flag, sha, "", run)
        before = self.earlier.get(str(source))
        if before is not None and before.sha256 == sha:
            return self._sorted(item, before.destination, DONE_BEFORE)
        folder = self.plan.target / item.folder
        existing = self.contents.find(item.folder, size, sha)
        if existing is not None:
            return self._already_there(item, row, existing)
        if not self.dry_run:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise self._stopped(err, folder) from None
        for destination in free_names(folder, source.name):
            if destination in self.taken:
                continue
            if self.dry_run:
                self.taken.add(destination)
                return self._sorted(item, str(destination), "would move" if self.plan.move else "would copy")
            outcome = self._place(item, replace(row, destination=str(destination)))
            if outcome is not None:
                return outcome
        return ImageLeftInPlace(str(source), f"no free name for it in {shown(folder)}")

    def _place(self, item: SortItem, row: LogRow) -> ImageSorted | ImageLeftInPlace | None:
        """Move or copy to ``row.destination``; None when that name was taken meanwhile."""
        log = self.log
        moving = self.plan.move
        log.append(row.but(MOVING if moving else COPYING))
        try:
            if moving:
                move_file(item.source, row.destination, expected_sha256=row.sha256)
            else:
                copy_file_new(item.source, row.destination, expected_sha256=row.sha256)
        except FileExistsError:
            log.append(row.but(NOT_DONE))
            return None
        except ContentMismatchError as err:
            log.append(row.but(NOT_DONE))
            return ImageLeftInPlace(row.source, str(err).rstrip("."))
        except OSError as err:
            with contextlib.suppress(SortError):  # a full disk may refuse the log row too
                log.append(row.but(NOT_DONE))
            if err.errno in STOPPING_ERRORS or (
                err.errno in (errno.EACCES, errno.EPERM) and _is_under(err.filename, self.plan.target)
            ):
                raise self._stopped(err, Path(err.filename or row.destination)) from None
            return ImageLeftInPlace(row.source, f"{err.strerror or err}")
        log.append(row.but(MOVED if moving else COPIED))
        return self._sorted(item, row.destination, MOVED if moving else COPIED)

    def _already_there(self, item: SortItem, row: LogRow, existing: Path) -> ImageSorted | ImageLeftInPlace:
        row = replace(row, destination=str(existing))
        if not self.plan.move:
            if self.log is not None:
                self.log.append(row.but(ALREADY_THERE))
            return self._sorted(item, str(existing), ALREADY_THERE)
        if self.dry_run:
            return self._sorted(item, str(existing), "would remove duplicate")
        self.log.append(row.but(REMOVING_DUPLICATE))
        try:
            item.source.unlink()
        except OSError as err:
            self.log.append(row.but(NOT_DONE))
            return ImageLeftInPlace(row.source, f"cannot remove it ({err.strerror or err})")
        fsync_dir(item.source.parent)
        self.log.append(row.but(REMOVED_DUPLICATE))
        return self._sorted(item, str(existing), REMOVED_DUPLICATE)

    def _sorted(self, item: SortItem, destination: str, action: str) -> ImageSorted:
        return ImageSorted(0, 0, str(item.source), destination, action, item.folder)

    def _stopped(self, err: OSError, where: Path) -> SortError:
        done = plural(self.done, "image")
        return SortError(
            f"{err.strerror or err} ({shown(where)}); {done} of {len(self.plan.items):,} sorted, the others "
            "left where they were: fix this and run the same sort again to finish, or undo it."
        )


def _is_under(path: object, folder: Path) -> bool:
    if path is None:
        return False
    return is_inside(os.path.abspath(os.fsdecode(path)), os.path.abspath(folder))
