"""The one place in the GUI that creates threads.

A ``GeneratorWorker`` runs a generator function in its own ``QThread`` and re-emits what it does
as Qt signals named as in superqt: ``started``, ``yielded`` (each value), ``returned`` (the
generator's return value), ``errored`` (the exception), ``aborted`` (cancelled), and always
``finished`` last. Cancelling is cooperative: the generator function receives a ``CancelToken`` as
its ``cancel`` keyword and checks it (the trainer does so every batch).

The worker object itself stays in the thread that created it (the GUI thread); a private runner
lives in the new thread and reaches the worker through queued connections. So every public signal
is emitted in the GUI thread, and any slot runs there: widgets never block on the work and never
get touched from another thread.

``LatestJobs`` runs the sessions' jobs, latest only per kind: a new scan supersedes the running
one, which is cancelled (never joined) and whose late signals are ignored. It connects bound
methods, never lambdas holding a worker, and drops every reference when a job finishes, so a
finished worker, its thread and its arguments (pasted images included) can be collected.
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
        func, args, kwargs = self._func, self._args, self._kwargs
        self._func, self._args, self._kwargs = None, (), {}  # nothing here outlives the run
        try:
            generator = func(*args, cancel=self._token, **kwargs)
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
            log.debug("worker %s failed:\n%s", getattr(func, "__name__", "?"), traceback.format_exc())
            self.errored.emit(err)
        finally:
            if generator is not None:
                generator.close()  # runs the generator's own clean-up (the decode pool) here
            generator = func = args = kwargs = None
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

    @property
    def name(self) -> str:
        return self._thread.objectName()

    @property
    def qthread(self) -> QThread:
        """The thread it runs in (read-only use: tests check it is released)."""
        return self._thread

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


class _Job(QObject):
    """One job of ``LatestJobs``: forwards its worker's signals to the callbacks while it is the
    kind's current job, then lets go of the worker and the callbacks."""

    def __init__(self, owner: LatestJobs, kind: str, worker: GeneratorWorker, callbacks: dict) -> None:
        super().__init__()
        self.kind = kind
        self._owner: LatestJobs | None = owner
        self.worker: GeneratorWorker | None = worker
        self._callbacks = callbacks
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)

    def _current(self) -> bool:
        return self._owner is not None and self._owner._current.get(self.kind) is self

    def _forward(self, name: str, *args: Any) -> None:
        callback = self._callbacks.get(name)
        if callback is not None and self._current():
            callback(*args)

    @Slot(object)
    def _on_yielded(self, value: object) -> None:
        self._forward("on_yielded", value)

    @Slot(object)
    def _on_returned(self, value: object) -> None:
        self._forward("on_returned", value)

    @Slot(object)
    def _on_errored(self, err: object) -> None:
        self._forward("on_errored", err)

    @Slot()
    def _on_aborted(self) -> None:
        self._forward("on_aborted")

    @Slot()
    def _on_finished(self) -> None:
        current = self._current()
        callback = self._callbacks.get("on_finished")
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._forget(self)  # first, so the callback may start the kind's next job
        worker, self.worker, self._callbacks = self.worker, None, {}
        if worker is not None:
            for signal, slot in (
                (worker.yielded, self._on_yielded),
                (worker.returned, self._on_returned),
                (worker.errored, self._on_errored),
                (worker.aborted, self._on_aborted),
                (worker.finished, self._on_finished),
            ):
                signal.disconnect(slot)
        if current and callback is not None:
            callback()


class LatestJobs(QObject):
    """Runs jobs by kind ("scan", "train", ...), latest only; implements the sessions' JobRunner."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._current: dict[str, _Job] = {}
        self._live: set[_Job] = set()  # started and not yet finished, superseded ones included

    def start(
        self, kind: str, func: Callable[..., Generator[Any, None, Any]], *args: Any, **callbacks: Any
    ) -> None:
        self.drop(kind)
        job = _Job(self, kind, GeneratorWorker(func, *args), callbacks)
        self._current[kind] = job
        self._live.add(job)
        job.worker.start()

    def cancel(self, kind: str) -> None:
        job = self._current.get(kind)
        if job is not None and job.worker is not None:
            job.worker.cancel()

    def drop(self, kind: str) -> None:
        job = self._current.pop(kind, None)
        if job is not None and job.worker is not None:
            job.worker.cancel()  # not joined: its thread ends by itself; its reports are ignored

    def is_running(self, kind: str) -> bool:
        return kind in self._current

    def live_jobs(self) -> int:
        """Jobs whose worker has not finished yet, superseded ones included."""
        return len(self._live)

    def _forget(self, job: _Job) -> None:
        if self._current.get(job.kind) is job:
            del self._current[job.kind]
        self._live.discard(job)


# Every started worker is referenced here until its thread has ended, so a QThread is never
# destroyed while running, whoever drops their own reference first.
_KEEP: set[GeneratorWorker] = set()


@atexit.register
def _join_all_at_exit() -> None:
    """A script that never closes its window still exits cleanly: cancel and join what runs."""
    cancel_and_join_all()


def running_workers() -> int:
    """Started workers that have not emitted ``finished`` yet."""
    return sum(1 for w in _KEEP if w.is_running())


def running_threads() -> int:
    """Started workers whose thread still runs (``finished`` may still be queued)."""
    return sum(1 for w in _KEEP if w._thread.isRunning())


def cancel_and_join_all(timeout_ms: int = JOIN_TIMEOUT_MS) -> bool:
    """Cancel every running worker, superseded ones included, and wait for all; True when all
    ended. The app has one main window, and closing it ends all its work."""
    workers = list(_KEEP)
    for worker in workers:
        worker.cancel()
    ended = True
    for worker in workers:
        if not worker.join(timeout_ms):
            log.warning("a %s worker did not stop within %d ms", worker.name, timeout_ms)
            ended = False
    return ended
