"""What runs on a worker: the model, loaded once per worker process when the job registers it
(``ModelPlugin``, which Dask also hands to a worker that joins or is restarted mid-job), and the
two tasks, ``predict_chunk`` and ``extract_chunk``.

A task gets only file names; the model's bytes travel once per worker (inside the plugin), and
its ``Predictor``, with the backbone's onnxruntime session, stays in this process for every
later task. Each task runs on one lane (``CpuBudget(1, 1)``): a worker's threads are the
parallelism, as the local CLI's lanes are.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from trainer.common.cpu import CpuBudget
from trainer.common.lanes import one_torch_thread

ONE_LANE = CpuBudget(1, 1)
_predictors: dict[str, Any] = {}  # model SHA-256 -> Predictor, for this worker process
_featurizers: dict[str, Any] = {}  # identity and preprocessing -> Featurizer


def plugin_name(sha256: str) -> str:
    return f"facecomic-model-{sha256[:16]}"


class ModelPlugin(WorkerPlugin):
    """Carries a model file's bytes to each worker and loads it there once, backbone included."""

    def __init__(self, model: bytes, sha256: str) -> None:
        self.model, self.sha256 = model, sha256
        self.name = plugin_name(sha256)

    def setup(self, worker=None) -> None:
        load_predictor(self.model, self.sha256)

    def teardown(self, worker=None) -> None:
        _predictors.pop(self.sha256, None)


def load_predictor(model: bytes, sha256: str):
    """The ``Predictor`` of ``model`` in this process, loaded (and its backbone warmed) once."""
    if sha256 not in _predictors:
        import numpy as np

        from trainer.model.model_file import load_model
        from trainer.prediction.predictor import Predictor

        with tempfile.TemporaryDirectory(prefix="facecomic-model-") as folder:
            path = Path(folder) / "model.safetensors"
            path.write_bytes(model)
            predictor = Predictor(load_model(path), ONE_LANE)
        size = predictor.config.size
        with one_torch_thread():  # the session's first run, before the job's
            predictor.probabilities(np.zeros((1, size, size, 3), np.uint8))
        _predictors[sha256] = predictor
    return _predictors[sha256]


def _item(source: str):
    """A local path as a ``Path``; another URL (``s3://``, ``http://``…) opened with fsspec as a
    PIL image, or the reason it could not be read."""
    if "://" not in source or source.startswith("file://"):
        return Path(source.removeprefix("file://"))
    try:
        import fsspec
        from PIL import Image

        with fsspec.open(source, "rb") as handle:
            data = handle.read()
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except Exception as err:  # one error row, as for any unreadable file
        return f"could not read it ({type(err).__name__}: {str(err).strip()[:200]})"


def predict_chunk(sha256: str, sources: list[str]) -> list[dict]:
    """One row per source, in order: label, display label, confidence, probabilities, flag, error."""
    predictor = _predictors.get(sha256)
    if predictor is None:
        raise RuntimeError("the model was not loaded on this worker (its plugin did not run)")
    items = [_item(s) for s in sources]
    readable = [i for i, item in enumerate(items) if not isinstance(item, str)]
    rows: list[dict] = [{"error": item} if isinstance(item, str) else {} for item in items]
    with one_torch_thread():  # the head and flags too: a worker thread is one lane
        predictions = predictor.predict([items[i] for i in readable], batch_size=max(1, len(readable)))
    for i, p in zip(readable, predictions, strict=True):
        rows[i] = {
            "label": p.label,
            "display_label": p.display_label,
            "confidence": p.confidence,
            "probabilities": p.probabilities,
            "flag": p.flag,
            "error": p.error,
        }
    return rows


def _featurizer(identity: dict, preprocess: dict):
    key = json.dumps([identity, preprocess], sort_keys=True)
    if key not in _featurizers:
        from trainer.common.configs import PreprocessConfig
        from trainer.features.registry import for_model

        _featurizers[key] = for_model(identity, PreprocessConfig.from_dict(preprocess))
    return _featurizers[key]


def extract_chunk(identity: dict, preprocess: dict, paths: list[str], device: str = "cpu") -> list:
    """What the feature cache keeps for each path (an array or a ``Failure``), in order."""
    featurizer = _featurizer(identity, preprocess)
    with one_torch_thread():
        return featurizer.compute_entries([Path(p) for p in paths], budget=ONE_LANE, device=device)
