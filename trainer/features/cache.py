"""The one on-disk cache of per-file entries (decoded pixels, or backbone embeddings), so a second
run on the same folder decodes and embeds nothing.

One ``.npz`` per (dataset folder, featurizer identity, preprocessing). An entry is keyed by the
file's path relative to the folder, its size and its mtime, so an edited or replaced file is done
again. Failures are cached too (with their reason), so a corrupt file is not re-read on every
run. Writes are atomic, and a cache that cannot be used for any reason
(``trainer.data.cache_file.read_arrays``) is a miss: ignored, never trusted, logged once and
rebuilt by the run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainer.common.checksum import key_digest
from trainer.data.cache_file import CacheMiss, Header, read_arrays, write_arrays
from trainer.features.types import CachedKind, Entry, Failure

log = logging.getLogger(__name__)

# Bump when any featurizer changes in a way that alters its entries.
CACHE_FORMAT = 2


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


def rows_problem(
    headers: dict[str, Header], data: str, dtype: np.dtype, row_shape: tuple[int, ...]
) -> str | None:
    """Why a cache's ``keys``, ``errors`` and ``data`` arrays are not what it stores, or None:
    ``keys`` and ``errors`` one string per entry, ``data`` one ``row_shape`` of ``dtype`` each."""
    (keys_shape, keys_dtype), (errors_shape, errors_dtype) = headers["keys"], headers["errors"]
    data_shape, data_dtype = headers[data]
    if keys_dtype.kind != "U" or errors_dtype.kind != "U" or len(keys_shape) != 1 or len(errors_shape) != 1:
        return "its keys or errors are not lists of text"
    if data_dtype != dtype:
        return f"its {data} are {data_dtype}, not {np.dtype(dtype)}"
    if data_shape[1:] != row_shape:
        return f"its {data} have shape {data_shape[1:]} per entry, not {row_shape}"
    if not keys_shape[0] == errors_shape[0] == data_shape[0]:
        return "its arrays have different lengths"
    return None


_logged: set[str] = set()


def note_miss(path: Path, reason: str) -> None:
    """Log a cache that cannot be used, once per file per process."""
    if str(path) not in _logged:
        _logged.add(str(path))
        log.warning("Ignoring the cache %s (%s); it will be rebuilt.", path, reason)


def store_quietly(path: Path, store: Callable[[], None]) -> str | None:
    """Run ``store``; a failure (full disk, a folder at the cache's name…) is logged and returned
    as a reason, never raised: the cache is an optimisation and must not fail a run."""
    try:
        store()
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        log.warning("Could not write the cache %s (%s).", path, reason)
        return reason
    return None


class FeatureCache:
    """Entries of one featurizer for one dataset folder."""

    def __init__(self, directory: Path, root: Path, featurizer: CachedKind) -> None:
        digest = key_digest(
            {
                "root": str(Path(root).resolve()),
                "features": featurizer.identity,
                "preprocess": featurizer.preprocess.to_dict(),
                "format": CACHE_FORMAT,
            }
        )
        self.path = Path(directory) / f"{featurizer.kind}-{featurizer.preprocess.size}-{digest}.npz"
        self.dtype = np.dtype(featurizer.entry_dtype)
        self.shape = tuple(featurizer.entry_shape)
        self.problem: str | None = None  # why the last load found the cache unusable

    def load(self) -> dict[str, Entry]:
        """The cached entries; empty (with ``problem`` set) when the cache cannot be used."""
        self.problem = None
        try:
            arrays = read_arrays(
                self.path,
                ("keys", "entries", "errors"),
                lambda headers: rows_problem(headers, "entries", self.dtype, self.shape),
            )
        except CacheMiss as miss:
            self.problem = str(miss)
            note_miss(self.path, self.problem)
            return {}
        if arrays is None:
            return {}
        keys, entries, errors = arrays["keys"], arrays["entries"], arrays["errors"]
        return {
            str(k): Failure(str(e), True) if e else v for k, v, e in zip(keys, entries, errors, strict=True)
        }

    def store(self, entries: dict[str, Entry]) -> None:
        keys = list(entries)
        values = np.zeros((len(keys), *self.shape), self.dtype)
        errors = []
        for i, key in enumerate(keys):
            value = entries[key]
            if isinstance(value, Failure):
                errors.append(value.reason)
            else:
                values[i] = value
                errors.append("")
        write_arrays(
            self.path,
            {"keys": np.array(keys, dtype=str), "entries": values, "errors": np.array(errors, dtype=str)},
        )
