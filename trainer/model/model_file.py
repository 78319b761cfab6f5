"""A model is one ``.safetensors`` file: the weights plus JSON metadata under the key
``facecomic``. Loading parses the safetensors header and raw tensors; nothing is ever unpickled.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from trainer import __version__
from trainer.common.configs import (
    HEAD_KINDS,
    GridSpec,
    PreprocessConfig,
    TrainConfig,
    grid_from_dict,
    train_config_from_dict,
)
from trainer.common.errors import ModelFileError
from trainer.common.outputs import describe_kind, shown, write_bytes
from trainer.common.text import has_control, one_line, shorten
from trainer.data.dataset import display_name
from trainer.features.base import Featurizer
from trainer.model.calibration import MAX_TEMPERATURE, MIN_TEMPERATURE
from trainer.model.face_likeness import METHOD as FACE_LIKENESS_METHOD
from trainer.model.face_likeness import PREFIX as FACE_LIKENESS_PREFIX
from trainer.model.face_likeness import FaceLikeness
from trainer.model.mlp import build_model, legacy_state_dict, mlp_tensor_shapes
from trainer.model.novelty import METHOD as NOVELTY_METHOD
from trainer.model.novelty import NoveltyDetector
from trainer.model.results import EpochPoint, EvaluatedImage, GridResult, HoldoutMetrics, RunResult

FORMAT_NAME = "facecomic-model"
# 2 added ``features`` (pixels or pretrained), ``calibration`` and ``novelty``; 3 added ensembles
# (``architecture.heads``, stacked weights), ``class_prior`` and ``face_likeness``. 1 and 2 still load.
FORMAT_VERSION = 3

NOVELTY_PREFIX = "novelty."
DETECTOR_PREFIXES = (NOVELTY_PREFIX, FACE_LIKENESS_PREFIX)
MAX_NOVELTY_REFERENCES = 4096
METADATA_KEY = "facecomic"
MAX_MODEL_BYTES = 512 * 1024 * 1024  # far above any MLP here; refuses to read arbitrary huge files


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module  # the head: the paper's MLP, on pixels or on backbone embeddings
    metadata: dict[str, Any]
    path: Path | None
    novelty: NoveltyDetector | None = None  # None in format-1 files
    face_likeness: FaceLikeness | None = None  # None before format 3

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor the file holds: the heads' weights, plus the detectors'."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        for detector in (self.novelty, self.face_likeness):
            if detector is not None:
                state.update({k: torch.from_numpy(v) for k, v in detector.tensors().items()})
        return state

    @property
    def heads(self) -> int:
        return self.model.heads

    @property
    def refit_all(self) -> bool:
        """Whether the saved weights also learned from the holdout (its figures come from before)."""
        return bool(self.metadata.get("refit_all", False))

    @property
    def featurizer(self) -> Featurizer:
        """What turns images into this model's head inputs (a fresh one each time: cheap)."""
        return model_featurizer(self.metadata)

    @property
    def feature_kind(self) -> str:
        """The feature kind's name, for people and file listings (never to branch on)."""
        return self.featurizer.kind

    @property
    def temperature(self) -> float:
        """Divides the logits before softmax; 1.0 for files written before calibration existed."""
        return float((self.metadata.get("calibration") or {}).get("temperature", 1.0))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["class_names"])

    @property
    def display_names(self) -> tuple[str, ...]:
        return tuple(display_name(c) for c in self.class_names)

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.metadata["preprocess"])

    @property
    def train_config(self) -> TrainConfig:
        return train_config_from_dict(self.metadata.get("train_config", {}))

    @property
    def grid(self) -> GridSpec:
        return grid_from_dict(self.metadata.get("grid", {}))

    @property
    def holdout(self) -> HoldoutMetrics | None:
        data = self.metadata.get("holdout")
        return HoldoutMetrics.from_dict(data, self.class_names) if data else None

    @property
    def grid_results(self) -> tuple[GridResult, ...]:
        return tuple(GridResult.from_dict(r) for r in self.metadata.get("grid_results", []))

    def evaluated_images(self, split: str) -> tuple[EvaluatedImage, ...]:
        """The ``"holdout"`` or ``"val"`` images of the run, scored (empty for older files)."""
        rows = (self.metadata.get("evaluation") or {}).get(split) or []
        return tuple(EvaluatedImage.from_list(row, len(self.class_names)) for row in rows)

    @property
    def history(self) -> tuple[EpochPoint, ...]:
        """The grid's per-epoch train loss and validation scores (empty for older files)."""
        rows = (self.metadata.get("history") or {}).get("grid") or []
        return tuple(EpochPoint.from_list(row) for row in rows)

    @property
    def final_train_losses(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.metadata.get("final_train_losses") or ())

    @property
    def best(self) -> GridResult | None:
        best = self.metadata.get("best")
        if not best:
            return None
        chosen = GridResult.from_dict({"val_accuracy": 0.0, "val_loss": 0.0, **best})
        scored = {r.key: r for r in self.grid_results}
        return scored.get(chosen.key) or chosen

    @property
    def head_kind(self) -> str:
        """``"linear"`` or ``"mlp"``; files from before the linear head hold MLPs."""
        return str((self.metadata.get("head") or {}).get("kind", "mlp"))

    @property
    def created(self) -> str:
        """When the run finished, ``YYYY-MM-DD HH:MM`` (UTC, as saved); empty when unknown."""
        return str(self.metadata.get("created", ""))[:16].replace("T", " ")

    @property
    def training_seconds(self) -> float | None:
        seconds = self.metadata.get("training_seconds")
        return float(seconds) if isinstance(seconds, int | float) else None

    @property
    def dataset_root(self) -> str | None:
        return (self.metadata.get("evaluation") or {}).get("dataset_root")

    @property
    def name(self) -> str:
        return self.path.name if self.path else "(unsaved model)"


def result_metadata(result: RunResult) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": result.architecture,
        "class_names": list(result.class_names),
        "preprocess": result.preprocess.to_dict(),
        "train_config": result.train_config.to_dict(),
        "grid": result.grid.to_dict(),
        "grid_results": [r.to_dict() for r in result.grid_results],
        "best": result.best.setting(),
        "head": result.head or {"kind": "mlp"},
        "holdout": result.holdout.to_dict(result.class_names),
        "final_train_losses": list(result.final_train_losses),
        "history": {
            # The linear head's rows add its L2 weight; their "epoch" is the fit's iteration.
            "columns": ["lr", "epoch", "train_loss", "val_accuracy", "val_loss", "l2"],
            "grid": [point.to_list() for point in result.history],
        },
        "seed": result.train_config.seed,
        "split": result.split_dict(),
        "class_counts": dict(zip(result.class_names, result.counts, strict=True)),
        "skipped_count": len(result.skipped),
        "dataset": os.path.basename(os.path.normpath(result.dataset_root)),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "package_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "training_seconds": round(result.seconds, 3),
        "device": result.device,
        "features": result.features,
        "calibration": {"temperature": result.temperature, "method": "temperature scaling on validation NLL"},
        **({"novelty": result.novelty.metadata()} if result.novelty is not None else {}),
        **({"face_likeness": result.face_likeness.metadata()} if result.face_likeness is not None else {}),
        "class_prior": {
            "method": result.train_config.class_prior,
            "offset": list(result.class_offset) if result.class_offset is not None else None,
        },
        "refit_all": result.train_config.refit_all,
        "trained_on": dict(zip(result.class_names, result.trained_on, strict=True)),
        "evaluation": {
            "dataset_root": result.dataset_root,
            "holdout": [image.to_list() for image in result.holdout_images],
            "val": [image.to_list() for image in result.val_images],
        },
    }


def model_from_result(result: RunResult) -> LoadedModel:
    """The trained model in memory, as if saved and loaded, for "Use for predictions"."""
    model = build_model(result.architecture, offset=result.class_offset)
    model.load_state_dict(result.state_dict)
    model.eval()
    return LoadedModel(model, result_metadata(result), None, result.novelty, result.face_likeness)


def model_bytes(model: LoadedModel | RunResult) -> bytes:
    """The ``.safetensors`` file's bytes: the tensors, and the metadata as JSON."""
    if isinstance(model, RunResult):
        model = model_from_result(model)
    state = model.tensors()
    metadata = model.metadata
    if "heads" not in metadata["architecture"]:  # a file from before ensembles: now stacked weights
        architecture = {**metadata["architecture"], "heads": model.heads}
        metadata = {**metadata, "architecture": architecture, "format_version": FORMAT_VERSION}
    tensors = {k: v.contiguous() for k, v in state.items()}
    return save_safetensors_bytes(tensors, metadata={METADATA_KEY: json.dumps(metadata)})


def save_model(
    path: str | os.PathLike[str], model: LoadedModel | RunResult, *, allow_read_only: bool = False
) -> Path:
    """Write atomically (``trainer.common.outputs``): temp file, fsync, rename; a crash leaves the
    old file or none. Refuses (``OutputError``) to write over the file the model was loaded from."""
    source = model.path if isinstance(model, LoadedModel) else None
    return write_bytes(path, model_bytes(model), inputs=[source], allow_read_only=allow_read_only)


# Per architecture kind: the metadata -> the tensors it implies (name -> shape), or ValueError
# with the reason. Checked against the file's header before anything is allocated; a new kind of
# model adds its function here (and its builder to ``build_model``).
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


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load and validate; any problem becomes one ``ModelFileError`` sentence naming the file.

    Everything that can be checked from the header and metadata (architecture bounds, tensor
    names, shapes and dtypes) is checked before the weights are read or a module is built, so a
    crafted file cannot make us allocate terabytes.
    """
    target = Path(path)

    def bad(reason: str) -> ModelFileError:
        return ModelFileError(f"{shown(target)} is not a valid FaceComic model: {reason}.")

    try:
        # Non-blocking, so a FIFO named like a model is refused instead of waiting for a writer.
        handle = os.fdopen(os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)), "rb")
        with handle:
            st = os.fstat(handle.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(st.st_mode):
                raise ModelFileError(
                    f"{shown(target)} is not a model file: it is not a regular file ({describe_kind(target)})."
                )
            size = st.st_size
            if size > MAX_MODEL_BYTES:
                raise bad(f"the file is {size / 2**20:.0f} MiB, far larger than any FaceComic model")
            prefix = handle.read(8)
            header_len = int.from_bytes(prefix, "little") if len(prefix) == 8 else 0
            header_bytes = handle.read(min(header_len, MAX_HEADER_BYTES))
            metadata, header = _read_metadata(prefix, header_len, header_bytes, size, bad)
            _check_tensor_specs(metadata, header, bad)
            data = prefix + header_bytes + handle.read()
    except FileNotFoundError:
        raise ModelFileError(f"The model file {shown(target)} does not exist.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{shown(target)} is a folder, not a model file.") from None
    except OSError as err:
        raise ModelFileError(f"Cannot read the model file {shown(target)}: {err.strerror or err}.") from None
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise bad(f"its tensors cannot be read ({_first_line(err)})") from None
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise bad(f"the weights in {name!r} include NaN or infinite values")
    detector_tensors = {k: tensors.pop(k).numpy() for k in list(tensors) if k.startswith(DETECTOR_PREFIXES)}
    novelty = face_likeness = None
    if "novelty" in metadata:
        try:
            novelty = NoveltyDetector.from_parts(metadata["novelty"], detector_tensors)
        except (KeyError, ValueError, TypeError) as err:
            raise bad(f"its novelty detector is damaged ({_first_line(err)})") from None
    if metadata.get("face_likeness") is not None:
        try:
            face_likeness = FaceLikeness.from_parts(metadata["face_likeness"], detector_tensors)
        except (KeyError, ValueError, TypeError) as err:
            raise bad(f"its face-likeness scorer is damaged ({_first_line(err)})") from None
    try:
        model = build_model(metadata["architecture"], offset=_class_offset(metadata))
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise bad(f"its architecture is not one this app can build ({_first_line(err)})") from None
    if "heads" not in metadata["architecture"]:
        tensors = legacy_state_dict(tensors)  # one head, as files before ensembles stored it
    try:
        model.load_state_dict(tensors, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise bad(f"the weights do not match the architecture it declares ({_first_line(err)})") from None
    model.eval()
    loaded = LoadedModel(model, metadata, target, novelty, face_likeness)
    try:
        # Read every part the app shows now, so a damaged file fails here and not later in a widget.
        loaded.preprocess, loaded.train_config, loaded.grid, loaded.holdout, loaded.grid_results, loaded.best  # noqa: B018
        loaded.evaluated_images("holdout"), loaded.evaluated_images("val")
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise bad(f"its metadata is damaged ({_first_line(err)})") from None
    return loaded


def _read_metadata(
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
        _class_offset(metadata)
    except (TypeError, ValueError) as err:
        raise bad(f"its class prior is damaged ({err})") from None


def _class_offset(metadata: dict[str, Any]) -> list[float] | None:
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


def _check_tensor_specs(metadata: dict[str, Any], header: dict[str, Any], bad) -> None:
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


def _first_line(err: BaseException) -> str:
    """The first line of an error, on one line and short: a ``KeyError`` on a crafted
    10,000-character name must not become a 10,000-character message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return shorten(one_line(text), 120)
