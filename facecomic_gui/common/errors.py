"""Errors as one sentence for the user; the traceback goes to the debug log, never the window."""

from __future__ import annotations

from trainer.common.errors import FaceComicError
from trainer.common.text import one_line, shorten_words


def describe_error(err: BaseException) -> str:
    """One sentence for the user, on one line, with overlong names shortened in the middle; a
    FaceComicError already is one."""
    return shorten_words(one_line(_sentence(err)))


def _sentence(err: BaseException) -> str:
    if isinstance(err, FaceComicError):
        return str(err)
    if isinstance(err, MemoryError):
        return "Out of memory: the data set is too large for this machine's RAM."
    if isinstance(err, OSError):
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        return f"{err.strerror or err}{where}."
    return f"Unexpected error: {type(err).__name__}: {err}".rstrip(": ") + "."
