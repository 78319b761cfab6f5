"""Frozen EfficientNet-Lite0 ImageNet embeddings (``trainer.features.efficientnet``): 1,280 values
an image, which carry over to pictures unlike the training set's.

On the CPU, extraction runs on "lanes": a lane is a thread that decodes a small batch and runs the
network on it single-threaded, one lane per lane the caller's ``CpuBudget`` allows. On 2 cores
that beats one stream with two threads (bench/extract_bench.py): no barrier after each of the
network's ~70 small ops, decoding fills the gaps, and when another program takes a core one lane
slows down instead of both threads waiting on each other. On the CPU the network is an
onnxruntime session (``trainer.features.onnx_backbone``), or PyTorch when onnxruntime is not
installed; on CUDA, PyTorch, with a decode pool feeding one stream. The cache keeps the (1280,) float32 embeddings: 5 KB an image whatever the input size, and
a warm run skips the network too. Decoding streams through a bounded window, so memory stays flat.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.cpu import CpuBudget
from trainer.common.lanes import Lanes
from trainer.features.backbone_spec import (
    BACKBONE_NAME,
    DEFAULT_PRECISION,
    EMBEDDING_SIZE,
    PRECISIONS,
    RECOMMENDED_SIZE,
    WEIGHTS_SHA256,
    backbone_preprocess,
)
from trainer.features.base import (
    AutoRecipe,
    Entry,
    ExplainSettings,
    Failure,
    Featurizer,
    Timing,
    decode_one,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from trainer.features.onnx_backbone import OrtBackbone

RUNTIMES = ("auto", "onnxruntime", "torch")
# Models saved before the precision was recorded were trained on fp32 (PyTorch) embeddings.
UNRECORDED_PRECISION = "fp32"

# Small CPU batches measured fastest per lane (activations stay in cache; bench/extract_bench.py)
# and keep cancel prompt; a GPU wants big ones.
CPU_BATCH_SIZE = 4
CUDA_BATCH_SIZE = 64


def default_batch_size(device: str) -> int:
    return CPU_BATCH_SIZE if device == "cpu" else CUDA_BATCH_SIZE


class BackboneFeaturizer(Featurizer):
    description: ClassVar[str] = "EfficientNet-Lite0 embeddings"
    # The linear head (the steadiest across seeds: docs/accuracy.md, make stability), its L2
    # picked by validation loss, with a balanced class prior; --head mlp gets a 5-head ensemble.
    auto_recipe: ClassVar[AutoRecipe] = AutoRecipe(
        head="linear", heads=5, select_by="loss", class_prior="balanced"
    )
    # Chosen with bench/pointing_bench.py on composites of diverse-sample images (docs/why.md).
    explain_defaults: ClassVar[ExplainSettings] = ExplainSettings("blocks.10", "layercam")
    entry_dtype: ClassVar[np.dtype] = np.dtype(np.float32)
    # What a new featurizer computes, and on what; only the benchmarks change these, to compare
    # int8 with fp32 (bench/quantize_backbone.py) and PyTorch with onnxruntime (make bench).
    default_precision: ClassVar[str] = DEFAULT_PRECISION
    default_runtime: ClassVar[str] = "auto"

    def __init__(
        self,
        preprocess: PreprocessConfig | None = None,
        *,
        precision: str | None = None,
        runtime: str | None = None,
        channels_last: bool = True,
    ) -> None:
        """``precision``: fp32 or int8 embeddings (part of the identity: a model records it);
        ``runtime`` on the CPU: onnxruntime when installed (auto), or one of them by name (the
        benchmarks compare them; both give the same fp32 embeddings within 1e-5)."""
        super().__init__(preprocess)
        self.precision = precision or self.default_precision
        runtime = runtime or self.default_runtime
        if self.precision not in PRECISIONS:
            raise ValueError(f"the backbone precision must be one of {', '.join(PRECISIONS)}")
        if runtime not in RUNTIMES:
            raise ValueError(f"the backbone runtime must be one of {', '.join(RUNTIMES)}")
        if self.precision != "fp32" and runtime == "torch":
            raise ValueError(f"{self.precision} embeddings need onnxruntime")
        self.runtime = runtime
        self.channels_last = channels_last  # benchmarks compare both layouts (PyTorch)
        self._ort: OrtBackbone | None = None
        self._ort_resolved = False

    @classmethod
    def from_identity(cls, identity: Mapping[str, Any], preprocess: PreprocessConfig) -> BackboneFeaturizer:
        """The featurizer computing the embeddings a model was trained on: its precision too."""
        precision = identity.get("precision", UNRECORDED_PRECISION)
        if precision not in PRECISIONS:
            from trainer.common.text import one_line, shorten

            raise ValueError(
                f"its head was trained on backbone embeddings of precision "
                f"{shorten(one_line(repr(precision)), 20)}; this app computes {', '.join(PRECISIONS)}"
            )
        return cls(preprocess, precision=precision)

    @classmethod
    def default_preprocess(cls) -> PreprocessConfig:
        return backbone_preprocess(RECOMMENDED_SIZE)

    @property
    def row_size(self) -> int:
        return EMBEDDING_SIZE

    @property
    def entry_shape(self) -> tuple[int, ...]:
        return (EMBEDDING_SIZE,)

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "backbone": BACKBONE_NAME,
            "weights_sha256": WEIGHTS_SHA256,
            "embedding_size": EMBEDDING_SIZE,
            "precision": self.precision,
        }

    def check_identity(self, identity: Mapping[str, Any]) -> None:
        """The head only fits the embeddings it was trained on: the same backbone, and the SHA-256
        recorded in the model equal to that of the weights this app loads (``load_weights``
        checks the file against it)."""
        from trainer.common.text import one_line, shorten

        super().check_identity(identity)
        if identity.get("backbone") != BACKBONE_NAME:
            shown = shorten(one_line(repr(identity.get("backbone"))), 40)
            raise ValueError(f"it needs the backbone {shown}; this app has {BACKBONE_NAME}")
        recorded = identity.get("weights_sha256")
        if not isinstance(recorded, str):
            raise ValueError("it does not record the SHA-256 of the backbone weights it was trained on")
        if recorded != WEIGHTS_SHA256:
            raise ValueError(
                f"it was trained on other backbone weights (SHA-256 {shorten(one_line(recorded), 20)}, "
                f"this app's are {WEIGHTS_SHA256[:12]}…)"
            )
        recorded_precision = identity.get("precision", UNRECORDED_PRECISION)
        if recorded_precision != self.precision:
            shown = shorten(one_line(repr(recorded_precision)), 20)
            raise ValueError(
                f"its head was trained on {shown} backbone embeddings, and these are {self.precision}"
            )
        if self.precision != "fp32":  # only where its file was built (bench/quantize_backbone.py)
            from trainer.common.errors import FaceComicError

            try:
                if self.ort_backbone() is None:
                    raise ValueError(f"it needs onnxruntime for its {self.precision} backbone")
            except FaceComicError as err:
                raise ValueError(f"it needs the {self.precision} backbone, which is not built here") from err

    def ort_backbone(self) -> OrtBackbone | None:
        """The onnxruntime session this featurizer runs on the CPU, or None for PyTorch (asked
        for ``runtime="torch"``, or onnxruntime is not installed: said once in the log)."""
        if not self._ort_resolved:
            if self.runtime != "torch":
                from trainer.features.onnx_backbone import session_for

                self._ort = session_for(self.preprocess, self.precision)
                if self._ort is None and self.runtime == "onnxruntime":
                    raise ValueError("onnxruntime is not installed")
            self._ort_resolved = True
        return self._ort

    @property
    def runtime_name(self) -> str:
        """What runs the network on the CPU: "onnxruntime" or "torch" (for logs and benchmarks)."""
        return "onnxruntime" if self.ort_backbone() is not None else "torch"

    # -- rows -------------------------------------------------------------------------------------

    def rows_from_entries(self, entries: np.ndarray) -> np.ndarray:
        return np.asarray(entries, np.float32)

    def rows_from_pixels(
        self,
        pixels: np.ndarray,
        *,
        budget: CpuBudget,
        device: str = "cpu",
        cancel: CancelToken = NEVER_CANCELLED,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 pixels to ``(N, 1280)`` float32, batches spread over the lanes."""
        device = self._network_device(device)
        batch_size = batch_size or default_batch_size(device)
        if device == "cpu":
            self.ort_backbone()  # loaded (or exported, once) before the lanes start
        out = np.zeros((len(pixels), EMBEDDING_SIZE), np.float32)
        starts = range(0, len(pixels), batch_size)

        def embed(start: int) -> None:
            cancel.raise_if_cancelled()
            out[start : start + batch_size] = self._run_network(pixels[start : start + batch_size], device)

        lanes = budget.lanes if device == "cpu" else 1
        if lanes == 1 or len(starts) == 1:
            for start in starts:
                embed(start)
            return out
        with Lanes(lanes) as pool:
            for future in [pool.submit(embed, start) for start in starts]:
                future.result()  # re-raises Cancelled; the pool's exit cancels the rest
        return out

    def _network_device(self, device: str) -> str:
        """Where the network runs: int8 embeddings exist on onnxruntime's CPU path only."""
        return device if self.precision == "fp32" else "cpu"

    def _run_network(self, pixels: np.ndarray, device: str) -> np.ndarray:
        if device == "cpu":
            ort = self.ort_backbone()
            if ort is not None:
                return ort.embed(pixels)
        import torch

        from trainer.features.efficientnet import load_backbone

        model = load_backbone(device)
        with torch.inference_mode():
            images = self.torch_images(pixels, device, self.channels_last)
            return model.embed(images).float().cpu().numpy()

    def non_face_rows(
        self,
        *,
        options: DecodeOptions,
        budget: CpuBudget,
        device: str = "cpu",
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> tuple[np.ndarray, bool]:
        from trainer.features.non_face_rows import cached_non_face_rows

        return cached_non_face_rows(self, options=options, budget=budget, device=device, cancel=cancel)

    # -- for export and "Why?" --------------------------------------------------------------------

    def network(self) -> nn.Module:
        from torch import nn

        from trainer.features.efficientnet import load_weights

        class Embedding(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = load_weights().fuse().eval().requires_grad_(False)  # a private copy

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.backbone.embed(x)

        return Embedding()

    def stages(self) -> dict[str, nn.Module]:
        """The shared backbone's layers in order: stem, blocks.0 .. blocks.15, head."""
        from trainer.features.efficientnet import load_backbone

        backbone = load_backbone("cpu")
        stages = {"stem": backbone.stem}
        stages.update({f"blocks.{i}": block for i, block in enumerate(backbone.blocks)})
        stages["head"] = backbone.head
        return stages

    def rows_from_stage(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))  # the global average pool of ``EfficientNetLite0.embed``

    # -- extraction -------------------------------------------------------------------------------

    def _compute(
        self,
        paths: Sequence[Path],
        todo: list[int],
        results: list[Entry | None],
        budget: CpuBudget,
        device: str,
        cancel: CancelToken,
        timing: Timing,
    ) -> Iterator[int]:
        device = self._network_device(device)
        batch_size = default_batch_size(device)
        if device == "cpu":
            self.ort_backbone()  # loaded (or exported, once) before the lanes start
            return self._on_lanes(paths, todo, results, budget, cancel, batch_size, timing)
        return self._with_decode_pool(paths, todo, results, budget, device, cancel, batch_size, timing)

    def _lane_batch(self, paths, indices, stopped) -> _LaneBatch | None:
        """Decode then embed one batch on this lane; None once stopped (nothing of it is kept)."""
        rows: list[int] = []
        pixels: list[np.ndarray] = []
        failures: dict[int, Failure] = {}
        decode_seconds = 0.0
        for i in indices:
            if stopped():
                return None
            value, seconds = decode_one(paths[i], self.preprocess)
            decode_seconds += seconds
            if isinstance(value, Failure):
                failures[i] = value
            else:
                rows.append(i)
                pixels.append(value)
        if stopped():
            return None
        began = time.perf_counter()
        embedded = self._run_network(np.stack(pixels), "cpu") if pixels else np.zeros((0, 0))
        return _LaneBatch(rows, embedded, failures, decode_seconds, time.perf_counter() - began)

    def _on_lanes(self, paths, todo, results, budget, cancel, batch_size, timing) -> Iterator[int]:
        """Batches go to the lanes in order, two per lane in flight; progress follows that order,
        so the result (and what a cancel keeps) does not depend on which lane finished first."""
        done = 0
        stop = threading.Event()

        def stopped() -> bool:
            return stop.is_set() or cancel.cancelled

        batches = iter([todo[s : s + batch_size] for s in range(0, len(todo), batch_size)])
        lanes = min(budget.lanes, -(-len(todo) // batch_size))
        window: deque[Future] = deque()
        stored: Future | None = None  # the head of the window, once stored and until it leaves
        with Lanes(lanes) as pool:
            try:

                def refill() -> None:
                    while len(window) < 2 * lanes:
                        batch = next(batches, None)
                        if batch is None:
                            return
                        window.append(pool.submit(self._lane_batch, paths, batch, stopped))

                refill()
                while window:
                    # Stored before it leaves the window: an interrupt while waiting for it (a
                    # SIGTERM) must not drop a batch that the finally below would keep.
                    outcome = window[0].result()
                    if outcome is not None:  # None: the lane saw the cancel first
                        outcome.store(results, timing)
                        done += len(outcome.rows) + len(outcome.failures)
                    stored = window[0]
                    window.popleft()
                    cancel.raise_if_cancelled()
                    refill()
                    yield done
            finally:
                # Cancelled or closed: lanes stop before their next image (a batch already in the
                # network finishes, which is short), and every batch that finished is kept.
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                finished = [
                    f.result()
                    for f in window
                    if f is not stored and not f.cancelled() and f.exception() is None
                ]
                for outcome in finished:
                    if outcome is not None:
                        outcome.store(results, timing)

    def _with_decode_pool(
        self, paths, todo, results, budget, device, cancel, batch_size, timing
    ) -> Iterator[int]:
        """Decode ahead on the pool (a window of two batches) while the network runs here."""
        done = 0
        window: deque[tuple[int, Future]] = deque()
        queue = iter(todo)
        pool = ThreadPoolExecutor(max_workers=budget.decode_workers, thread_name_prefix="facecomic-features")

        def refill() -> None:
            while len(window) < 2 * batch_size:
                i = next(queue, None)
                if i is None:
                    return
                window.append((i, pool.submit(decode_one, paths[i], self.preprocess)))

        try:
            refill()
            while window:
                rows: list[int] = []
                pixels: list[np.ndarray] = []
                while window and len(pixels) < batch_size:
                    i, future = window.popleft()
                    value, seconds = future.result()
                    cancel.raise_if_cancelled()
                    timing.decode += seconds
                    if isinstance(value, Failure):
                        results[i] = value
                        done += 1
                    else:
                        rows.append(i)
                        pixels.append(value)
                refill()
                if pixels:
                    began = time.perf_counter()
                    embedded = self._run_network(np.stack(pixels), device)
                    timing.network += time.perf_counter() - began
                    for i, row in zip(rows, embedded, strict=True):
                        results[i] = row
                    done += len(rows)
                cancel.raise_if_cancelled()
                yield done
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class _LaneBatch:
    rows: list[int]  # input indices embedded, in order
    embedded: np.ndarray
    failures: dict[int, Failure]
    decode_seconds: float
    network_seconds: float

    def store(self, results: list, timing: Timing) -> None:
        for i, failure in self.failures.items():
            results[i] = failure
        for i, row in zip(self.rows, self.embedded, strict=True):
            results[i] = row
        timing.decode += self.decode_seconds
        timing.network += self.network_seconds
