"""Plain-Python observer events and the job-runner protocol the sessions use, so sessions run and
are tested without Qt (napari's way: models notify, views render)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol


class Emitter:
    """A list of callbacks; ``connect``/``disconnect``/``emit`` mirror a Qt signal's names, so code
    that waits on "something that can be connected" takes either."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):  # a callback may disconnect itself
            callback(*args)


class JobRunner(Protocol):
    """Runs generator functions (taking ``cancel``) off the caller's thread, latest only per kind:
    ``start`` supersedes the kind's running job, whose late reports are dropped. Callbacks run on
    the caller's thread; ``on_finished`` comes last, after exactly one of returned, errored or
    aborted."""

    def start(
        self,
        kind: str,
        func: Callable[..., Generator[Any, None, Any]],
        *args: Any,
        on_yielded: Callable[[Any], None] | None = None,
        on_returned: Callable[[Any], None] | None = None,
        on_errored: Callable[[BaseException], None] | None = None,
        on_aborted: Callable[[], None] | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None: ...

    def cancel(self, kind: str) -> None:
        """Ask the kind's job to stop; its ``on_aborted`` and ``on_finished`` still come."""

    def drop(self, kind: str) -> None:
        """Cancel the kind's job and ignore everything it still reports."""

    def is_running(self, kind: str) -> bool: ...
