"""The one input pipeline: what the MLP head sees for each image, from files or decoded pixels.

A ``Featurizer`` turns image files into rows for the head: the paper's 24x24 normalised pixels
(``PixelFeaturizer``) or frozen EfficientNet-Lite0 embeddings (``BackboneFeaturizer``). Every
feature kind shares this pipeline: look each file up in one cache (keyed by file, size, mtime and
the featurizer's identity), compute what is missing (the kind's own ``_compute``, on threads
that the caller's ``CpuBudget`` sizes), store what was computed even on a cancel, and collect one
``FeatureSet``. It yields the same two events for every kind, ``FeaturesProgressed`` and
``FeaturesFinished`` (and ``CacheDiscarded`` when a cache could not be used).

Nothing outside ``trainer.features`` asks which kind a model uses: callers ask its featurizer
(``trainer.features.registry``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.cpu import CpuBudget
from trainer.common.errors import ImageDecodeError
from trainer.common.events import CacheDiscarded, FeaturesProgressed
from trainer.data.preprocess import decode_image, normalised_images
from trainer.features.cache import FeatureCache, file_keys, store_quietly
from trainer.features.types import DecodedImages, Entry, Failure, FeatureSet, Timing

if TYPE_CHECKING:
    import torch
    from torch import nn

CHUNK_SIZE = 32  # files per decode-pool task: small enough to cancel fast, big enough to amortise
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class AutoRecipe:
    """What "auto" means in ``TrainConfig`` for a featurizer: the head, the MLP's number of heads,
    the grid's rule, the prior."""

    head: str
    heads: int
    select_by: str
    class_prior: str


EXPLAIN_INPUT = "input"  # the layer name of the image (or pixel) gradient
EXPLAIN_METHODS = ("gradcam", "layercam", "gradient_x_input", "saliency")


@dataclass(frozen=True, slots=True)
class ExplainSettings:
    """Where and how a "Why?" map is taken; each featurizer names its default (chosen by
    ``bench/pointing_bench``), ``trainer.prediction.explain`` takes it."""

    layer: str  # "stem", "blocks.N", "head" (the backbone's), or "input"
    method: str  # one of EXPLAIN_METHODS; "gradcam"/"layercam" for a backbone layer, the others for "input"
    smoothing: float = 0.0  # Gaussian sigma as a share of the map's side (0: none)

    def __post_init__(self) -> None:
        if self.method not in EXPLAIN_METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(EXPLAIN_METHODS)}")
        if (self.layer == EXPLAIN_INPUT) != (self.method in ("gradient_x_input", "saliency")):
            raise ValueError(f"the method {self.method!r} does not apply to the layer {self.layer!r}")
        if not 0.0 <= self.smoothing <= 0.5:
            raise ValueError("smoothing must be from 0 to 0.5 of the map's side")

    @property
    def name(self) -> str:
        smoothing = f", smoothing {self.smoothing:g}" if self.smoothing else ""
        return f"{self.method} on {self.layer}{smoothing}"


class Featurizer(ABC):
    """Files or decoded pixels to the rows the head sees. Subclasses set the class attributes and
    implement the abstract methods; ``registry`` names them."""

    kind: ClassVar[str] = ""  # set by the registry: the name model files and the CLI use
    description: ClassVar[str]  # for people: "EfficientNet-Lite0 embeddings"
    auto_recipe: ClassVar[AutoRecipe]
    explain_defaults: ClassVar[ExplainSettings]
    # What the cache keeps per file: its dtype and shape (rows are derived from it).
    entry_dtype: ClassVar[np.dtype]

    def __init__(self, preprocess: PreprocessConfig | None = None) -> None:
        self.preprocess = preprocess or self.default_preprocess()

    # -- what a kind is ---------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def default_preprocess(cls) -> PreprocessConfig:
        """How files are decoded for this kind when the caller does not say."""

    @property
    @abstractmethod
    def row_size(self) -> int:
        """Values per row, the head's input size."""

    @property
    @abstractmethod
    def entry_shape(self) -> tuple[int, ...]:
        """The shape of one cached entry."""

    @property
    def identity(self) -> dict[str, Any]:
        """What a model file records (``features``) so prediction rebuilds exactly this."""
        return {"kind": self.kind}

    @property
    def runtime_name(self) -> str | None:
        """What runs this kind's network on the CPU ("onnxruntime" or "torch"); None without one."""
        return None

    @classmethod
    def from_identity(cls, identity: Mapping[str, Any], preprocess: PreprocessConfig) -> Featurizer:
        """The featurizer that computes what a model's ``features`` record (``check_identity``
        then says whether this app can); kinds with settings in their identity override it."""
        return cls(preprocess)

    def check_identity(self, identity: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` with the reason when a model's ``features`` cannot be served by
        this featurizer here (say, other backbone weights)."""
        if identity.get("kind") != self.kind:
            raise ValueError(f"its feature kind is {identity.get('kind')!r}, not {self.kind!r}")

    # -- rows -------------------------------------------------------------------------------------

    @abstractmethod
    def rows_from_entries(self, entries: np.ndarray) -> np.ndarray:
        """Cached entries ``(N, *entry_shape)`` to rows ``(N, row_size)`` float32."""

    @abstractmethod
    def rows_from_pixels(
        self,
        pixels: np.ndarray,
        *,
        budget: CpuBudget,
        device: str = "cpu",
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> np.ndarray:
        """Decoded ``(N, size, size, 3)`` uint8 pixels to rows."""

    def non_face_rows(
        self,
        *,
        options: DecodeOptions,
        budget: CpuBudget,
        device: str = "cpu",
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> tuple[np.ndarray, bool] | None:
        """Rows of the synthetic non-faces that the "not a face" scorer learns against, and
        whether they were read from a file rather than computed; None where that scorer does not
        work for this kind (docs/how-it-works.md, "Not a face")."""
        return None

    @abstractmethod
    def network(self) -> nn.Module:
        """A private ``nn.Module`` from normalised ``(N, 3, S, S)`` images to rows (for export)."""

    @abstractmethod
    def stages(self) -> dict[str, nn.Module]:
        """The named stages of ``network``, in order, that "Why?" can read maps from ({} for none);
        rows are the last stage's output pooled (``rows_from_stage``)."""

    def rows_from_stage(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output to rows; without stages, the images themselves flattened."""
        return x.flatten(1)

    def torch_images(
        self, pixels: np.ndarray, device: str = "cpu", channels_last: bool = False
    ) -> torch.Tensor:
        """``(N, S, S, 3)`` uint8 to the network's normalised ``(N, 3, S, S)`` float32."""
        return normalised_images(pixels, self.preprocess, device, channels_last)

    # -- the pipeline -----------------------------------------------------------------------------

    def extract(
        self,
        paths: Sequence[Path],
        *,
        root: Path | None = None,
        options: DecodeOptions = DecodeOptions(),
        budget: CpuBudget | None = None,
        device: str = "cpu",
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> Generator[FeaturesProgressed | CacheDiscarded, None, FeatureSet]:
        """Rows for every path, computed once: cached entries are reused (with ``root`` and
        ``options.use_cache``), a cache that cannot be used is rebuilt (``CacheDiscarded``).

        On cancel (token or ``close()``), what was computed so far still goes to the cache,
        atomically, and ``Cancelled``/``GeneratorExit`` propagates.
        """
        start = time.perf_counter()
        budget = budget or CpuBudget.from_options(options)
        total = len(paths)
        results: list[Entry | None] = [None] * total
        cache = keys = None
        if options.use_cache and root is not None:
            cache = FeatureCache(options.resolved_cache_dir, root, self)
            keys = file_keys(list(paths), root)
            cached = cache.load()
            for i, key in enumerate(keys):
                if key is not None and key in cached:
                    results[i] = cached[key]
        from_cache = sum(r is not None for r in results)
        todo = [i for i, r in enumerate(results) if r is None]
        timing = Timing()
        yield FeaturesProgressed(from_cache, total, from_cache)
        stored: str | None = None
        try:
            if todo:
                for done in self._compute(paths, todo, results, budget, device, cancel, timing):
                    yield FeaturesProgressed(from_cache + done, total, from_cache)
        finally:
            if cache is not None and todo:
                entries = {
                    k: v
                    for k, v in zip(keys, results, strict=True)
                    if k is not None and v is not None and not (isinstance(v, Failure) and not v.lasting)
                }
                stored = store_quietly(cache.path, lambda: cache.store(entries))
        if cache is not None and cache.problem:
            yield CacheDiscarded(str(cache.path), cache.problem, rewritten=stored is None and bool(todo))
        entries, ok, errors = _collect(results, self.entry_shape, self.entry_dtype)
        return FeatureSet(
            self.rows_from_entries(entries), ok, errors, from_cache,
            time.perf_counter() - start, timing.decode, timing.network,
        )  # fmt: skip

    def compute_entries(
        self,
        paths: Sequence[Path],
        *,
        budget: CpuBudget,
        device: str = "cpu",
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> list[Entry]:
        """What the cache would keep for each path (an array, or a ``Failure`` with whether it
        lasts), computed here without a cache: a cluster worker's part of ``extract``, which the
        driver then stores in the one cache (``trainer.cluster``)."""
        results: list[Entry | None] = [None] * len(paths)
        for _ in self._compute(paths, list(range(len(paths))), results, budget, device, cancel, Timing()):
            pass
        missing = [i for i, value in enumerate(results) if value is None]
        if missing:  # only a cancel leaves holes; the caller must not store a partial chunk
            cancel.raise_if_cancelled()
            raise RuntimeError(f"{len(missing)} entries were not computed")
        return results  # type: ignore[return-value]

    @abstractmethod
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
        """Fill ``results[i]`` for every ``i`` in ``todo``, yielding how many are done so far.
        On close or cancel, keep in ``results`` every entry that finished."""

    def decode(
        self, paths: Sequence[Path], *, budget: CpuBudget, cancel: CancelToken = NEVER_CANCELLED
    ) -> DecodedImages:
        """Decode files with this featurizer's preprocessing on a decode pool, no cache."""
        start = time.perf_counter()
        results: list[Entry | None] = [None] * len(paths)
        for _ in decode_on_pool(
            paths, list(range(len(paths))), results, self.preprocess, budget, cancel, Timing()
        ):
            pass
        size = self.preprocess.size
        pixels, ok, errors = _collect(results, (size, size, 3), np.uint8)
        return DecodedImages(pixels, ok, errors, time.perf_counter() - start)


def decode_one(path: Path, config: PreprocessConfig) -> tuple[Entry, float]:
    """One file's pixels (or why not) and the seconds it took."""
    start = time.perf_counter()
    try:
        value: Entry = decode_image(path, config)
    except ImageDecodeError as err:
        value = Failure(err.reason, err.lasting)
    return value, time.perf_counter() - start


def _decode_chunk(
    paths: Sequence[Path],
    chunk: list[int],
    results: list[Entry | None],
    config: PreprocessConfig,
    cancel: CancelToken,
) -> tuple[int, float]:
    """Decode ``chunk`` in order straight into ``results``, so that what a worker decoded is kept
    however the caller is interrupted (a SIGTERM may land between a submit and its bookkeeping);
    stops early once cancelled. How many it decoded, and their seconds."""
    count, seconds = 0, 0.0
    for i in chunk:
        if cancel.cancelled:
            break
        results[i], took = decode_one(paths[i], config)
        count, seconds = count + 1, seconds + took
    return count, seconds


def decode_on_pool(
    paths: Sequence[Path],
    todo: list[int],
    results: list[Entry | None],
    config: PreprocessConfig,
    budget: CpuBudget,
    cancel: CancelToken,
    timing: Timing,
) -> Iterator[int]:
    """Decode ``todo`` on ``budget.decode_workers`` threads (Pillow releases the GIL, so threads
    scale like processes here without their start-up or pickling), in chunks; yields how many are
    done, at most every 0.1 s. On cancel, queued chunks are dropped and running ones stop at their
    next file; on an interrupt (Ctrl+C, SIGTERM, close), running ones finish. Either way what they
    decoded is in ``results``."""
    if not todo:
        return
    done = 0
    chunks = [todo[i : i + CHUNK_SIZE] for i in range(0, len(todo), CHUNK_SIZE)]
    pool = ThreadPoolExecutor(
        max_workers=min(budget.decode_workers, len(chunks)), thread_name_prefix="facecomic-decode"
    )
    try:
        pending = {pool.submit(_decode_chunk, paths, chunk, results, config, cancel) for chunk in chunks}
        last_report = 0.0
        while pending:
            finished, pending = wait(pending, timeout=PROGRESS_INTERVAL_S, return_when=FIRST_COMPLETED)
            for future in finished:
                count, seconds = future.result()
                done += count
                timing.decode += seconds
            cancel.raise_if_cancelled()
            now = time.perf_counter()
            if finished and (now - last_report >= PROGRESS_INTERVAL_S or not pending):
                last_report = now
                yield done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after this no worker writes to ``results``


def _collect(
    results: list[Entry | None], shape: tuple[int, ...], dtype
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """The arrays among ``results`` stacked in order, their indices, and each failure's reason."""
    ok = [i for i, v in enumerate(results) if isinstance(v, np.ndarray)]
    stacked = np.zeros((len(ok), *shape), dtype)
    for row, i in enumerate(ok):
        stacked[row] = results[i]
    errors = {i: v.reason for i, v in enumerate(results) if isinstance(v, Failure)}
    return stacked, np.array(ok, dtype=np.int64), errors
