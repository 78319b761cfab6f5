"""The frozen backbone on onnxruntime: the CPU path of ``BackboneFeaturizer``.

EfficientNet-Lite0 never trains here, so on the CPU it runs as an ONNX graph in onnxruntime
(about 1.3-1.8x the images per second of eager PyTorch on one thread; ``make bench``). The graph
takes what the decoder gives, uint8 ``(N, S, S, 3)`` RGB, and returns the ``(N, 1280)`` float32
embeddings: the normalisation, the network and the average pool are inside it.

The fp32 file is exported from the checked PyTorch weights at first use, once per machine (about
0.5 s), into the cache folder (``$FACECOMIC_CACHE_DIR``, else ``~/.cache/facecomic``) under
``backbones/``. Its name is a digest of everything its bytes depend on: the weights' SHA-256, the
input size and normalisation, the precision, this module's export format, the exporter (torch)
version and the onnxruntime version; any of them changing gives a new file. It is written
atomically (``trainer.common.outputs``) with its own SHA-256 beside it, and read back only when
that matches: a damaged or truncated file is rebuilt, never run. A cache folder that cannot be
written only costs the export again next time.

The int8 file is never exported here: static quantization needs calibration images, and only
``bench/quantize_backbone.py`` builds it (from the samples), into the same folder under the int8
name. It is not the default (docs/performance.md).

Sessions run single-threaded (``intra_op_num_threads=1``): the caller's ``CpuBudget`` decides how
many lanes call it at once, and one session serves every lane (onnxruntime's ``run`` is
thread-safe and releases the GIL). Nothing here sets a process-wide thread count.

Without onnxruntime installed, ``session_for`` says so once in the log and returns None, and the
featurizer runs the network in PyTorch instead.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.common.checksum import key_digest
from trainer.common.configs import PreprocessConfig, default_cache_dir
from trainer.common.errors import FaceComicError
from trainer.common.outputs import write_bytes, write_text
from trainer.features.backbone_spec import BACKBONE_NAME, EMBEDDING_SIZE, PRECISIONS, WEIGHTS_SHA256

if TYPE_CHECKING:
    from types import ModuleType

    import torch

log = logging.getLogger(__name__)

# Bump when the exported graph changes (its inputs, outputs or what it computes).
EXPORT_FORMAT = 1
OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "embedding"
FOLDER = "backbones"
NO_ONNXRUNTIME = (
    "onnxruntime is not installed, so the backbone runs on PyTorch on the CPU (slower: "
    "pip install onnxruntime for the fast path)."
)


@dataclass(frozen=True, slots=True)
class OrtBackbone:
    """One onnxruntime session of the backbone; ``embed`` may be called from any number of lanes."""

    session: Any  # onnxruntime.InferenceSession
    precision: str
    path: Path

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 to ``(N, 1280)`` float32 on the calling thread."""
        if len(pixels) == 0:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        (rows,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(pixels, np.uint8)})
        return rows


_sessions: dict[str, OrtBackbone | None] = {}  # None: onnxruntime failed here, PyTorch runs
_lock = threading.Lock()
_said_missing = False


def onnxruntime_module() -> ModuleType | None:
    """onnxruntime, or None (said once in the log) when it is not installed."""
    global _said_missing
    try:
        import onnxruntime
    except ImportError:
        if not _said_missing:
            _said_missing = True
            log.warning(NO_ONNXRUNTIME)
        return None
    return onnxruntime


def file_key(preprocess: PreprocessConfig, precision: str, ort_version: str) -> dict[str, Any]:
    """Everything the file's bytes depend on."""
    import torch

    return {
        "backbone": BACKBONE_NAME,
        "weights_sha256": WEIGHTS_SHA256,
        "size": preprocess.size,
        "mean": list(preprocess.mean),
        "std": list(preprocess.std),
        "precision": precision,
        "format": EXPORT_FORMAT,
        "exporter": f"torch {torch.__version__}",
        "onnxruntime": ort_version,
    }


def file_path(preprocess: PreprocessConfig, precision: str, cache_dir: Path | None = None) -> Path | None:
    """Where the backbone file of these settings lives; None without onnxruntime."""
    ort = onnxruntime_module()
    if ort is None:
        return None
    digest = key_digest(file_key(preprocess, precision, ort.__version__))
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / FOLDER / f"{BACKBONE_NAME}-{preprocess.size}-{precision}-{digest}.onnx"


def session_for(
    preprocess: PreprocessConfig, precision: str, cache_dir: Path | None = None
) -> OrtBackbone | None:
    """The shared session for these settings, loaded or exported once per process; None when
    onnxruntime is not installed, or (said once in the log) when it could not export or run the
    fp32 backbone here. ``FaceComicError`` for an int8 file that was never built."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown backbone precision {precision!r}")
    path = file_path(preprocess, precision, cache_dir)
    if path is None:
        return None
    with _lock:
        if path.name not in _sessions:  # the name is the digest of everything the bytes depend on
            try:
                _sessions[path.name] = _load_or_build(path, preprocess, precision)
            except FaceComicError:
                raise
            except Exception as err:
                if precision != "fp32":
                    raise
                # The fast path must never cost a run: PyTorch computes the same embeddings.
                log.warning(
                    "onnxruntime could not run the backbone (%s: %s); it runs on PyTorch instead.",
                    type(err).__name__,
                    str(err).strip().splitlines()[0][:200] if str(err).strip() else "",
                )
                _sessions[path.name] = None
        return _sessions[path.name]


def forget_sessions() -> None:
    """Drop the sessions of this process (tests: make the next call read the file again)."""
    with _lock:
        _sessions.clear()


def _load_or_build(path: Path, preprocess: PreprocessConfig, precision: str) -> OrtBackbone:
    data, problem = read_verified(path)
    if data is not None:
        try:
            return OrtBackbone(new_session(data), precision, path)
        except Exception as err:  # bytes as written but not a model this onnxruntime runs
            problem = f"onnxruntime cannot load it ({type(err).__name__})"
    if precision != "fp32":
        why = f" ({problem})" if problem else ""
        raise FaceComicError(
            f"The {precision} backbone is not built here{why}; python -m bench.quantize_backbone builds it."
        )
    data = export_fp32(preprocess)
    if problem:
        log.warning("The cached backbone %s could not be used (%s); it was rebuilt.", path, problem)
    try:
        write_verified(path, data)
    except Exception as err:  # the cache is an optimisation: export again next time
        log.warning("Could not write the cached backbone %s (%s).", path, err)
    return OrtBackbone(new_session(data), precision, path)


def read_verified(path: Path) -> tuple[bytes | None, str | None]:
    """The file's bytes when its SHA-256 matches the one written beside it; else None and why
    (no reason when there is simply no file yet)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f"cannot read it: {err.strerror or err}"
    try:
        expected = _digest_path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeError):
        return None, "its checksum file is missing"
    if hashlib.sha256(data).hexdigest() != expected:
        return None, "its SHA-256 differs from the one written with it"
    return data, None


def write_verified(path: Path, data: bytes) -> None:
    """The file, then its SHA-256, each atomically: a reader sees a pair that matches, or a
    mismatch it treats as damage (two processes racing rebuild it once more; never run it)."""
    write_bytes(path, data, owned=True, make_folders=True)
    write_text(_digest_path(path), hashlib.sha256(data).hexdigest() + "\n", owned=True)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def new_session(data: bytes, *, threads: int = 1) -> Any:
    """A CPU session of the model ``data``, single-threaded unless ``threads`` says otherwise
    (only ``make bench`` tries more)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 1: the lanes are the parallelism (``CpuBudget``)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; its notes about unused initialisers are noise
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def export_fp32(preprocess: PreprocessConfig) -> bytes:
    """The fp32 graph from the checked PyTorch weights: uint8 NHWC pixels to embeddings, the
    same steps as ``Featurizer.torch_images`` and ``EfficientNetLite0.embed``."""
    import torch
    from torch import nn

    from trainer.features.efficientnet import load_weights

    class PixelsToEmbedding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = load_weights().fuse().eval().requires_grad_(False)
            self.register_buffer("mean", torch.tensor(preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(preprocess.std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = pixels.permute(0, 3, 1, 2).float().div(255.0)
            return self.backbone.embed((x - self.mean) / self.std)

    return traced_onnx(PixelsToEmbedding().eval(), preprocess.size, OUTPUT_NAME)


def traced_onnx(module: torch.nn.Module, size: int, output_name: str) -> bytes:
    """``module``, which takes uint8 ``[N, size, size, 3]`` RGB images named ``INPUT_NAME``, as
    ONNX bytes with a dynamic batch (the backbone's file and ``facecomic-export``'s alike)."""
    import io

    import torch

    buffer = io.BytesIO()
    # Never inside the caller's inference mode: tracing needs ordinary tensors.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # Tracing turns the backbone's padding arithmetic into constants; S is fixed, so that is right.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The TorchScript exporter is deprecated, but the dynamo one needs onnxscript, which we avoid.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.zeros((2, size, size, 3), dtype=torch.uint8),),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_axes={INPUT_NAME: {0: "N"}, output_name: {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()
