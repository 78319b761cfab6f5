"""Loading a model file, a job for a worker: torch is imported there, never at GUI start-up."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

from trainer.common.cancel import CancelToken

if TYPE_CHECKING:
    from trainer.model.model_file import LoadedModel


def load_model_job(path: str, *, cancel: CancelToken) -> Generator[None, None, LoadedModel]:
    from trainer.model.model_file import load_model

    cancel.raise_if_cancelled()
    model = load_model(path)
    # Import the training and prediction code now, while the user looks around, rather than
    # beside the first run's busiest moment.
    import trainer.prediction.predictor
    import trainer.training.experiment  # noqa: F401

    return model
    yield  # a generator, so it runs like every other job


def export_onnx_job(
    model: LoadedModel, path: str, allow_read_only: bool = False, *, cancel: CancelToken
) -> Generator[None, None, str]:
    """Write ``model`` as ONNX (a few seconds for a pretrained model: it traces the backbone);
    ``allow_read_only`` once the user agreed to replace a read-only file."""
    from trainer.export.onnx_export import export_onnx

    cancel.raise_if_cancelled()
    return str(export_onnx(model, path, allow_read_only=allow_read_only))
    yield
