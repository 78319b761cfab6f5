"""Imported once by the forkserver that local workers are forked from where they are not forked
from the driver itself (``engine``, off Linux), so that no worker imports torch, onnxruntime and
the trainer again; importing it does nothing else."""

from __future__ import annotations

import onnxruntime  # noqa: F401
import torch  # noqa: F401

import trainer.cluster.worker
import trainer.prediction.predictor  # noqa: F401
