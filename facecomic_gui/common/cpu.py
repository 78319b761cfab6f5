"""The app's one rule for CPU threads: keep the window's core free.

A window that waits for a core stutters. Training gets one lane fewer than the cores. Prediction
keeps a lane per core: with the default (pretrained) features each lane decodes a few images and
runs the network on them, which spends most of its time in C++ without the GIL (onnxruntime or
torch), so the window's stalls stay under 100 ms (``make bench``). A pixel model's decode pool
gets one thread fewer than the cores: decoding alone is many short Python calls that fight the
window for the GIL (60-100 ms stalls per batch with a decode thread per core). Torch-free, so the
GUI thread can import it.
"""

from __future__ import annotations

from trainer.common.configs import DecodeOptions
from trainer.common.cpu import CpuBudget, cores

WINDOW_CORES = 1


def training_budget() -> CpuBudget:
    return CpuBudget.from_options(DecodeOptions(), keep_free=WINDOW_CORES)


def prediction_budget() -> CpuBudget:
    return CpuBudget(lanes=cores(), decode_workers=max(1, cores() - WINDOW_CORES))
