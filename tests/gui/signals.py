"""Waiting for a signal that a chain of jobs emits later, without a window in which it is missed.

``with qtbot.waitSignal(s): pass`` placed after another wait listens only from that line on: an
emission that came while the earlier wait's event loop ran is gone. A ``Recorder`` made before
the action that starts the chain keeps every emission, so waiting on it is waiting on state.
"""

from __future__ import annotations

from typing import Any


class Recorder:
    """The arguments of every emission of ``signal`` from the moment this object is made."""

    def __init__(self, signal) -> None:
        self.emitted: list[tuple[Any, ...]] = []
        signal.connect(self._record)

    def _record(self, *args: Any) -> None:
        self.emitted.append(args)

    def wait(self, qtbot, timeout: int, count: int = 1) -> tuple[Any, ...]:
        """The arguments of emission number ``count``, waiting up to ``timeout`` ms for it (at
        once when it already came)."""
        qtbot.waitUntil(lambda: len(self.emitted) >= count, timeout=timeout)
        return self.emitted[count - 1]
