"""New files at new names, never over another: numbered names (``photo (2).jpg``), creating a
file whole or not at all, and moving or copying people's files so that each stays whole at one of
its two places. Sorting, explanations, runs and dataset additions place files through here; the
writes that may replace a file (atomically) are ``outputs.py``'s.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from trainer.common.outputs import OutputError, fsync_dir, named_error, same_file, shown, temp_beside


def numbered(name: str, n: int) -> str:
    """The n-th name to try for ``name``: ``photo.jpg``, ``photo (2).jpg``, ``photo (3).jpg``…"""
    if n == 1:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not stem:  # no extension, or a dot file
        return f"{name} ({n})"
    return f"{stem} ({n}){dot}{suffix}"


MAX_NUMBERED = 10_000


def free_names(folder: str | os.PathLike[str], name: str) -> Iterator[Path]:
    """``folder/name``, ``name (2)``… (up to ``MAX_NUMBERED``), skipping those taken now; the
    caller still claims one atomically and goes on to the next when another writer got there."""
    for n in range(1, MAX_NUMBERED + 1):
        candidate = Path(folder) / numbered(name, n)
        if not os.path.lexists(candidate):
            yield candidate


def check_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` as a place to create files in; ``OutputError`` when it is missing, not a folder
    or not writable."""
    place = Path(folder)
    if not place.is_dir():
        reason = "is not a folder" if place.exists() else "does not exist"
        raise OutputError(f"Cannot write into {shown(place)}: the folder {reason}.")
    if not os.access(place, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write into {shown(place)}: the folder is not writable.")
    return place


def write_new(
    folder: str | os.PathLike[str],
    name: str,
    data: bytes,
    *,
    naming: Callable[[str, int], str] = numbered,
    make_folders: bool = False,
) -> Path:
    """Write ``data`` as a new file in ``folder`` and return its path: ``name``, or the first of
    ``naming(name, 2)``, ``naming(name, 3)``… that is free. Never replaces anything: the data goes
    to a synced temp file first, which then takes a free name (``link_new``), so the file appears
    whole or not at all."""
    place = Path(folder)
    if make_folders:
        place.mkdir(parents=True, exist_ok=True)
    check_folder(place)
    with temp_beside(place / name, "wb") as (handle, tmp):
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        return link_new(tmp, place, name, naming=naming)


def create_new(target: str | os.PathLike[str], data: bytes) -> Path:
    """Create ``target`` holding ``data``, whole or not at all, never over an existing file:
    ``FileExistsError`` when the name is taken (the caller picks another). The data goes to a
    synced temp file beside it, which then takes the name (``_claim``)."""
    final = Path(target)
    with temp_beside(final, "wb") as (handle, tmp):
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        _claim(tmp, final)
    fsync_dir(final.parent)
    return final


def link_new(
    source: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    name: str,
    *,
    naming: Callable[[str, int], str] = numbered,
) -> Path:
    """Give the file at ``source`` (in the same file system) the first free name in ``folder``
    (``name``, ``naming(name, 2)``…) and return it. Taking a name fails atomically when it
    exists, however many writers race, so nothing is ever replaced. ``source`` may still exist
    afterwards (a hard link) or not (a rename, where hard links are not supported): remove it with
    ``missing_ok`` to complete a move."""
    place = Path(folder)
    for n in range(1, MAX_NUMBERED + 1):
        candidate = place / naming(name, n)
        try:
            _claim(Path(source), candidate)
        except FileExistsError:
            continue
        except OSError as err:
            raise named_error(err, candidate) from err
        fsync_dir(place)
        return candidate
    raise OutputError(f"Cannot write {shown(place / name)}: {MAX_NUMBERED:,} numbered names are taken.")


def rename_new(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Rename ``source`` to ``target`` in the same file system, never over an existing file:
    ``FileExistsError`` when ``target`` is taken (by another file; the same file under another
    spelling on a case-insensitive disk is a plain rename)."""
    source, target = Path(source), Path(target)
    if os.path.lexists(target) and same_file(source, target):
        os.replace(source, target)
        return target
    rename_no_replace(source, target)
    return target


def _claim(source: Path, target: Path) -> None:
    """Give ``source``'s file the name ``target``, failing with ``FileExistsError`` when it is
    taken. Afterwards ``source`` may still exist (remove it with ``missing_ok``).

    A hard link where the file system has them; else an exclusive placeholder that ``source`` then
    replaces by a rename (the name is ours from the moment the placeholder exists)."""
    try:
        os.link(source, target, follow_symlinks=False)
        return
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        os.replace(source, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise


# -- moving and copying people's files, never over another ---------------------------------------
#
# Sorting images into folders moves the user's own files, so every step keeps each file whole at
# one of its two places. Within one file system a move is one atomic rename that fails rather than
# replace anything (``rename_no_replace``). Across file systems it is copy to a hidden temp name
# beside the target, fsync, rename to the target, read the target back and compare its SHA-256
# with the source's, and only then delete the source (``move_file``). A process killed at any
# point leaves the file at its source, or at its target, or (between the last two steps of a copy)
# whole at both: never at neither and never half-written, as the temp name is never the target's.


_RENAME_NOREPLACE = 1  # linux/fs.h
_AT_FDCWD = -100
_renameat2 = None  # the libc function, looked up once; False where there is none


def _libc_renameat2():
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if sys.platform.startswith("linux"):
            import ctypes

            with contextlib.suppress(OSError, AttributeError):
                function = ctypes.CDLL(None, use_errno=True).renameat2
                function.argtypes = [
                    ctypes.c_int,
                    ctypes.c_char_p,
                    ctypes.c_int,
                    ctypes.c_char_p,
                    ctypes.c_uint,
                ]
                function.restype = ctypes.c_int
                _renameat2 = function
    return _renameat2 or None


def rename_no_replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename ``source`` to ``target`` in one atomic step that fails with ``FileExistsError`` when
    ``target`` exists (Linux's ``renameat2(RENAME_NOREPLACE)``), and with ``OSError(EXDEV)`` when
    they are on different file systems. Where the file system lacks that flag, ``target`` is
    claimed by a hard link (or an exclusive placeholder) and ``source`` then removed, so the file
    may have both names for a moment but is never replaced, lost or half-written."""
    function = _libc_renameat2()
    if function is not None:
        import ctypes

        if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), os.fspath(target))
    _claim(Path(source), Path(target))
    Path(source).unlink(missing_ok=True)


class ContentMismatchError(OutputError):
    """A copy's SHA-256 differs from what it was copied from (or from the hash expected of it)."""


def copy_file_new(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
) -> str:
    """Copy ``source`` to the new file ``target`` and return the content's SHA-256: written to a
    temp file beside ``target``, fsynced, given its times and permission bits, renamed to
    ``target`` without replacing anything (``FileExistsError`` when it exists), then read back and
    compared. A copy that differs from the source (or from ``expected_sha256``: the source changed
    since it was hashed) is removed again and ``ContentMismatchError`` raised. An ``OSError`` (a
    full disk) leaves no temp file and no ``target``; it names ``target`` unless the source failed."""
    import hashlib
    import shutil

    source, final = Path(source), Path(target)
    digest = hashlib.sha256()
    try:
        reader = open(source, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise named_error(err, source) from err
    try:
        with reader, temp_beside(final, "wb") as (handle, tmp):
            while True:
                try:
                    block = reader.read(1 << 20)
                except OSError as err:
                    raise named_error(err, source) from err
                if not block:
                    break
                digest.update(block)
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
            with contextlib.suppress(OSError):
                shutil.copystat(source, tmp)
            copied = digest.hexdigest()
            if expected_sha256 is not None and copied != expected_sha256:
                raise ContentMismatchError(
                    f"{shown(source)} changed while it was being copied; nothing was written to {shown(final)}."
                )
            rename_no_replace(tmp, final)
    except (FileExistsError, OutputError):
        raise
    except OSError as err:
        if err.filename is not None and os.fspath(err.filename) == os.fspath(source):
            raise
        raise named_error(err, final) from err
    fsync_dir(final.parent)
    from trainer.common.checksum import file_sha256

    if file_sha256(final) != copied:  # read back: what is on disk is what was read
        with contextlib.suppress(OSError):
            final.unlink()
        raise ContentMismatchError(f"The copy {shown(final)} differs from {shown(source)}; it was removed.")
    return copied


def move_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
) -> str | None:
    """Move ``source`` to the new name ``target`` (``FileExistsError`` when it is taken). Within
    one file system: an atomic rename, and None is returned (the content is untouched). Across
    file systems: ``copy_file_new`` (temp, fsync, rename, SHA-256 read back and compared), then
    the source is deleted and the content's SHA-256 returned. When the source cannot be deleted
    (its folder is read-only), the verified copy is removed again and the error raised, so the
    file ends where it started."""
    source, final = Path(source), Path(target)
    try:
        rename_no_replace(source, final)
    except OSError as err:
        if err.errno != errno.EXDEV:
            if isinstance(err, FileExistsError):
                raise
            raise named_error(err, _blamed(err, source, final)) from err
    else:
        fsync_dir(final.parent)
        fsync_dir(source.parent)
        return None
    sha = copy_file_new(source, final, expected_sha256=expected_sha256)
    try:
        source.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        with contextlib.suppress(OSError):
            final.unlink()
        raise named_error(err, source) from err
    fsync_dir(source.parent)
    return sha


def _blamed(err: OSError, source: Path, final: Path) -> Path:
    """Which of the two paths a failed rename is about: the source when it is missing or its
    folder is the one that may not change, else the target."""
    if err.errno == errno.ENOENT and not os.path.lexists(source):
        return source
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and not os.access(
        source.parent, os.W_OK | os.X_OK
    ):
        return source
    return final
