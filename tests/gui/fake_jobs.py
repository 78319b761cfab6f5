"""A JobRunner that runs jobs inline when the test says so: sessions tested without Qt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainer.common.cancel import CancelToken
from trainer.common.errors import Cancelled


class ManualJobs:
    def __init__(self) -> None:
        self.pending: dict[str, list[Any]] = {}  # kind -> [func, args, callbacks, token]

    def start(self, kind: str, func: Callable, *args: Any, **callbacks: Any) -> None:
        self.drop(kind)
        self.pending[kind] = [func, args, callbacks, CancelToken()]

    def cancel(self, kind: str) -> None:
        if kind in self.pending:
            self.pending[kind][3].cancel()

    def drop(self, kind: str) -> None:
        job = self.pending.pop(kind, None)
        if job is not None:
            job[3].cancel()

    def is_running(self, kind: str) -> bool:
        return kind in self.pending

    def args(self, kind: str) -> tuple:
        return self.pending[kind][1]

    def run(self, kind: str, func: Callable | None = None) -> None:
        """Run the kind's job to the end, inline; ``func`` replaces its generator function."""
        job = self.pending[kind]
        real, args, callbacks, token = job

        def call(name: str, *values: Any) -> None:
            if self.pending.get(kind) is job and callbacks.get(name):
                callbacks[name](*values)

        try:
            generator = (func or real)(*args, cancel=token)
            while True:
                token.raise_if_cancelled()
                try:
                    value = next(generator)
                except StopIteration as stop:
                    call("on_returned", stop.value)
                    break
                call("on_yielded", value)
        except Cancelled:
            call("on_aborted")
        except Exception as err:
            call("on_errored", err)
        if self.pending.get(kind) is job:
            del self.pending[kind]
            if callbacks.get("on_finished"):
                callbacks["on_finished"]()
