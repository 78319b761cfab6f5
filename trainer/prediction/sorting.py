"""Sorting images into folders by their predictions, and undoing it, without ever losing a file.

``plan_sort`` turns predictions into a ``SortPlan``: each readable image goes to
``OUT/<class folder>/`` (``faces/``, ``comics/``: the model's class names) or, when its answer is
flagged, to ``OUT/unsure/<reason>/`` (``not-a-face``, ``unlike-training-images``,
``low-confidence``). ``execute_sort`` copies or moves the files (a generator of small events, as
training is; cancel is checked between files) and ``undo_sort`` takes them back, both through the
write-ahead log of ``sort_log`` and the no-replace moves of ``trainer.common.outputs``:

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
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Collection, Generator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.checksum import file_sha256
from trainer.common.outputs import (
    ContentMismatchError,
    copy_file_new,
    free_names,
    fsync_dir,
    move_file,
    shown,
)
from trainer.common.text import plural
from trainer.data.walk import FileId, SkippedFile, is_hidden, is_inside
from trainer.model.face_likeness import NOT_A_FACE
from trainer.model.novelty import LOW_CONFIDENCE, UNLIKE_TRAINING
from trainer.prediction.sort_log import (
    ALREADY_THERE,
    COPIED,
    COPYING,
    LOG_NAME,
    MOVED,
    MOVED_BACK,
    MOVING,
    MOVING_BACK,
    NOT_DONE,
    REMOVED_COPY,
    REMOVED_DUPLICATE,
    REMOVING_COPY,
    REMOVING_DUPLICATE,
    RESTORED,
    RESTORING,
    SORTED,
    STARTED_MOVE,
    UNDO_OF,
    LogRow,
    SortError,
    SortLog,
    holds,
    last_run,
    pending_steps,
    read_log,
    recover,
    undone_keys,
)

UNSURE_FOLDER = "unsure"
REASON_FOLDERS = {
    NOT_A_FACE: "not-a-face",
    UNLIKE_TRAINING: "unlike-training-images",
    LOW_CONFIDENCE: "low-confidence",
}
DONE_BEFORE = "done before"  # a resumed run: this image was sorted before the interruption
# A target that cannot take any more files stops the run; other errors concern one image.
_STOPPING_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


class PredictionLike(Protocol):
    source: str
    label: str | None
    confidence: float | None
    flag: str
    error: str | None


@dataclass(frozen=True, slots=True)
class SortItem:
    source: Path  # absolute
    folder: str  # relative to the target: "faces", "unsure/low-confidence"
    label: str
    confidence: float
    flag: str


@dataclass(frozen=True, slots=True)
class SortPlan:
    target: Path  # absolute
    move: bool
    items: tuple[SortItem, ...]
    left_out: tuple[SkippedFile, ...] = ()  # unreadable, pasted, links when moving: stay as they are
    class_names: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """Images per destination folder: the classes in the model's order, then the unsure
        reasons; folders that get no image are listed with 0."""
        counts = {name: 0 for name in self.class_names}
        counts.update({f"{UNSURE_FOLDER}/{reason}": 0 for reason in REASON_FOLDERS.values()})
        for item in self.items:
            counts[item.folder] = counts.get(item.folder, 0) + 1
        return counts


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortStarted:
    run: str
    target: str
    move: bool
    total: int
    dry_run: bool = False
    resumed: bool = False  # continues an interrupted run of the same kind
    recovered: int = 0  # steps of a killed run settled first


@dataclass(frozen=True, slots=True)
class ImageSorted:
    done: int  # images handled so far, this one included
    total: int
    source: str
    destination: str
    action: str  # "moved", "copied", "already there", "removed duplicate", "done before";
    # in a dry run "would move", "would copy", "already there", "would remove duplicate"
    folder: str


@dataclass(frozen=True, slots=True)
class ImageLeftInPlace:
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class SortSummary:
    target: str
    move: bool
    run: str
    total: int
    counts: dict[str, int] = field(default_factory=dict)  # folder -> images sorted into it
    actions: dict[str, int] = field(default_factory=dict)  # action -> images
    left: tuple[ImageLeftInPlace, ...] = ()
    dry_run: bool = False
    log: str = ""

    @property
    def sorted(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class UndoStarted:
    target: str
    total: int
    recovered: int = 0


@dataclass(frozen=True, slots=True)
class ImageRestored:
    done: int
    total: int
    source: str  # where the image is again
    destination: str  # where the sort had put it
    action: str  # "moved back", "removed copy", "restored"


@dataclass(frozen=True, slots=True)
class ImageNotRestored:
    source: str
    destination: str
    reason: str


@dataclass(frozen=True, slots=True)
class UndoSummary:
    target: str
    total: int
    actions: dict[str, int] = field(default_factory=dict)
    refused: tuple[ImageNotRestored, ...] = ()
    log: str = ""


SortEvent = SortStarted | ImageSorted | ImageLeftInPlace
UndoEvent = UndoStarted | ImageRestored | ImageNotRestored


# -- planning ----------------------------------------------------------------------------------


def folder_of(label: str, flag: str) -> str:
    """Where an answer goes: its class folder, or ``unsure/<reason>`` when it is flagged."""
    if not flag:
        return label
    return f"{UNSURE_FOLDER}/{REASON_FOLDERS.get(flag, flag.replace(' ', '-'))}"


def check_class_names(class_names: Iterable[str]) -> None:
    """Class names become folder names: each must be one plain name, and none ``unsure``."""
    for name in class_names:
        bad = (
            not name
            or name in (".", "..")
            or is_hidden(name)
            or any(c in name for c in "/\\\x00")
            or name.lower() == UNSURE_FOLDER
        )
        if bad:
            raise SortError(
                f"The model's class {shown(name)!r} cannot be a folder name beside {UNSURE_FOLDER}/; "
                "sort with a model whose classes are plain folder names."
            )


def check_target(
    target: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]
) -> dict[FileId, str]:
    """Refuse a target that is a file, not writable, or that holds one of the inputs (the sort
    would walk its own output). A target inside an input folder is fine: the returned folder
    identities are left out of the walk (``collect_images(prune=...)``)."""
    place = Path(os.path.abspath(target))
    if os.path.lexists(place) and not place.is_dir():
        raise SortError(
            f"{shown(place)} is not a folder; --sort-into needs a folder (it is created if missing)."
        )
    existing = next((p for p in [place, *place.parents] if p.exists()), None)
    if existing is not None and existing.is_dir() and not _writable(existing):
        raise SortError(f"Cannot sort into {shown(place)}: the folder {shown(existing)} is read-only.")
    real_target = os.path.realpath(place)
    prune: dict[FileId, str] = {}
    for item in inputs:
        real = os.path.realpath(item)
        if is_inside(real, real_target):
            raise SortError(
                f"{shown(item)} is inside the target folder {shown(place)}; sort into a folder outside "
                "the images, or inside one of their folders."
            )
    if place.is_dir():
        st = place.stat()
        prune[(st.st_dev, st.st_ino)] = "the sort's target folder, not an input"
    return prune


def _writable(folder: Path) -> bool:
    """Whether this process may add and remove names in ``folder``: what the system allows, as
    for ``mv`` (root may move out of a folder without write bits; a read-only mount refuses)."""
    return os.access(folder, os.W_OK | os.X_OK)


def plan_sort(
    predictions: Iterable[PredictionLike],
    target: str | os.PathLike[str],
    *,
    move: bool,
    class_names: Iterable[str] = (),
) -> SortPlan:
    """What goes where; touches nothing. Unreadable images, pasted images (no file) and, for a
    move, links (moving one would move the link, not the picture) are left out with a reason.
    ``SortError`` when moving is impossible: a source folder is read-only."""
    class_names = tuple(class_names)
    check_class_names(class_names)
    items: list[SortItem] = []
    left: list[SkippedFile] = []
    labels: list[str] = []
    for p in predictions:
        source = str(p.source)
        if p.error is not None or p.label is None:
            left.append(SkippedFile(source, f"unreadable ({p.error or 'no answer'})"))
            continue
        path = Path(os.path.abspath(source))
        try:
            st = os.lstat(path)
        except (OSError, ValueError):
            left.append(SkippedFile(source, "not a file (a pasted image, or it is gone)"))
            continue
        if stat.S_ISLNK(st.st_mode) and move:
            left.append(SkippedFile(source, "a link: moving it would move the link, not the picture"))
            continue
        if not stat.S_ISREG(os.stat(path).st_mode):
            left.append(SkippedFile(source, "not a regular file"))
            continue
        labels.append(p.label)
        items.append(SortItem(path, folder_of(p.label, p.flag), p.label, float(p.confidence or 0.0), p.flag))
    check_class_names(labels)
    if move:
        check_movable(item.source for item in items)
    names = class_names or tuple(dict.fromkeys(labels))
    return SortPlan(Path(os.path.abspath(target)), move, tuple(items), tuple(left), names)


def check_movable(paths: Iterable[str | os.PathLike[str]]) -> None:
    """``SortError`` when an image cannot be moved out of its folder (the folder is read-only to
    this process), naming the first such folder; checked before anything moves."""
    read_only: dict[Path, int] = {}
    for path in paths:
        folder = Path(os.path.abspath(path)).parent
        if folder in read_only or not _writable(folder):
            read_only[folder] = read_only.get(folder, 0) + 1
    if read_only:
        folder = next(iter(read_only))
        more = f" (and {plural(len(read_only) - 1, 'other folder')})" if len(read_only) > 1 else ""
        raise SortError(
            f"Cannot move {plural(sum(read_only.values()), 'image')}: the folder {shown(folder)}{more} "
            "is read-only, so nothing was moved; make it writable, or sort without --move to copy them."
        )


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
            if err.errno in _STOPPING_ERRORS or (
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


# -- undo ----------------------------------------------------------------------------------------


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
        if not holds(source, row.sha256):
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
        if isinstance(err, OSError) and err.errno in _STOPPING_ERRORS:
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
