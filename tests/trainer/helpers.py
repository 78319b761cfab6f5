from __future__ import annotations

from collections.abc import Generator
from typing import Any


def collect(generator: Generator) -> tuple[list[Any], Any]:
    """All events of a generator and its return value."""
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value
