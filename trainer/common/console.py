"""What every FaceComic console script shares: exit codes, SIGTERM handled like Ctrl+C, and
one line per message that any terminal or pipe can take."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from trainer.common.errors import describe_error
from trainer.common.text import printable

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as the shell reports a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a desktop logout), raised where Ctrl+C would be, so it
    unwinds the same way: generators closed, finished work kept in the cache, nothing half-written."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``Terminated`` in the main thread, as SIGINT raises
    ``KeyboardInterrupt``; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(_signum, _frame) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(prog: str, err: KeyboardInterrupt, what: str) -> int:
    """One line on stderr for Ctrl+C or SIGTERM, and the exit code the shell expects."""
    how = "stopped by SIGTERM" if isinstance(err, Terminated) else "cancelled"
    say(f"{prog}: {how}; {what}", sys.stderr)
    return EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_CANCELLED


def error(prog: str, err: BaseException) -> int:
    """One sentence on stderr, on one line, with overlong names shortened; exit 2."""
    say(f"{prog}: error: {describe_error(err)}", sys.stderr)
    return EXIT_USAGE


def for_stream(text: str | os.PathLike[str], stream: TextIO) -> str:
    """``text`` that ``stream`` can always encode: file-name bytes that are not UTF-8 become
    ``\\xff`` (:func:`printable`), and characters the stream's encoding lacks (an ASCII pipe) become
    ``\\u2026``-style escapes, instead of a ``UnicodeEncodeError`` that would end the run."""
    text = printable(text)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        pass
    return text


def say(text: str, stream: TextIO | None = None) -> None:
    """Print one line to ``stream`` (stdout by default) that it can encode."""
    stream = sys.stdout if stream is None else stream
    print(for_stream(text, stream), file=stream, flush=True)


class PipeSafeWriter:
    """Lines on ``stream`` (made safe for it with ``for_stream``) that stop, but let the work go
    on, when the stream is closed early (``| head``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def line(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(for_stream(text, self.stream), file=self.stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            # Point the stream at /dev/null so the interpreter's final flush does not complain.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
