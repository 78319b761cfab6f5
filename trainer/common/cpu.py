"""How many CPU threads a job may use: one owner for the decision, passed down explicitly.

Torch's thread count is process-wide state; setting it in one job leaked into the next (after an
in-app training run, predictions got one lane fewer). Jobs now get a ``CpuBudget`` and run their
heavy work on lanes of that size (``trainer.common.lanes``); nothing else sets torch's count, and
the backbone's onnxruntime session is made single-threaded (``trainer.features.onnx_backbone``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from trainer.common.configs import DecodeOptions


def cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class CpuBudget:
    """``lanes``: threads that each run their heavy work single-threaded (the backbone, on
    onnxruntime or torch, decoding its own images; the MLP's SGD on torch); ``decode_workers``:
    threads decoding images with Pillow, which releases the GIL (a decode pool: pixel features,
    the backbone on CUDA)."""

    lanes: int
    decode_workers: int

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.decode_workers < 1:
            raise ValueError("a CPU budget needs at least one lane and one decode worker")

    @classmethod
    def all_cores(cls) -> CpuBudget:
        return cls(cores(), cores())

    @classmethod
    def from_options(cls, options: DecodeOptions, *, keep_free: int = 0) -> CpuBudget:
        """``--threads`` and ``--workers`` (0: one per core, less ``keep_free``)."""
        spare = max(1, cores() - keep_free)
        return cls(
            options.threads if options.threads > 0 else spare,
            options.workers if options.workers > 0 else spare,
        )
