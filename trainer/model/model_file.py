"""A model is one ``.safetensors`` file: the weights plus JSON metadata under the key
``facecomic``. Loading parses the safetensors header and raw tensors; nothing is ever unpickled.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import stat
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
    GridSpec,
    PreprocessConfig,
    TrainConfig,
    grid_from_dict,
    train_config_from_dict,
)
from trainer.common.errors import ModelFileError
from trainer.common.outputs import describe_kind, shown, write_bytes
from trainer.data.dataset import display_name
from trainer.features.base import Featurizer
from trainer.model.face_likeness import FaceLikeness
from trainer.model.file_checks import (
    DETECTOR_PREFIXES,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    MAX_MODEL_BYTES,
    METADATA_KEY,
    check_tensor_specs,
    class_offset,
    first_line,
    model_featurizer,
    read_metadata,
)
from trainer.model.mlp import build_model, legacy_state_dict
from trainer.model.novelty import NoveltyDetector
from trainer.model.results import EpochPoint, EvaluatedImage, GridResult, HoldoutMetrics, RunResult


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
            metadata, header = read_metadata(prefix, header_len, header_bytes, size, bad)
            check_tensor_specs(metadata, header, bad)
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
        raise bad(f"its tensors cannot be read ({first_line(err)})") from None
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise bad(f"the weights in {name!r} include NaN or infinite values")
    detector_tensors = {k: tensors.pop(k).numpy() for k in list(tensors) if k.startswith(DETECTOR_PREFIXES)}
    novelty = face_likeness = None
    if "novelty" in metadata:
        try:
            novelty = NoveltyDetector.from_parts(metadata["novelty"], detector_tensors)
        except (KeyError, ValueError, TypeError) as err:
            raise bad(f"its novelty detector is damaged ({first_line(err)})") from None
    if metadata.get("face_likeness") is not None:
        try:
            face_likeness = FaceLikeness.from_parts(metadata["face_likeness"], detector_tensors)
        except (KeyError, ValueError, TypeError) as err:
            raise bad(f"its face-likeness scorer is damaged ({first_line(err)})") from None
    try:
        model = build_model(metadata["architecture"], offset=class_offset(metadata))
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise bad(f"its architecture is not one this app can build ({first_line(err)})") from None
    if "heads" not in metadata["architecture"]:
        tensors = legacy_state_dict(tensors)  # one head, as files before ensembles stored it
    try:
        model.load_state_dict(tensors, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise bad(f"the weights do not match the architecture it declares ({first_line(err)})") from None
    model.eval()
    loaded = LoadedModel(model, metadata, target, novelty, face_likeness)
    try:
        # Read every part the app shows now, so a damaged file fails here and not later in a widget.
        loaded.preprocess, loaded.train_config, loaded.grid, loaded.holdout, loaded.grid_results, loaded.best  # noqa: B018
        loaded.evaluated_images("holdout"), loaded.evaluated_images("val")
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise bad(f"its metadata is damaged ({first_line(err)})") from None
    return loaded
