"""Which engine new backbone featurizers use, for a while (one benchmark run of one engine)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from trainer.features.backbone import BackboneFeaturizer


@contextlib.contextmanager
def backbone_engine(runtime: str | None = None, precision: str | None = None) -> Iterator[None]:
    """New backbone featurizers run on ``runtime`` ("torch", "auto") and compute ``precision``
    ("fp32", "int8") embeddings meanwhile; training, prediction and the caches all follow their
    identity. None leaves that setting as it is. Both are restored to what they were on exit."""
    previous = BackboneFeaturizer.default_runtime, BackboneFeaturizer.default_precision
    if runtime is not None:
        BackboneFeaturizer.default_runtime = runtime
    if precision is not None:
        BackboneFeaturizer.default_precision = precision
    try:
        yield
    finally:
        BackboneFeaturizer.default_runtime, BackboneFeaturizer.default_precision = previous
