"""Export a FaceComic model as one ONNX file holding the whole pipeline after decoding.

Input ``pixels``: uint8 ``[N, S, S, 3]`` (RGB, already resized to S with ``facecomic.resample``).
Output ``probabilities``: float32 ``[N, C]``, calibrated, in the order of ``facecomic.classes``.
Normalisation, the backbone (for pretrained models), the MLP head and the temperature are all in
the graph, so a consumer needs only onnxruntime and an image library.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.common.errors import FaceComicError
from trainer.common.outputs import check_outputs, shown, write_bytes
from trainer.features.onnx_backbone import traced_onnx
from trainer.model.model_file import LoadedModel

OUTPUT_NAME = "probabilities"
META_INPUT_SIZE = "facecomic.input_size"
META_CLASSES = "facecomic.classes"
META_METADATA = "facecomic.metadata"
META_RESAMPLE = "facecomic.resample"
# Every scored holdout/validation image (path and probabilities): useless outside the app and
# can be megabytes, and the paths may be private.
DROPPED_METADATA_KEYS = ("evaluation",)


class Pipeline(nn.Module):
    """uint8 NHWC pixels to calibrated probabilities: the same steps as ``Predictor.probabilities``."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        config = loaded.preprocess
        self.size = config.size
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.features = loaded.featurizer.network()  # a private copy: the backbone's, or a flatten
        # A copy: the app may be predicting with the original on another thread meanwhile.
        self.head = copy.deepcopy(loaded.model).cpu().eval()
        self.temperature = float(loaded.temperature)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float().div(255.0).permute(0, 3, 1, 2)
        x = (x - self.mean) / self.std
        return torch.softmax(self.head(self.features(x)) / self.temperature, dim=1)


def export_metadata(loaded: LoadedModel) -> dict[str, str]:
    """The ``metadata_props`` written into the ONNX file: what a consumer needs to feed it."""
    metadata: dict[str, Any] = {k: v for k, v in loaded.metadata.items() if k not in DROPPED_METADATA_KEYS}
    return {
        META_INPUT_SIZE: str(loaded.preprocess.size),
        META_CLASSES: json.dumps(list(loaded.class_names)),
        META_METADATA: json.dumps(metadata),
        META_RESAMPLE: loaded.preprocess.resample,
    }


def onnx_bytes(loaded: LoadedModel) -> bytes:
    """The checked ONNX model as bytes, metadata included."""
    import onnx

    pipeline = Pipeline(loaded).eval()
    size = loaded.preprocess.size
    proto = onnx.load_from_string(traced_onnx(pipeline, size, OUTPUT_NAME))
    proto.doc_string = f"FaceComic model {loaded.name}: uint8 [N,{size},{size},3] RGB -> probabilities"
    for key, value in export_metadata(loaded).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def export_onnx(loaded: LoadedModel, out: str | os.PathLike[str], *, allow_read_only: bool = False) -> Path:
    """Write ``loaded`` to ``out`` as one self-contained ONNX file (atomically, see
    ``trainer.common.outputs``); returns the path.

    Raises ``FaceComicError`` with one sentence when the file cannot be written, or is the model's
    own file: checked before the seconds of tracing, not after.
    """
    target = Path(out)
    check_outputs({"the ONNX file": target}, inputs=[loaded.path], allow_read_only=allow_read_only)
    data = onnx_bytes(loaded)
    try:
        write_bytes(target, data, inputs=[loaded.path], allow_read_only=allow_read_only)
    except OSError as err:
        raise FaceComicError(f"Cannot write {shown(target)}: {err.strerror or err}.") from None
    return target
