"""Walking a folder for images: each real folder and each file once, never out of the folder.

``os.walk(followlinks=True)`` follows a ``self -> .`` link until the path is too long and follows
a link into the other class folder, so one class counts the other's files. Here, links are
followed only when their target lies inside the folder being walked, every real folder and file is
identified by ``(st_dev, st_ino)`` and visited once, and every entry that is left out comes back
with a reason.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

FileId = tuple[int, int]  # (st_dev, st_ino): the same file or folder, whatever the path to it


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file left out of a run, and why (one sentence)."""

    path: str
    reason: str


def natural_key(text: str) -> tuple:
    """Sort key that puts ``2.jpg`` before ``10.jpg``."""
    return tuple(
        (0, int(part), part) if part.isdigit() else (1, part.lower(), part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX" or name.lower() == "thumbs.db"


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def file_id(st: os.stat_result) -> FileId:
    return st.st_dev, st.st_ino


def is_inside(path: str, folder: str) -> bool:
    """Whether the real path ``path`` is ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def walk_images(
    root: str | os.PathLike[str],
    *,
    seen_files: dict[FileId, Path] | None = None,
    prune: Mapping[FileId, str] | None = None,
) -> Iterator[tuple[Path, str | None]]:
    """Every entry under ``root``: ``(path, None)`` for an image to use, else ``(path, why not)``.

    Real folders are walked first and links after, so a file reachable both ways is listed under
    its real name. Pass one ``seen_files`` to several walks to list a file once across all.
    Folders in ``prune`` (by identity, with the reason) are listed as skipped, never entered: a
    sort's target folder inside the folder being sorted is not an input.
    """
    prune = prune or {}
    top = Path(root)
    real_top = os.path.realpath(top)
    shown_top = f"{top.name or real_top}/"
    seen_files = {} if seen_files is None else seen_files
    try:
        seen_dirs: dict[FileId, Path] = {file_id(os.stat(top)): top}
    except OSError:
        return
    folders: list[Path] = [top]
    links: deque[Path] = deque()

    def image_file(path: Path, st: os.stat_result) -> str | None:
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        first = seen_files.setdefault(file_id(st), path)
        return None if first is path else f"the same file as {first}"

    while folders or links:
        if folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: natural_key(e.name))
            except OSError as err:
                yield folder, f"cannot read this folder ({err.strerror or err})"
                continue
            for entry in entries:
                path = Path(folder, entry.name)
                try:
                    if is_hidden(entry.name):
                        yield path, "hidden folder" if entry.is_dir() else "hidden file"
                    elif entry.is_symlink():
                        links.append(path)  # after the real tree: real names win
                    elif entry.is_dir(follow_symlinks=False):
                        identity = file_id(entry.stat(follow_symlinks=False))
                        first = seen_dirs.setdefault(identity, path)
                        if identity in prune:
                            yield path, prune[identity]
                        elif first is path:
                            folders.append(path)
                        else:  # a bind mount of a folder already searched
                            yield path, f"a folder already searched ({first})"
                    elif not is_image_name(entry.name):
                        ext = os.path.splitext(entry.name)[1] or "no extension"
                        yield path, f"not an image file ({ext})"
                    else:
                        yield path, image_file(path, entry.stat(follow_symlinks=False))
                except OSError as err:  # vanished or unreadable while we looked
                    yield path, f"cannot read it ({err.strerror or err})"
            continue
        link = links.popleft()
        target = os.path.realpath(link)
        try:
            st = os.stat(link)
        except FileNotFoundError:
            yield link, f"broken link (nothing at {os.readlink(link)})"
            continue
        except OSError as err:  # ELOOP: a link that points at itself, directly or not
            yield link, f"unusable link ({err.strerror or err})"
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and file_id(st) in prune:
            yield link, prune[file_id(st)]
        elif not is_inside(target, real_top):
            yield link, f"link to a {'folder' if is_dir else 'file'} outside {shown_top} ({target})"
        elif is_dir:
            first = seen_dirs.get(file_id(st))
            if first is None:
                seen_dirs[file_id(st)] = link
                folders.append(link)
            elif is_inside(os.path.realpath(link.parent), target):
                yield link, f"link to a folder above it, a loop ({target})"
            else:
                yield link, f"link to a folder already searched ({first})"
        elif not is_image_name(link.name):
            yield link, f"not an image file ({os.path.splitext(link.name)[1] or 'no extension'})"
        else:
            yield link, image_file(link, st)


def list_images(
    folder: str | os.PathLike[str],
    *,
    seen_files: dict[FileId, Path] | None = None,
    prune: Mapping[FileId, str] | None = None,
) -> tuple[list[Path], list[SkippedFile]]:
    """All images under ``folder``, recursively, in natural order, plus what was skipped and why."""
    folder = Path(folder)
    images: list[Path] = []
    skipped: list[SkippedFile] = []
    for path, reason in walk_images(folder, seen_files=seen_files, prune=prune):
        if reason is None:
            images.append(path)
        else:
            skipped.append(SkippedFile(str(path), reason))
    prefix = len(os.fspath(folder).rstrip(os.sep)) + 1
    images.sort(key=lambda p: natural_key(os.fspath(p)[prefix:]))
    skipped.sort(key=lambda s: natural_key(s.path))
    return images, skipped


def collect_images(
    paths: list[str | os.PathLike[str]], *, prune: Mapping[FileId, str] | None = None
) -> tuple[list[Path], list[SkippedFile]]:
    """Files as given plus images found in folders, each file once across all of ``paths``;
    folders in ``prune`` are not entered (see ``walk_images``)."""
    seen_files: dict[FileId, Path] = {}
    seen_missing: set[Path] = set()
    found: list[Path] = []
    skipped: list[SkippedFile] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images, skipped_here = list_images(path, seen_files=seen_files, prune=prune)
            found.extend(images)
            skipped.extend(skipped_here)
            continue
        try:
            first = seen_files.setdefault(file_id(os.stat(path)), path)
        except OSError:  # missing or unreadable: the predictor reports it on its own row
            first = next((p for p in seen_missing if p == path), path)
            seen_missing.add(path)
        if first is path:
            found.append(path)
        else:
            skipped.append(SkippedFile(str(path), f"the same file as {first}"))
    return found, skipped
