"""Text that is safe to print: names escaped onto one line, long names shortened in messages,
counts pluralised and numbers without a negative zero. Shared by the CLIs, reports and the app."""

from __future__ import annotations

import math
import os
import re

# C0 controls, DEL and C1 controls, plus the two Unicode line and paragraph separators that
# ``str.splitlines`` (and some terminals) treat as line breaks.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
ELLIPSIS = "…"
MAX_WORD = 160  # longer runs of non-space characters in a message are shortened in the middle


def printable(text: str | os.PathLike[str]) -> str:
    """``text`` safe to encode as UTF-8: bytes of a file name that are not UTF-8 (legal on Linux,
    decoded by Python as lone surrogates) are shown as ``\\xe9``, so ``caf\\xe9.jpg`` is written
    instead of a ``UnicodeEncodeError`` that would lose every other row. Control characters stay:
    this is for the CSV, which quotes them exactly."""
    return os.fspath(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a C0 or C1 control character, DEL or a Unicode line separator."""
    return _CONTROL.search(text) is not None


def one_line(text: str | os.PathLike[str]) -> str:
    """``printable(text)`` with control characters escaped visibly (``\\n``, ``\\t``, ``\\x1b``),
    so a file or class name can never split a line, add a tab-separated field or send an escape
    sequence to the terminal."""
    return _CONTROL.sub(_escape, printable(text))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shorten(text: str, limit: int = MAX_WORD) -> str:
    """``text`` cut in the middle to at most ``limit`` characters (``abc…xyz``): the start of a
    long path and its file name both stay readable."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    tail = limit - 1 - head
    return text[:head] + ELLIPSIS + text[len(text) - tail :]


def shorten_words(message: str, limit: int = MAX_WORD) -> str:
    """A message with every overlong name in it (any run of non-space characters longer than
    ``limit``) shortened in the middle, so a 10,000-character file name cannot fill the screen."""
    return re.sub(rf"\S{{{limit + 1},}}", lambda m: shorten(m.group(), limit), message)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1,234 images``."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, never ``-0.0000``: a value that rounds to zero prints as
    zero, whatever its sign."""
    if not math.isfinite(value):
        return f"{value:.{digits}f}"
    rounded = round(value, digits)
    return f"{rounded + 0.0:.{digits}f}"  # -0.0 + 0.0 is 0.0


def split_numbers(text: str) -> list[str]:
    """A list of numbers as typed, "0.1, 0.01" or "0.1 0.01", to its items (not yet parsed)."""
    return text.replace(",", " ").split()
