"""Checking a model file before anything is built from it: its metadata (format, features,
calibration, detectors, head, class prior) and the tensors its declared architecture implies, all
from the header, so a crafted file cannot make the app allocate terabytes or run code.
``trainer.model.model_file`` reads and writes the files; every check lives here."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from trainer.common.configs import HEAD_KINDS, PreprocessConfig
from trainer.common.text import has_control, one_line, shorten
from trainer.features.base import Featurizer
from trainer.model.calibration import MAX_TEMPERATURE, MIN_TEMPERATURE
from trainer.model.face_likeness import METHOD as FACE_LIKENESS_METHOD
from trainer.model.face_likeness import PREFIX as FACE_LIKENESS_PREFIX
from trainer.model.mlp import mlp_tensor_shapes
from trainer.model.novelty import METHOD as NOVELTY_METHOD

FORMAT_NAME = "facecomic-model"
# 2 added ``features`` (pixels or pretrained), ``calibration`` and ``novelty``; 3 added ensembles
# (``architecture.heads``, stacked weights), ``class_prior`` and ``face_likeness``. 1 and 2 still load.
FORMAT_VERSION = 3

NOVELTY_PREFIX = "novelty."
DETECTOR_PREFIXES = (NOVELTY_PREFIX, FACE_LIKENESS_PREFIX)
MAX_NOVELTY_REFERENCES = 4096
METADATA_KEY = "facecomic"
MAX_MODEL_BYTES = 512 * 1024 * 1024  # far above any MLP here; refuses to read arbitrary huge files


TensorSpec = Callable[[dict[str, Any]], dict[str, tuple[int, ...]]]


def _mlp_tensors(metadata: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    architecture = metadata["architecture"]
    shapes = mlp_tensor_shapes(architecture)
    given = model_featurizer(metadata).row_size
    if architecture["input_size"] != given:
        raise ValueError(
            f"its architecture takes {architecture['input_size']:,} inputs, but its features give "
            f"{given:,} values per image"
        )
    novelty = metadata.get("novelty")
    if novelty is not None:
        references = novelty.get("references") if isinstance(novelty, dict) else None
        if not isinstance(references, int) or isinstance(references, bool):
            raise ValueError("its novelty settings lack the number of references")
        if not 1 <= references <= MAX_NOVELTY_REFERENCES:
            raise ValueError(
                f"its novelty detector keeps {references:,} references, not 1 to {MAX_NOVELTY_REFERENCES:,}"
            )
        shapes[NOVELTY_PREFIX + "center"] = (given,)
        shapes[NOVELTY_PREFIX + "references"] = (references, given)
    if metadata.get("face_likeness") is not None:
        for part in ("mean", "scale", "weight"):
            shapes[FACE_LIKENESS_PREFIX + part] = (given,)
    return shapes


def model_featurizer(metadata: dict[str, Any]) -> Featurizer:
    """The featurizer a model's metadata names, with its preprocessing; ``ValueError`` when this
    app cannot serve it."""
    from trainer.features.registry import for_model

    return for_model(metadata.get("features"), PreprocessConfig.from_dict(metadata["preprocess"]))


TENSOR_SPECS: dict[str, TensorSpec] = {"mlp": _mlp_tensors}
TENSOR_DTYPE = "F32"  # every weight is float32 ...
TENSOR_DTYPES = {NOVELTY_PREFIX + "references": "F16"}  # ... except these
MAX_PARAMETERS = 64 * 2**20  # 256 MiB of float32, far above any model here
MAX_HEADER_BYTES = 16 * 2**20


def read_metadata(
    prefix: bytes, header_len: int, header_bytes: bytes, size: int, bad
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The FaceComic metadata and the safetensors header, both checked; nothing else read yet."""
    # The safetensors layout: u64 little-endian header length, then a JSON header.
    if len(prefix) < 8:
        raise bad("it is too short to be a safetensors file")
    if header_len <= 1 or header_len > size - 8:
        raise bad("it is not a safetensors file")
    if header_len > MAX_HEADER_BYTES:
        raise bad(f"its header is {header_len / 2**20:.0f} MiB, far larger than any FaceComic model's")
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("it is not a safetensors file (unreadable header)") from None
    raw = header.get("__metadata__", {}).get(METADATA_KEY) if isinstance(header, dict) else None
    if raw is None:
        raise bad("it is a safetensors file without FaceComic metadata")
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError:
        raise bad("its metadata is not valid JSON") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise bad("its metadata does not describe a FaceComic model")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise bad(
            f"it uses format version {version}, newer than this app understands ({FORMAT_VERSION}); update FaceComic"
        )
    for key, kind in (("architecture", dict), ("class_names", list), ("preprocess", dict)):
        if not isinstance(metadata.get(key), kind):
            raise bad(f"its metadata lacks a valid '{key}'")
    try:
        PreprocessConfig.from_dict(metadata["preprocess"])
    except (TypeError, ValueError) as err:
        raise bad(f"its preprocessing settings are invalid ({err})") from None
    _check_features(metadata, bad)
    names = metadata["class_names"]
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise bad("its class names must be non-empty text")
    if any(has_control(n) for n in names):
        # A name with a newline, a tab or an escape sequence would split or forge output lines.
        shown_names = ", ".join(shorten(one_line(n), 40) for n in names)
        raise bad(f"its class names contain control characters ({shown_names})")
    if len(set(names)) != len(names):
        raise bad(f"its class names repeat ({', '.join(names)})")
    return metadata, {k: v for k, v in header.items() if k != "__metadata__"}


def _check_features(metadata: dict[str, Any], bad) -> None:
    """Features (the featurizer must serve them), temperature and detectors: known values only."""
    try:
        model_featurizer(metadata)
    except ValueError as err:
        raise bad(str(err)) from None
    calibration = metadata.get("calibration", {})
    temperature = calibration.get("temperature", 1.0) if isinstance(calibration, dict) else None
    if (
        not isinstance(temperature, int | float)
        or isinstance(temperature, bool)
        or not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE
    ):
        raise bad(f"its calibration temperature is not a number from {MIN_TEMPERATURE} to {MAX_TEMPERATURE}")
    novelty = metadata.get("novelty")
    if novelty is not None and (not isinstance(novelty, dict) or novelty.get("method") != NOVELTY_METHOD):
        raise bad(f"its novelty detector is not one this app knows ({NOVELTY_METHOD})")
    head = metadata.get("head")
    if head is not None and (not isinstance(head, dict) or head.get("kind") not in HEAD_KINDS):
        raise bad(f"its head is not one this app knows ({', '.join(HEAD_KINDS)})")
    scorer = metadata.get("face_likeness")
    if scorer is not None and (not isinstance(scorer, dict) or scorer.get("method") != FACE_LIKENESS_METHOD):
        raise bad(f"its face-likeness scorer is not one this app knows ({FACE_LIKENESS_METHOD})")
    try:
        class_offset(metadata)
    except (TypeError, ValueError) as err:
        raise bad(f"its class prior is damaged ({err})") from None


def class_offset(metadata: dict[str, Any]) -> list[float] | None:
    """The logit offset of a balanced class prior, checked; None when the model has none."""
    prior = metadata.get("class_prior")
    if prior is None:
        return None
    if not isinstance(prior, dict):
        raise ValueError("it is not a mapping")
    offset = prior.get("offset")
    if offset is None:
        return None
    classes = metadata.get("class_names")
    if (
        not isinstance(offset, list)
        or not isinstance(classes, list)
        or len(offset) != len(classes)
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in offset
        )
    ):
        raise ValueError("its offset must be one finite number per class")
    return [float(v) for v in offset]


def check_tensor_specs(metadata: dict[str, Any], header: dict[str, Any], bad) -> None:
    """The stored tensors must be exactly the ones the declared architecture implies."""
    kind = metadata["architecture"].get("name")
    spec = TENSOR_SPECS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        known = ", ".join(TENSOR_SPECS)
        raise bad(
            f"its architecture is not one this app can build (unknown architecture {kind!r}; known: {known})"
        )
    try:
        expected = spec(metadata)
    except (TypeError, ValueError) as err:
        raise bad(str(err)) from None
    if len(metadata["class_names"]) != metadata["architecture"].get("num_classes"):
        raise bad("its class names do not match its number of outputs")
    parameters = sum(
        math.prod(shape) for name, shape in expected.items() if not name.startswith(DETECTOR_PREFIXES)
    )
    if parameters > MAX_PARAMETERS:
        raise bad(f"its architecture has {parameters:,} weights, far more than any FaceComic model")
    mismatch = "the weights do not match the architecture it declares"
    for name in header:
        if name not in expected:
            raise bad(f"{mismatch} (unexpected tensor {name!r})")
    for name, shape in expected.items():
        entry = header.get(name)
        if not isinstance(entry, dict):
            raise bad(f"{mismatch} (the tensor {name!r} is missing)")
        dtype = TENSOR_DTYPES.get(name, TENSOR_DTYPE)
        if entry.get("dtype") != dtype:
            raise bad(f"{mismatch} ({name!r} is stored as {entry.get('dtype')}, not {dtype})")
        if entry.get("shape") != list(shape):
            raise bad(f"{mismatch} ({name!r} has shape {entry.get('shape')}, not {list(shape)})")


def first_line(err: BaseException) -> str:
    """The first line of an error, on one line and short: a ``KeyError`` on a crafted
    10,000-character name must not become a 10,000-character message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return shorten(one_line(text), 120)
