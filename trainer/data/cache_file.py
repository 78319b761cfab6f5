"""Reading and writing a cache ``.npz`` without trusting it: a cache is an optimisation, never a
reason for a run to fail or hang.

``read_arrays`` refuses a path that is not a regular file (opened non-blocking, so a FIFO cannot
hang the run), reads each member's ``.npy`` header from the zip before anything is allocated, and
checks its dtype and shape against what the caller expects, and that the member really holds the
bytes its header declares. A member that is compressed (with a method zipfile may not even know),
a header claiming a shape of 10^11 rows, float64 "pixels": each is a ``CacheMiss`` with the
reason, as is any other exception while reading. The caller treats a miss as an empty cache and
rebuilds it; ``write_arrays`` replaces whatever was at the path, atomically.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from trainer.common.outputs import describe_kind, open_output

Header = tuple[tuple[int, ...], np.dtype]  # shape, dtype of one stored array
# Given every member's header, the reason they are unusable, or None when they are as expected.
HeaderCheck = Callable[[Mapping[str, Header]], str | None]
_READ_CHUNK = 1 << 24


class CacheMiss(Exception):
    """The cache exists but cannot be used; ``str(miss)`` says why, in a few words."""


def read_arrays(path: Path, names: tuple[str, ...], check: HeaderCheck) -> dict[str, np.ndarray] | None:
    """The arrays ``names`` of the ``.npz`` at ``path``; None when there is no file there.

    Raises ``CacheMiss`` for anything else that is not a healthy cache, whatever went wrong.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except Exception as err:
        raise CacheMiss(_describe(err)) from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CacheMiss(f"not a regular file: {describe_kind(path)}")
        with os.fdopen(fd, "rb") as handle, zipfile.ZipFile(handle) as archive:
            members = {name: _member(archive, name) for name in names}
            headers = {name: _header(archive, info) for name, info in members.items()}
            problem = check({name: (shape, dtype) for name, (shape, dtype, _) in headers.items()})
            if problem:
                raise CacheMiss(problem)
            return {name: _read(archive, members[name], *headers[name]) for name in names}
    except CacheMiss:
        raise
    except Exception as err:  # zipfile, numpy, the disk: any of it is a miss, never a failed run
        raise CacheMiss(_describe(err)) from err


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Store ``arrays`` uncompressed, replacing whatever is at ``path`` (the cache's own name),
    atomically; the cache folder is created when missing."""
    with open_output(path, "wb", owned=True, make_folders=True) as handle:
        np.savez(handle, **arrays)


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise CacheMiss(f"it has no {name!r} array") from None
    if info.compress_type != zipfile.ZIP_STORED:
        # FaceComic stores arrays uncompressed; anything else (deflate, or a method number zipfile
        # does not know at all) was not written by it.
        raise CacheMiss(f"its {name!r} array uses zip compression method {info.compress_type}, not stored")
    return info


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and the header's length in bytes, read without reading the data."""
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(member)
        else:
            raise CacheMiss(f"{info.filename} has .npy format {version}, not one FaceComic writes")
        offset = member.tell()
    if fortran or dtype.hasobject:
        raise CacheMiss(f"{info.filename} is not a plain C-ordered array")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise CacheMiss(f"{info.filename} has an invalid shape {shape}")
    stored = info.file_size - offset
    declared = math.prod(shape) * dtype.itemsize
    if declared != stored:
        raise CacheMiss(f"{info.filename} declares {declared:,} bytes of data but holds {max(stored, 0):,}")
    return shape, dtype, offset


def _read(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple[int, ...], dtype: np.dtype, offset: int
) -> np.ndarray:
    """The member's data, into an array allocated only now that its size is known to be real."""
    array = np.empty(shape, dtype)
    view = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
    with archive.open(info) as member:
        member.read(offset)
        filled = 0
        while filled < len(view):
            got = member.readinto(view[filled : filled + _READ_CHUNK])
            if not got:
                raise CacheMiss(f"{info.filename} ends early")
            filled += got
    return array
