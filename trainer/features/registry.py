"""The feature kinds by name: the only place that knows which name is which featurizer.

Model files record a featurizer's ``identity`` (``{"kind": ..., ...}``); ``for_model`` maps it
back, and ``resolved_config`` says what "auto" in a ``TrainConfig`` means for its kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from trainer.common.configs import FEATURE_KINDS, PreprocessConfig, TrainConfig
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.base import Featurizer
from trainer.features.pixels import PixelFeaturizer

FEATURIZERS: dict[str, type[Featurizer]] = {"pretrained": BackboneFeaturizer, "pixels": PixelFeaturizer}
for _kind, _cls in FEATURIZERS.items():
    _cls.kind = _kind
assert tuple(FEATURIZERS) == FEATURE_KINDS, "the CLI's choices and the registry must agree"


def featurizer_class(kind: str) -> type[Featurizer]:
    try:
        return FEATURIZERS[kind]
    except KeyError:
        raise ValueError(f"unknown feature kind {kind!r} (known: {', '.join(FEATURIZERS)})") from None


def featurizer_for(kind: str, preprocess: PreprocessConfig | None = None) -> Featurizer:
    """The featurizer of ``kind``, decoding with ``preprocess`` (default: the kind's own)."""
    return featurizer_class(kind)(preprocess)


def for_model(features: Mapping[str, Any] | None, preprocess: PreprocessConfig) -> Featurizer:
    """The featurizer a model file's ``features`` names; ``ValueError`` with the reason when this
    app cannot serve it (unknown kind, other backbone, weights or precision). Files from before feature kinds
    have no ``features``: the paper's pixels."""
    features = features if features is not None else {"kind": "pixels"}
    if not isinstance(features, Mapping) or features.get("kind") not in FEATURIZERS:
        raise ValueError(f"its feature kind is not one of {', '.join(FEATURIZERS)}")
    featurizer = FEATURIZERS[features["kind"]].from_identity(features, preprocess)
    featurizer.check_identity(features)
    return featurizer


def resolved_config(config: TrainConfig) -> TrainConfig:
    """``config`` with every "auto" replaced by what it means for its feature kind; runs and model
    files keep the resolved form, so a file says exactly what was done."""
    auto = featurizer_class(config.features).auto_recipe
    head = auto.head if config.head == "auto" else config.head
    if head == "linear" and config.heads > 1:
        raise ValueError(
            f"{config.heads} heads make an MLP ensemble, but the head for {config.features} features "
            "is linear (one model); add --head mlp"
        )
    return dataclasses.replace(
        config,
        head=head,
        # The MLP's ensemble size: an explicit count, else the features' own; the linear head is one.
        heads=1 if head == "linear" else config.heads or auto.heads,
        refit_all=(head == "linear") if config.refit_all is None else config.refit_all,
        select_by=auto.select_by if config.select_by == "auto" else config.select_by,
        class_prior=auto.class_prior if config.class_prior == "auto" else config.class_prior,
        split_seed=config.seed if config.split_seed is None else config.split_seed,
    )
