"""The one place in the GUI that creates threads.

A ``GeneratorWorker`` runs a generator function in its own ``QThread`` and re-emits what it does
as Qt signals named as in superqt: ``started``, ``yielded`` (each value), ``returned`` (the
generator's return value), ``errored`` (the exception), ``aborted`` (cancelled), and always
``finished`` last. Cancelling is cooperative: the generator function receives a ``CancelToken`` as
its ``cancel`` keyword and checks it (the trainer does so every batch).

The worker object itself stays in the thread that created it (the GUI thread); a private runner
lives in the new thread and reaches the worker through queued connections. So every public signal
is emitted in the GUI thread, and any slot, lambdas included, runs there: widgets never block on
the work and never get touched from another thread.
"""

from __future__ import annotations

import atexit
import logging
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from trainer.common.cancel import CancelToken
from trainer.common.errors import Cancelled

JOIN_TIMEOUT_MS = 10_000
log = logging.getLogger(__name__)


class _Runner(QObject):
    """Lives in the worker thread; drives the generator and reports through queued signals."""

    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    done = Signal()

    def __init__(
        self, func: Callable[..., Generator[Any, None, Any]], args: tuple, kwargs: dict, token: CancelToken
    ) -> None:
        super().__init__()
        self._func, self._args, self._kwargs, self._token = func, args, kwargs, token

    @Slot()
    def run(self) -> None:
        generator = None
        try:
            generator = self._func(*self._args, cancel=self._token, **self._kwargs)
            while True:
                self._token.raise_if_cancelled()
                try:
                    value = next(generator)
                except StopIteration as stop:
                    self.returned.emit(stop.value)
                    break
                self.yielded.emit(value)
        except Cancelled:
            self.aborted.emit()
        except Exception as err:  # the GUI shows one sentence; the trace goes to the debug log
            log.debug("worker %s failed:\n%s", getattr(self._func, "__name__", "?"), traceback.format_exc())
            self.errored.emit(err)
        finally:
            if generator is not None:
                generator.close()  # runs the generator's own clean-up (the decode pool) here
            self.done.emit()
            # End the thread's event loop from here, so join() works even while the GUI thread
            # is blocked and cannot deliver ``done``.
            QThread.currentThread().quit()


class GeneratorWorker(QObject):
    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    finished = Signal()

    def __init__(self, func: Callable[..., Generator[Any, None, Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._token = CancelToken()
        self._thread = QThread()
        self._thread.setObjectName(getattr(func, "__name__", "worker"))
        self._runner = _Runner(func, args, kwargs, self._token)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        # Receivers are this object (GUI thread): queued connections, delivered in order.
        self._runner.yielded.connect(self._on_yielded)
        self._runner.returned.connect(self._on_returned)
        self._runner.errored.connect(self._on_errored)
        self._runner.aborted.connect(self._on_aborted)
        self._runner.done.connect(self._on_done)
        self._running = False

    def start(self) -> GeneratorWorker:
        self._running = True
        _KEEP.add(self)
        self._thread.start()
        self.started.emit()
        return self

    def cancel(self) -> None:
        self._token.cancel()

    def is_running(self) -> bool:
        """True from ``start()`` until ``finished`` has been emitted."""
        return self._running

    def join(self, timeout_ms: int = JOIN_TIMEOUT_MS) -> bool:
        """Wait for the thread to end (without delivering its pending signals); True when it has."""
        return self._thread.wait(timeout_ms) if self._thread.isRunning() else True

    def cancel_and_join(self, timeout_ms: int = JOIN_TIMEOUT_MS) -> bool:
        self.cancel()
        return self.join(timeout_ms)

    @Slot(object)
    def _on_yielded(self, value: object) -> None:
        self.yielded.emit(value)

    @Slot(object)
    def _on_returned(self, value: object) -> None:
        self.returned.emit(value)

    @Slot(object)
    def _on_errored(self, err: object) -> None:
        self.errored.emit(err)

    @Slot()
    def _on_aborted(self) -> None:
        self.aborted.emit()

    @Slot()
    def _on_done(self) -> None:
        self._thread.wait()  # the runner has returned and quit the loop, so this is immediate
        self._running = False
        self.finished.emit()
        _KEEP.discard(self)


# Every started worker is referenced here until its thread has ended, so a QThread is never
# destroyed while running, whoever drops their own reference first.
_KEEP: set[GeneratorWorker] = set()


@atexit.register
def _join_all_at_exit() -> None:
    """A script that never closes its window still exits cleanly: cancel and join what runs."""
    cancel_and_join_all()


def running_workers() -> int:
    return sum(1 for w in _KEEP if w.is_running())


def cancel_and_join_all(timeout_ms: int = JOIN_TIMEOUT_MS) -> bool:
    """Cancel every running worker, superseded ones included, and wait for all; True when all
    ended. The app has one main window, and closing it ends all its work."""
    workers = list(_KEEP)
    for worker in workers:
        worker.cancel()
    ended = True
    for worker in workers:
        if not worker.join(timeout_ms):
            log.warning("a %s worker did not stop within %d ms", worker._thread.objectName(), timeout_ms)
            ended = False
    return ended
