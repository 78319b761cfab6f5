"""Errors whose message is one sentence a user can act on; the CLI and GUI show ``str(err)`` as is."""

from __future__ import annotations

import os
from pathlib import Path

from trainer.common.text import one_line, shorten, shorten_words


class FaceComicError(Exception):
    """Base class: the message names the file or folder and the problem."""


class DatasetError(FaceComicError):
    """The chosen folder cannot be used as a two-class data set."""


class ModelFileError(FaceComicError):
    """A file is not a valid FaceComic model."""


class ImageDecodeError(FaceComicError):
    """One image could not be read; ``reason`` is the part without the path."""

    def __init__(self, path: str, reason: str, *, lasting: bool = True) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        # False for problems of access (missing, no permission) that can go away without the
        # file changing; only lasting problems (the bytes are bad) may be remembered in a cache.
        self.lasting = lasting


class Cancelled(FaceComicError):
    """The user cancelled; nothing half-done was written."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)


def describe_os_error(err: OSError) -> str:
    """``No space left on device (/data/out.csv).``: the reason, and the file it concerns."""
    where = f" ({shorten(one_line(err.filename))})" if getattr(err, "filename", None) else ""
    return f"{err.strerror or err}{where}."


def describe_error(err: BaseException) -> str:
    """Any error as one sentence for a user, on one line, with overlong names shortened in the
    middle (the CLIs print it, the app shows it); a ``FaceComicError`` already is one."""
    if isinstance(err, FaceComicError):
        text = str(err)
    elif isinstance(err, MemoryError):
        text = "Out of memory: the data set is too large for this machine's RAM."
    elif isinstance(err, OSError):
        text = describe_os_error(err)
    else:
        text = f"Unexpected error: {type(err).__name__}: {err}".rstrip(": ") + "."
    return shorten_words(one_line(text))


def read_named_file(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a file the user named (``what``: "input list", "predictions file"); a missing
    file, a folder or one that cannot be read is one sentence naming it."""
    shown = one_line(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise FaceComicError(f"The {what} {shown} does not exist.") from None
    except IsADirectoryError:
        raise FaceComicError(f"The {what} {shown} is a folder; it must be a file.") from None
    except OSError as err:
        raise FaceComicError(f"The {what} {shown} cannot be read ({err.strerror or err}).") from None
