"""Finding the two class folders in whatever the user points at, and listing their images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainer.common.errors import DatasetError
from trainer.common.text import has_control, one_line, shorten
from trainer.data.walk import (  # noqa: F401  (re-exported: the rest of the app imports them from here)
    IMAGE_EXTENSIONS,
    SkippedFile,
    collect_images,
    is_hidden,
    is_image_name,
    is_inside,
    list_images,
    natural_key,
    walk_images,
)

# Folder names a user will recognise, shown instead of the raw folder name.
DISPLAY_NAMES = {"faces": "Real face", "face": "Real face", "comics": "Comic", "comic": "Comic"}


@dataclass(frozen=True, slots=True)
class DatasetScan:
    """What was found under ``root``: the class folders, in label order, and their images."""

    root: Path
    class_dirs: tuple[Path, ...]
    files: tuple[tuple[Path, ...], ...]
    skipped: tuple[SkippedFile, ...]
    ignored_dirs: tuple[Path, ...] = ()  # image folders beside the classes, not used

    @property
    def ignored(self) -> tuple[str, ...]:
        """The names of the image folders that are not classes (``other`` beside faces/comics)."""
        return tuple(d.name for d in self.ignored_dirs)

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


def _has_images(folder: Path) -> bool:
    return any(reason is None for _, reason in walk_images(folder))


def _visible_subdirs(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    except PermissionError as err:
        raise DatasetError(f"Cannot read the folder {folder}: permission denied.") from err
    # A link out of the folder (or to it, or to a sibling already listed) is never a class: the
    # data set stays inside the chosen folder and each real folder counts once.
    real_folder = os.path.realpath(folder)
    found: dict[str, Path] = {}
    for p in sorted(entries, key=Path.is_symlink):  # a real folder wins over a link to it
        real = os.path.realpath(p)
        if p.is_dir() and not is_hidden(p.name) and real != real_folder and is_inside(real, real_folder):
            found.setdefault(real, p)
    return sorted(found.values(), key=lambda p: natural_key(p.name))


def _has_direct_images(folder: Path) -> bool:
    return any(p.is_file() and is_image_name(p.name) for p in folder.iterdir())


def find_class_dirs(root: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The two class folders: direct children, or deeper through single-child folders (Kaggle's
    ``face2comics_v2.0.0_by_Sxela/face2comics_v2.0.0_by_Sxela/{faces,comics}``); and the other
    image folders beside them that are not used (``other/`` beside ``faces/`` and ``comics/``)."""
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
    ignored: list[Path] = []
    if "faces" in names and "comics" in names and len(with_images) > 2:
        ignored = [d for d in with_images if d not in (names["comics"], names["faces"])]
        with_images = [names["comics"], names["faces"]]
    if len(with_images) == 2:
        for d in with_images:
            if has_control(d.name):
                # Its name would become a class name, which a model file may not hold.
                raise DatasetError(
                    f"The class folder {shorten(one_line(d.name))}/ has a control character (such as a "
                    "newline, a tab or an escape) in its name; rename it."
                )
        return tuple(sorted(with_images, key=lambda p: natural_key(p.name))), tuple(ignored)
    if len(with_images) > 2:
        listed = ", ".join(shorten(one_line(d.name), 60) for d in with_images)
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
    class_dirs, ignored = find_class_dirs(root_path)
    files: list[tuple[Path, ...]] = []
    skipped: list[SkippedFile] = []
    for class_dir in class_dirs:
        images, skipped_here = list_images(class_dir)
        files.append(tuple(images))
        skipped.extend(skipped_here)
    return DatasetScan(root_path, class_dirs, tuple(files), tuple(skipped), ignored)


def collect_image_paths(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Files as given plus images found recursively in folders, each file once, for prediction."""
    return collect_images(paths)[0]
