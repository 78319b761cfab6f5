"""On-disk cache of decoded pixels, so a second run on the same folder skips decoding.

One ``.npz`` per (dataset folder, preprocessing settings). An entry is keyed by the file's path
relative to the folder, its size and its mtime, so an edited or replaced file is decoded again.
Failures are cached too (with their reason), so a corrupt file is not re-read on every run.
Writes are atomic, and an unreadable cache is ignored, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.common.atomic import atomic_write
from trainer.common.configs import PreprocessConfig

# Bump when decoding changes in a way that alters pixels.
CACHE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class CachedEntry:
    pixels: np.ndarray | None
    error: str | None


def file_keys(paths: list[Path], root: Path) -> list[str | None]:
    """``relpath|size|mtime_ns`` per file, or None when it cannot be stat'ed.

    String work only (no ``resolve()``): it runs for every file of every run, and in the app it
    runs beside the GUI thread.
    """
    prefix = os.fspath(root).rstrip(os.sep) + os.sep
    keys: list[str | None] = []
    for path in paths:
        text = os.fspath(path)
        try:
            stat = os.stat(text)
        except OSError:
            keys.append(None)
            continue
        rel = text[len(prefix) :] if text.startswith(prefix) else os.path.relpath(text, root)
        keys.append(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}")
    return keys


class DecodeCache:
    def __init__(self, directory: Path, root: Path, config: PreprocessConfig) -> None:
        self.root = Path(root)
        ident = json.dumps(
            {"root": str(self.root.resolve()), "preprocess": config.to_dict(), "format": CACHE_FORMAT},
            sort_keys=True,
        )
        digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
        self.path = Path(directory) / f"decoded-{digest}.npz"
        self.config = config

    def load(self) -> dict[str, CachedEntry]:
        if not self.path.exists():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                keys = data["keys"]
                pixels = data["pixels"]
                errors = data["errors"]
            size = self.config.size
            if pixels.shape[1:] != (size, size, 3) or not (len(keys) == len(pixels) == len(errors)):
                return {}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
            return {}  # a damaged cache is a cache miss; it is rewritten after decoding
        return {
            str(k): CachedEntry(None if e else p, str(e) or None)
            for k, p, e in zip(keys, pixels, errors, strict=True)
        }

    def store(self, entries: dict[str, CachedEntry]) -> None:
        size = self.config.size
        keys = list(entries)
        pixels = np.zeros((len(keys), size, size, 3), np.uint8)
        errors = []
        for i, key in enumerate(keys):
            entry = entries[key]
            if entry.pixels is not None:
                pixels[i] = entry.pixels
            errors.append(entry.error or "")
        with atomic_write(self.path) as handle:
            np.savez(
                handle,
                keys=np.array(keys, dtype=str),
                pixels=pixels,
                errors=np.array(errors, dtype=str),
            )
