"""Which torch device a job runs on: one rule for training and extraction alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.common.errors import FaceComicError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU; ``cuda`` without one is one sentence."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FaceComicError("CUDA was requested (--device cuda) but no CUDA device is available.")
    return torch.device(name)
