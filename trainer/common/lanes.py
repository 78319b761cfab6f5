"""Lanes: threads that each run torch with one thread of its own (and onnxruntime, whose
backbone session is single-threaded itself: ``trainer.features.onnx_backbone``).

Small tensor work (the backbone on a few images, the MLP on a batch of 64) scales badly inside one
op on a few cores: every op ends in a barrier, and when another program takes a core both threads
wait. Independent streams of work, one per lane, keep each core busy instead (``make bench``).
torch is imported lazily, so this module stays light.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor


class Lanes(ThreadPoolExecutor):
    """Threads that each run torch single-threaded; the caller's thread count is restored on exit.

    torch's thread count is process-wide for threads started later, so it is set to 1 while the
    lanes start and put back when they are done."""

    def __init__(self, lanes: int) -> None:
        import torch

        self._previous = torch.get_num_threads()
        super().__init__(max_workers=lanes, thread_name_prefix="facecomic-lane", initializer=_single_threaded)

    def __exit__(self, *exc: object) -> bool:
        import torch

        self.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._previous)
        return False


def _single_threaded() -> None:
    import torch

    torch.set_num_threads(1)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """The calling thread's block runs torch single-threaded, as a lane does, and the count is put
    back after: one image's ~100 small ops (a "Why?" map) took 0.15-0.9 s with two threads on two
    busy cores against 0.02 s with one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
