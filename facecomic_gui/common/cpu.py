"""The app's one rule for CPU threads: keep the window's core free.

A window that waits for a core stutters. Training gets one lane fewer than the cores. Prediction
decodes with one thread fewer than the cores (decoding is many short Python calls that fight the
window for the GIL: 60-100 ms stalls per batch with a decode thread per core, ``make bench``) but
keeps a lane per core for the network, which runs in C++ without the GIL. Torch-free, so the GUI
thread can import it.
"""

from __future__ import annotations

from trainer.common.cpu import CpuBudget, cores

WINDOW_CORES = 1


def training_budget() -> CpuBudget:
    spare = max(1, cores() - WINDOW_CORES)
    return CpuBudget(lanes=spare, decode_workers=spare)


def prediction_budget() -> CpuBudget:
    return CpuBudget(lanes=cores(), decode_workers=max(1, cores() - WINDOW_CORES))
