"""Every file FaceComic writes goes through here: models (saved, autosaved to the runs folder),
the results JSON, the predictions CSV and its sidecar, ONNX exports, screenshots and the caches.
Files created at new names, never over another (``write_new``, ``rename_new``, ``move_file``),
live beside it in ``new_files.py`` and share its temp files and error sentences.

What is at the path decides how it is written (``inspect_output``):

- nothing, or a regular file: atomically. A temp file beside it is written, fsynced and renamed
  over the path, so a reader sees the old file or the new one, and a crash or a cancel leaves the
  old file. The replaced file's permission bits are kept. (A regular file with other hard links
  is replaced under this name only; the other names keep the old content.)
- a symlink: the file it points to is replaced atomically, as above, and the link stays a link.
  A link to nothing yet creates the file it names.
- a FIFO, a character device (a terminal, ``/dev/null``) or an open descriptor named
  ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` or ``/proc/self/fd/N`` (what ``--csv >(cat)``
  passes): written straight through, **not atomically**. There is nothing to rename over: the
  pipe or device is the destination itself, so a reader may see part of the data, and a failure
  half-way (a reader that went away, ``/dev/full``) leaves what was already written. Opening a
  FIFO waits for its reader, as ``cat > fifo`` does. A descriptor is written through a duplicate,
  so it keeps its offset and flags (``>>`` still appends).
- a folder, a block device or a socket: refused. An existing read-only file (no write bit, which
  even root must respect here): refused unless ``allow_read_only`` (the app asks the user first).

An output that is the same file as an input, or as another output, is refused, comparing
resolved paths and ``(st_dev, st_ino)``: no command may turn its own input into its output. Every
refusal is one ``OutputError`` sentence naming the file; the CLIs exit 2 with it and the app shows
it in a dialog. An ``OSError`` while writing names the path as given, never a temp file.

Caches are FaceComic's own files, at names it chose: ``owned=True`` replaces whatever is at such a
path, atomically (a rename never opens a FIFO, so it cannot hang), except a folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trainer.common.errors import FaceComicError
from trainer.common.text import one_line, shorten

NEW, FILE, STREAM, DESCRIPTOR = "new file", "file", "stream", "descriptor"
FileId = tuple[int, int]
# /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N: an open descriptor of this process.
_STD_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/(\d+)/fd)/(\d+)$")
_TEMP_PREFIX_CHARS = 100  # temp names stay under NAME_MAX however long the target's name is


class OutputError(FaceComicError):
    """An output that cannot or must not be written; the message is one sentence naming it."""


class ReadOnlyOutputError(OutputError):
    """The output exists and is read-only; the app may ask the user and retry with
    ``allow_read_only=True``."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a saved model or CSV should get the usual permissions instead.
_NEW_FILE_MODE = 0o666 & ~_read_umask()


@dataclass(frozen=True, slots=True)
class OutputTarget:
    """What is at an output path, and so how it is written (see the module docstring)."""

    path: Path  # as given
    kind: str  # NEW, FILE, STREAM or DESCRIPTOR
    write_path: Path  # where an atomic write lands: a link's target, else ``path``
    identity: FileId | None  # (st_dev, st_ino) of what is there now; None for a new file
    real: str  # the resolved path, to compare names of files that do not exist yet
    descriptor: int | None = None  # the open descriptor a DESCRIPTOR target writes through
    device: bool = False  # a character device: nothing stored there to destroy

    @property
    def atomic(self) -> bool:
        return self.kind in (NEW, FILE)

    @property
    def shown(self) -> str:
        return shown(self.path)


def shown(path: str | os.PathLike[str]) -> str:
    """A path as it appears in a message: on one line, and shortened when very long."""
    return shorten(one_line(path))


def file_identity(path: str | os.PathLike[str]) -> FileId | None:
    """``(st_dev, st_ino)`` of what ``path`` names (links followed), or None when nothing is there."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: the same resolved path, or the same device and inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    first = file_identity(a)
    return first is not None and first == file_identity(b)


def _descriptor_of(path: Path) -> int | None:
    """The descriptor number a ``/dev/stdout``-style path names in this process, if any."""
    text = os.fspath(path)
    if text in _STD_NAMES:
        return _STD_NAMES[text]
    match = _FD_PATH.match(text)
    if match is None or (match.group(1) is not None and int(match.group(1)) != os.getpid()):
        return None
    return int(match.group(2))


def _kind_name(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def describe_kind(path: str | os.PathLike[str]) -> str:
    """``"a named pipe"``, ``"a character device"``…: what a path that is not a regular file is,
    for "not a regular file (a named pipe)" messages."""
    try:
        return _kind_name(os.stat(path).st_mode)
    except OSError:
        return "not a regular file"


def inspect_output(
    path: str | os.PathLike[str],
    *,
    allow_read_only: bool = False,
    owned: bool = False,
    make_folders: bool = False,
) -> OutputTarget:
    """How ``path`` would be written; ``OutputError`` when it must not be. Reads nothing, writes
    nothing, opens nothing (a FIFO is not opened, so this never blocks)."""
    target = Path(path)
    name = shown(target)
    descriptor = None if owned else _descriptor_of(target)
    if descriptor is not None:
        try:
            st = os.fstat(descriptor)
        except OSError:
            raise OutputError(f"Cannot write {name}: descriptor {descriptor} is not open.") from None
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{name} is a folder; give a file name to write.")
        return OutputTarget(
            target, DESCRIPTOR, target, (st.st_dev, st.st_ino), os.fspath(target), descriptor,
            stat.S_ISCHR(st.st_mode),
        )  # fmt: skip
    try:
        st: os.stat_result | None = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (or a parent is a file: said below)
        st = None
    except OSError as err:  # a link loop, no permission to look
        raise OutputError(f"Cannot write {name}: {_reason(err)}.") from None
    except ValueError:  # a NUL in the name
        raise OutputError(f"Cannot write {name}: the name is not a valid file name.") from None
    is_link = os.path.islink(target)
    write_path = Path(os.path.realpath(target)) if is_link else target
    real = os.path.realpath(target)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{name} is a folder; give a file name to write.")
    if st is not None and not stat.S_ISREG(st.st_mode):
        if owned:  # a cache's own name: replace whatever is there (the link itself, if one)
            return _atomic_target(target, target, st, real, name, make_folders)
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            return OutputTarget(
                target, STREAM, target, (st.st_dev, st.st_ino), real, None, stat.S_ISCHR(st.st_mode)
            )
        raise OutputError(f"Cannot write {name}: it is {_kind_name(st.st_mode)}, not a file.")
    if st is not None and not owned and not allow_read_only and _read_only(write_path, st):
        raise ReadOnlyOutputError(
            f"Cannot write {name}: the file is read-only; make it writable or choose another name.",
            target,
        )
    return _atomic_target(target, write_path, st, real, name, make_folders)


def _atomic_target(
    target: Path, write_path: Path, st: os.stat_result | None, real: str, name: str, make_folders: bool
) -> OutputTarget:
    folder = write_path.parent
    whose = " of the file it links to" if write_path != target else ""
    if not folder.is_dir():
        if folder.exists():
            raise OutputError(f"Cannot write {name}: {shown(folder)} is not a folder.")
        if not make_folders:
            raise OutputError(f"Cannot write {name}: the folder {shown(folder)}{whose} does not exist.")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write {name}: the folder {shown(folder)}{whose} is not writable.")
    identity = None if st is None else (st.st_dev, st.st_ino)
    return OutputTarget(target, NEW if st is None else FILE, write_path, identity, real)


def _read_only(path: Path, st: os.stat_result) -> bool:
    # The mode bits, not just os.access: root may write anything, but 0444 still means "keep".
    return not st.st_mode & 0o222 or not os.access(path, os.W_OK)


def _reason(err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "it is a link that points back to itself"
    return (err.strerror or str(err)).rstrip(".").lower() if err.strerror else str(err)


def check_outputs(
    outputs: Mapping[str, str | os.PathLike[str] | None],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    allow_read_only: bool = False,
) -> list[OutputTarget]:
    """Check every output before any work starts; returns their targets in order.

    ``outputs`` maps a label (``"--out"``, ``"the CSV"``) to a path; None values are skipped.
    Refuses, with one ``OutputError`` sentence, an output that cannot be written, two outputs
    that are one file, and an output that is one of ``inputs``.
    """
    labelled = [(label, path) for label, path in outputs.items() if path is not None]
    targets = [inspect_output(path, allow_read_only=allow_read_only) for _, path in labelled]
    for i, (label_a, _) in enumerate(labelled):
        for j in range(i):
            a, b = targets[i], targets[j]
            if _same_target(a, b):
                raise OutputError(
                    f"{labelled[j][0]} and {label_a} name the same file ({b.shown}); give each its own name."
                )
    refuse_inputs(targets, inputs)
    return targets


def _same_target(a: OutputTarget, b: OutputTarget) -> bool:
    if a.device and b.device:
        return False  # a terminal or /dev/null twice: nothing stored there is lost
    if a.real == b.real:
        return True
    return a.identity is not None and a.identity == b.identity


def refuse_inputs(targets: Iterable[OutputTarget], inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """``OutputError`` when an output is the same file as one of ``inputs`` (any number of them,
    each compared by device and inode, so a link or a hard link to an input is caught too)."""
    existing = {t.identity: t for t in targets if t.identity is not None}
    if not existing:
        return  # new files: nothing there yet, so no input can be destroyed
    for item in inputs:
        hit = existing.get(file_identity(item)) if item is not None else None
        if hit is not None:
            also = "" if os.fspath(hit.path) == os.fspath(item) else f" {shown(item)}"
            raise OutputError(
                f"Cannot write {hit.shown}: it is the same file as the input{also}, which would be "
                "destroyed; choose another name for the output."
            )


# -- writing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    allow_read_only: bool = False,
    owned: bool = False,
    make_folders: bool = False,
) -> Iterator[IO]:
    """Open ``path`` for writing as the module docstring says (checked again now, as the disk may
    have changed since ``check_outputs``); the data is committed when the block ends without an
    exception. An atomic write that raises leaves the old file and no temp file."""
    target = inspect_output(path, allow_read_only=allow_read_only, owned=owned, make_folders=make_folders)
    refuse_inputs([target], inputs)
    try:
        if target.atomic:
            with _atomic(target, mode, make_folders) as handle:
                yield handle
        else:
            with _straight_through(target, mode) as handle:
                yield handle
    except OSError as err:
        raise named_error(err, target.path) from err


def write_bytes(path: str | os.PathLike[str], data: bytes, **options) -> Path:
    """Write ``data`` to ``path`` (see ``open_output`` for the options); returns the path."""
    with open_output(path, "wb", **options) as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, **options) -> Path:
    """Write ``text`` as UTF-8, newlines as given; see ``write_bytes``."""
    with open_output(path, "w", **options) as handle:
        handle.write(text)
    return Path(path)


def named_error(err: OSError, path: Path) -> OSError:
    """The same error, naming the path the user gave rather than a temp file or nothing."""
    if err.filename is not None and os.fspath(err.filename) == os.fspath(path):
        return err
    named = OSError(err.errno, err.strerror or str(err), os.fspath(path))
    return named if err.errno is not None else OSError(f"{err} ({path})")


def _handle(fd: int, mode: str) -> IO:
    binary = "b" in mode
    return os.fdopen(fd, mode, encoding=None if binary else "utf-8", newline=None if binary else "")


@contextlib.contextmanager
def _atomic(target: OutputTarget, mode: str, make_folders: bool) -> Iterator[IO]:
    final = target.write_path
    if make_folders:
        final.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(final, mode) as (handle, tmp):
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        _keep_owner_and_mode(tmp, final)
        os.replace(tmp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def temp_beside(final: Path, mode: str) -> Iterator[tuple[IO, Path]]:
    """A temp file in ``final``'s folder, removed unless the caller renamed it away."""
    fd, tmp_name = tempfile.mkstemp(prefix=temp_name_prefix(final), suffix=".part", dir=final.parent)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _NEW_FILE_MODE)
        with _handle(fd, mode) as handle:
            yield handle, tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _keep_owner_and_mode(tmp: Path, final: Path) -> None:
    """Replacing a file keeps its permission bits, and its owner where we may set it (root)."""
    try:
        st = os.stat(final)
    except OSError:
        return
    os.chmod(tmp, stat.S_IMODE(st.st_mode))
    if hasattr(os, "chown") and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):
            os.chown(tmp, st.st_uid, st.st_gid)


@contextlib.contextmanager
def _straight_through(target: OutputTarget, mode: str) -> Iterator[IO]:
    """A FIFO, a device or an open descriptor: written in place, not atomically."""
    if target.descriptor is not None:
        for stream in (sys.stdout, sys.stderr):  # keep what was printed before in order
            with contextlib.suppress(Exception):
                stream.flush()
        fd = os.dup(target.descriptor)
    else:
        # No O_CREAT (it exists) and no O_TRUNC (a device or pipe has nothing to truncate).
        fd = os.open(target.path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    with _handle(fd, mode) as handle:
        yield handle
        handle.flush()


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable; not possible everywhere, so best effort."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_name_prefix(target: str | os.PathLike[str]) -> str:
    """How the temp files written for ``target`` start (``.NAME.``, then random, then ``.part``):
    what a resumed job removes after a kill left one behind (``stale_temps``)."""
    return f".{Path(target).name[:_TEMP_PREFIX_CHARS]}."


def stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Temp files that a killed write to ``target`` may have left in its folder."""
    final = Path(target)
    prefix = temp_name_prefix(final)
    try:
        names = os.listdir(final.parent)
    except OSError:
        return []
    return [final.parent / n for n in names if n.startswith(prefix) and n.endswith(".part")]


def open_append(path: str | os.PathLike[str]) -> IO:
    """Open a log for appending text (UTF-8, file names kept exact with ``surrogateescape``): a
    regular file, created when missing. A folder, a FIFO, a device, or a read-only file is
    refused with one ``OutputError`` sentence. Rows written are not atomic as a whole file is;
    each caller writes whole lines and flushes them."""
    target = inspect_output(path)
    if not target.atomic:
        raise OutputError(f"Cannot write {target.shown}: it is not a regular file.")
    try:
        fd = os.open(
            target.write_path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
            _NEW_FILE_MODE,
        )
    except OSError as err:
        raise named_error(err, target.path) from err
    return os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape", newline="")
