"""Finding the two class folders in whatever the user points at, and listing their images."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trainer.common.errors import DatasetError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

# Folder names a user will recognise, shown instead of the raw folder name.
DISPLAY_NAMES = {"faces": "Real face", "face": "Real face", "comics": "Comic", "comic": "Comic"}


@dataclass(frozen=True, slots=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class DatasetScan:
    """What was found under ``root``: the class folders, in label order, and their images."""

    root: Path
    class_dirs: tuple[Path, ...]
    files: tuple[tuple[Path, ...], ...]
    skipped: tuple[SkippedFile, ...]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.class_dirs)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(f) for f in self.files)

    def pair_key(self, class_index: int, path: Path) -> str:
        """Files with the same key in both classes show the same person (face and its comic)."""
        prefix = os.fspath(self.class_dirs[class_index]).rstrip(os.sep) + os.sep
        rel = os.fspath(path)[len(prefix) :]  # string work: this runs for every file of a run
        return os.path.splitext(rel)[0].replace(os.sep, "/").lower()


def display_name(class_name: str) -> str:
    return DISPLAY_NAMES.get(class_name.lower(), class_name.replace("_", " ").capitalize())


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


def _walk(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """Every entry under ``folder``: ``(path, None)`` for an image, else ``(path, why skipped)``."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        for d in dirnames:
            if is_hidden(d):
                yield Path(dirpath, d), "hidden folder"
        dirnames[:] = sorted((d for d in dirnames if not is_hidden(d)), key=natural_key)
        for name in filenames:
            if is_hidden(name):
                yield Path(dirpath, name), "hidden file"
            elif not is_image_name(name):
                yield (
                    Path(dirpath, name),
                    f"not an image file ({os.path.splitext(name)[1] or 'no extension'})",
                )
            else:
                yield Path(dirpath, name), None


def list_images(folder: Path) -> tuple[list[Path], list[SkippedFile]]:
    """All image files under ``folder``, recursively, in natural order, plus what was skipped."""
    images: list[Path] = []
    skipped: list[SkippedFile] = []
    for path, reason in _walk(folder):
        if reason is None:
            images.append(path)
        else:
            skipped.append(SkippedFile(str(path), reason))
    prefix = len(os.fspath(folder).rstrip(os.sep)) + 1
    images.sort(key=lambda p: natural_key(os.fspath(p)[prefix:]))
    skipped.sort(key=lambda s: natural_key(s.path))
    return images, skipped


def _has_images(folder: Path) -> bool:
    return any(reason is None for _, reason in _walk(folder))


def _visible_subdirs(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    except PermissionError as err:
        raise DatasetError(f"Cannot read the folder {folder}: permission denied.") from err
    return [p for p in entries if p.is_dir() and not is_hidden(p.name)]


def _has_direct_images(folder: Path) -> bool:
    return any(p.is_file() and is_image_name(p.name) for p in folder.iterdir())


def find_class_dirs(root: Path) -> tuple[Path, ...]:
    """The two class folders: direct children, or deeper through single-child folders (Kaggle's
    ``face2comics_v2.0.0_by_Sxela/face2comics_v2.0.0_by_Sxela/{faces,comics}``)."""
    if not root.exists():
        raise DatasetError(f"The dataset folder {root} does not exist.")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder; choose the folder that holds the class folders.")
    folder = root
    while True:
        subdirs = _visible_subdirs(folder)
        # Descend through wrapper folders only (Kaggle nests the data set twice), never into a
        # folder that holds images itself: that one is a class.
        if len(subdirs) == 1 and not _has_direct_images(folder) and not _has_direct_images(subdirs[0]):
            folder = subdirs[0]
            continue
        break
    with_images = [d for d in subdirs if _has_images(d)]
    names = {d.name.lower(): d for d in with_images}
    if "faces" in names and "comics" in names and len(with_images) > 2:
        with_images = [names["comics"], names["faces"]]
    if len(with_images) == 2:
        return tuple(sorted(with_images, key=lambda p: natural_key(p.name)))
    if len(with_images) > 2:
        listed = ", ".join(d.name for d in with_images)
        raise DatasetError(
            f"{folder} has {len(with_images)} image folders ({listed}); FaceComic needs exactly two, "
            "one per class (for example faces/ and comics/)."
        )
    if len(with_images) == 1:
        empty = [d.name for d in subdirs if d not in with_images]
        hint = f" (the folder {empty[0]}/ has no images)" if empty else ""
        raise DatasetError(
            f"{folder} has only one class folder with images, {with_images[0].name}/{hint}; "
            "FaceComic needs two, for example faces/ and comics/."
        )
    raise DatasetError(
        f"{folder} has no class folders with images; expected two folders such as faces/ and comics/."
    )


def scan_dataset(root: str | os.PathLike[str]) -> DatasetScan:
    root_path = Path(root).expanduser()
    class_dirs = find_class_dirs(root_path)
    files: list[tuple[Path, ...]] = []
    skipped: list[SkippedFile] = []
    for class_dir in class_dirs:
        images, skipped_here = list_images(class_dir)
        files.append(tuple(images))
        skipped.extend(skipped_here)
    return DatasetScan(root_path, class_dirs, tuple(files), tuple(skipped))


def collect_image_paths(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Files as given plus images found recursively in folders, for prediction."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(list_images(path)[0])
        else:
            found.append(path)
    return found
