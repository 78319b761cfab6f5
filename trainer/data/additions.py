"""Adding corrected images to a data set: the "see the mistakes, fix their labels, retrain" loop.

Each image the user marked with its true class is copied into the data set's folder for that
class (found as training finds it: ``faces/`` and ``comics/``, also under Kaggle's wrapper
folders; created when the data set has none yet). Nothing is overwritten (``name (2).jpg``), and
content the data set already holds is not copied again: in the right class folder it is
``already there``; in the other class folder its label there was wrong, so that file is moved to
the marked class (``relabelled``), as the same picture cannot belong to both classes. Files are
copied through ``trainer.common.outputs`` (temp file, fsync, no-replace rename, SHA-256 read back).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.checksum import file_sha256
from trainer.common.errors import DatasetError, FaceComicError
from trainer.common.new_files import ContentMismatchError, copy_file_new, free_names, move_file
from trainer.common.outputs import shown
from trainer.common.text import plural
from trainer.data.dataset import display_name, find_class_dirs
from trainer.data.walk import list_images

ADDED, ALREADY_THERE, RELABELLED = "added", "already there", "relabelled"


class AdditionError(FaceComicError):
    """The data set folder cannot take the images; one sentence."""


@dataclass(frozen=True, slots=True)
class Addition:
    source: str  # the image's file
    class_name: str  # its true class, as the model names it ("faces", "comics")


@dataclass(frozen=True, slots=True)
class ImageAdded:
    done: int
    total: int
    source: str
    destination: str  # "" when it was not added
    action: str  # ADDED, ALREADY_THERE, RELABELLED, or "" when it failed
    reason: str = ""  # why it failed


@dataclass(frozen=True, slots=True)
class AdditionSummary:
    dataset: str
    counts: dict[str, int] = field(default_factory=dict)  # class folder -> images added (copied)
    already_there: int = 0
    relabelled: tuple[tuple[str, str], ...] = ()  # (from, to) of files moved to their marked class
    failed: tuple[tuple[str, str], ...] = ()  # (source, reason)
    destinations: tuple[str, ...] = ()  # every file written

    @property
    def added(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """One or two sentences for a message box."""
        folders = ", ".join(f"{count:,} to {name}/" for name, count in self.counts.items() if count)
        parts = [f"Added {plural(self.added, 'image')} to {self.dataset}"]
        if folders:
            parts[0] += f" ({folders})"
        if self.already_there:
            parts.append(f"{self.already_there:,} already there (identical content), not copied again")
        if self.relabelled:
            parts.append(
                f"{len(self.relabelled):,} moved to the class you marked (they were in the other one)"
            )
        if self.failed:
            first = self.failed[0]
            parts.append(f"{len(self.failed):,} not added ({shown(first[0])}: {first[1]})")
        return "; ".join(parts) + "."


def existing_class_folders(dataset: Path) -> tuple[Path, ...]:
    """The data set's class folders as training finds them; else its visible subfolders."""
    try:
        return find_class_dirs(dataset)[0]
    except DatasetError:
        return (
            tuple(p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith("."))
            if dataset.is_dir()
            else ()
        )


def class_folders(dataset: Path, class_names: Sequence[str]) -> dict[str, Path]:
    """The folder of each class in ``dataset``: its class folder whose name or display name
    matches (``faces``, ``Faces``, ``face``), else a new ``dataset/<class>``."""
    found = existing_class_folders(dataset)
    folders: dict[str, Path] = {}
    for name in class_names:
        match = next(
            (
                d
                for d in found
                if d.name.lower() == name.lower() or display_name(d.name) == display_name(name)
            ),
            None,
        )
        folders[name] = match if match is not None else dataset / name
    return folders


class _DatasetContents:
    """The data set's images by size, hashed only when an image of the same size comes."""

    def __init__(self, folders: Iterable[Path]) -> None:
        self._sizes: dict[int, list[tuple[Path, Path]]] = {}
        self._hashes: dict[str, tuple[Path, Path]] = {}
        for folder in folders:
            if folder.is_dir():
                for path in list_images(folder)[0]:
                    with contextlib.suppress(OSError):
                        self._sizes.setdefault(path.stat().st_size, []).append((folder, path))

    def find(self, size: int, sha256: str) -> tuple[Path, Path] | None:
        """(class folder, file) of an image with this content, if the data set has one."""
        for name, path in self._sizes.pop(size, ()):
            with contextlib.suppress(OSError):
                self._hashes.setdefault(file_sha256(path), (name, path))
        return self._hashes.get(sha256)

    def moved(self, sha256: str, folder: Path, path: Path) -> None:
        self._hashes[sha256] = (folder, path)


def add_to_dataset(
    dataset: str | os.PathLike[str],
    additions: Iterable[Addition],
    *,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Generator[ImageAdded, None, AdditionSummary]:
    """Copy each image into its class folder of ``dataset`` (see the module docstring); one
    ``ImageAdded`` per image, the ``AdditionSummary`` returned. ``AdditionError`` when the folder
    is missing or not writable."""
    root = Path(dataset)
    additions = list(additions)
    if not root.is_dir():
        raise AdditionError(
            f"{shown(root)} is not a folder; choose the data set folder that holds the class folders."
        )
    if not os.access(root, os.W_OK | os.X_OK):
        raise AdditionError(f"Cannot add images to {shown(root)}: the folder is read-only.")
    folders = class_folders(root, sorted({a.class_name for a in additions}))
    contents = _DatasetContents({*existing_class_folders(root), *folders.values()})
    counts = {folder.name: 0 for folder in folders.values()}
    already = 0
    relabelled: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    written: list[str] = []
    for done, addition in enumerate(additions, 1):
        cancel.raise_if_cancelled()
        source, folder = Path(addition.source), folders[addition.class_name]
        try:
            sha = file_sha256(source)
            size = source.stat().st_size
            there = contents.find(size, sha)
            if there is not None and there[0] == folder:
                already += 1
                yield ImageAdded(done, len(additions), addition.source, str(there[1]), ALREADY_THERE)
                continue
            folder.mkdir(parents=True, exist_ok=True)
            if there is not None:  # in the other class folder: its label there was wrong
                target = _place(there[1], folder, move=True, sha=sha)
                contents.moved(sha, folder, target)
                relabelled.append((str(there[1]), str(target)))
                written.append(str(target))
                yield ImageAdded(done, len(additions), addition.source, str(target), RELABELLED)
                continue
            target = _place(source, folder, move=False, sha=sha)
        except (OSError, ContentMismatchError) as err:
            reason = str(err) if isinstance(err, ContentMismatchError) else (err.strerror or str(err))
            failed.append((addition.source, reason.rstrip(".")))
            yield ImageAdded(done, len(additions), addition.source, "", "", reason.rstrip("."))
            continue
        contents.moved(sha, folder, target)
        counts[folder.name] = counts.get(folder.name, 0) + 1
        written.append(str(target))
        yield ImageAdded(done, len(additions), addition.source, str(target), ADDED)
    return AdditionSummary(str(root), counts, already, tuple(relabelled), tuple(failed), tuple(written))


def _place(source: Path, folder: Path, *, move: bool, sha: str) -> Path:
    """Copy or move ``source`` into ``folder`` under its own name or the first free numbered one."""
    for target in free_names(folder, source.name):
        try:
            if move:
                move_file(source, target, expected_sha256=sha)
            else:
                copy_file_new(source, target, expected_sha256=sha)
        except FileExistsError:
            continue
        return target
    raise OSError(f"no free name for {source.name} in {shown(folder)}")
