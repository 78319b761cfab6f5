"""Where each image goes before anything moves: predictions become a ``SortPlan`` (class
folders, ``unsure/<reason>/``), and the target and the sources are checked first, so a sort that
cannot finish does not start."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trainer.common.outputs import shown
from trainer.common.text import plural
from trainer.data.walk import FileId, SkippedFile, is_hidden, is_inside
from trainer.model.face_likeness import NOT_A_FACE
from trainer.model.novelty import LOW_CONFIDENCE, UNLIKE_TRAINING
from trainer.prediction.sort_log import (
    SortError,
)

UNSURE_FOLDER = "unsure"
REASON_FOLDERS = {
    NOT_A_FACE: "not-a-face",
    UNLIKE_TRAINING: "unlike-training-images",
    LOW_CONFIDENCE: "low-confidence",
}
DONE_BEFORE = "done before"  # a resumed run: this image was sorted before the interruption
# A target that cannot take any more files stops the run; other errors concern one image.
STOPPING_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


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
