"""Reaching the cluster: a Dask ``Client`` to a running scheduler, or a ``LocalCluster`` started
here (``--cluster local``), and its end.

A local cluster starts one worker process per core with one thread each (``nthreads=1``): the
parallelism is the processes, as the local CLI's lanes are its threads. Worker processes are
forked from a forkserver that imported torch, onnxruntime and the trainer once
(``_use_forkserver``; spawned workers each took 2-10 s for it on a busy 2-core machine), never
from the driver, whose other threads may hold a lock at the moment of a fork. A worker that
dies is restarted by its nanny, and Dask's scheduler runs its lost tasks again on the others
(``distributed.scheduler.allowed-failures`` times).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from trainer.common.configs import ClusterOptions
from trainer.common.cpu import cores
from trainer.common.errors import FaceComicError
from trainer.common.text import one_line

PRELOAD = ["distributed", "trainer.cluster.preload"]
NO_DASK = "--cluster needs the cluster extra, which is not installed here: pip install 'facecomic[cluster]'."


@dataclass(frozen=True, slots=True)
class Connected:
    """The client, how many workers (threads) it has, what it is, and how long it took."""

    client: Any  # distributed.Client
    workers: int
    description: str
    seconds: float


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise FaceComicError(NO_DASK) from None
    return distributed


def _use_forkserver() -> None:
    """How local workers start without importing torch again: forked from a forkserver that
    imported it and the trainer once (4-5 s on 2 busy cores, started early by ``warm_up``).
    Not forked from the driver, though that took 0.3-0.6 s: Dask's event loop and its
    process-starting thread run beside the thread that forks, and a child forked while one of
    them held a lock (stderr's, once in the test suite) waits for it forever. Spawned workers
    each imported torch again: 7-8 s."""
    import dask
    from distributed.utils import get_mp_context

    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    get_mp_context().set_forkserver_preload(PRELOAD)


def warm_up(options: ClusterOptions) -> None:
    """For ``--cluster local``: start the forkserver now, so that its imports run while the
    driver checks the model and finds the images. Writes nothing; a remote cluster needs nothing."""
    if not options.local:
        return
    _dask()
    _use_forkserver()
    import multiprocessing.forkserver

    multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def connect(options: ClusterOptions) -> Iterator[Connected]:
    """The cluster ``options`` name, for the block; a local one is stopped after it. An address
    that answers nothing within ``options.timeout`` is one ``FaceComicError`` sentence."""
    distributed = _dask()
    start = time.perf_counter()
    if options.local:
        _use_forkserver()
        n = options.workers or cores()
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # its HTTP server on a free port, never a clash on 8787
            silence_logs=logging.ERROR,
        )
        try:
            client = distributed.Client(cluster, set_as_default=False)
            try:
                yield Connected(client, n, f"a local cluster of {n} workers", time.perf_counter() - start)
            finally:
                client.close()
        finally:
            cluster.close()
        return
    address = options.address or ""
    try:
        client = distributed.Client(address, timeout=f"{options.timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        reason = one_line(str(err).strip().splitlines()[0]) if str(err).strip() else type(err).__name__
        raise FaceComicError(
            f"Could not reach the Dask scheduler at {one_line(address)} ({reason[:200]})."
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=options.timeout)
        except (TimeoutError, OSError):
            raise FaceComicError(
                f"The Dask scheduler at {one_line(address)} has no workers "
                f"(none joined within {options.timeout:g} s); start some with dask worker {one_line(address)}."
            ) from None
        n = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
        yield Connected(
            client, n, f"the cluster at {one_line(address)} ({n} worker threads)", time.perf_counter() - start
        )
    finally:
        client.close()
