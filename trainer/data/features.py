"""Backbone embeddings for many files: cache first, then decode and embed on the CPU's "lanes".

A lane is a thread that decodes a small batch and runs the frozen EfficientNet-Lite0 on it with
one torch thread; there is one lane per torch thread the caller allows. On 2 cores that beats one
stream with two torch threads (bench/extract_bench.py): no barrier after each of the network's
~70 small ops, decoding fills the gaps, and when another program takes a core one lane slows
down instead of both threads waiting on each other. On CUDA, a decode pool feeds one stream.

Mirrors ``decoding.decode_files`` (same result shape, same cache rules), but caches (N, 1280)
float32 embeddings instead of pixels: 5 KB per image whatever the input size, and a warm run skips
the network too. Decoding streams through a bounded window, so memory stays flat on big folders.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.errors import ImageDecodeError
from trainer.common.events import CacheDiscarded, FeaturesProgressed
from trainer.common.lanes import Lanes, cpu_lanes
from trainer.data.cache_file import CacheMiss, read_arrays, write_arrays
from trainer.data.decode_cache import file_keys, note_miss, rows_problem, store_quietly
from trainer.data.preprocess import decode_image

if TYPE_CHECKING:
    import torch

# Bump when extraction changes in a way that alters embeddings.
CACHE_FORMAT = 1
# Small CPU batches measured fastest per lane (activations stay in cache; bench/extract_bench.py)
# and keep cancel prompt; a GPU wants big ones.
CPU_BATCH_SIZE = 4
CUDA_BATCH_SIZE = 64


@dataclass(frozen=True, slots=True)
class FeatureSet:
    features: np.ndarray  # (n_ok, 1280) float32, in input order of the readable files
    ok_indices: np.ndarray  # index into the input list for each row of ``features``
    errors: dict[int, str]  # input index -> reason
    from_cache: int
    seconds: float
    decode_seconds: float = 0.0  # summed over the threads that decode, for benchmarks
    network_seconds: float = 0.0  # time inside the backbone, summed over lanes


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    lasting: bool  # only lasting failures go into the cache


class FeatureCache:
    """One ``.npz`` per (dataset folder, backbone, preprocessing); entries keyed like the decode cache."""

    def __init__(self, directory: Path, root: Path, config: PreprocessConfig) -> None:
        from trainer.model.backbone import BACKBONE_NAME, WEIGHTS_SHA256

        ident = json.dumps(
            {
                "root": str(Path(root).resolve()),
                "backbone": BACKBONE_NAME,
                "weights": WEIGHTS_SHA256,
                "preprocess": config.to_dict(),
                "format": CACHE_FORMAT,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
        self.path = Path(directory) / f"features-{BACKBONE_NAME}-{config.size}-{digest}.npz"
        self.problem: str | None = None  # why the last load found the cache unusable

    def load(self) -> dict[str, np.ndarray | _Failure]:
        """The cached entries; empty (with ``problem`` set) when the cache cannot be used."""
        from trainer.model.backbone import EMBEDDING_SIZE

        self.problem = None
        try:
            arrays = read_arrays(
                self.path,
                ("keys", "features", "errors"),
                lambda headers: rows_problem(headers, "features", np.dtype(np.float32), (EMBEDDING_SIZE,)),
            )
        except CacheMiss as miss:
            self.problem = str(miss)
            note_miss(self.path, self.problem)
            return {}
        if arrays is None:
            return {}
        keys, features, errors = arrays["keys"], arrays["features"], arrays["errors"]
        return {
            str(k): _Failure(str(e), True) if e else f for k, f, e in zip(keys, features, errors, strict=True)
        }

    def store(self, entries: dict[str, np.ndarray | _Failure]) -> None:
        from trainer.model.backbone import EMBEDDING_SIZE

        keys = list(entries)
        features = np.zeros((len(keys), EMBEDDING_SIZE), np.float32)
        errors = []
        for i, key in enumerate(keys):
            value = entries[key]
            if isinstance(value, _Failure):
                errors.append(value.reason)
            else:
                features[i] = value
                errors.append("")
        write_arrays(
            self.path,
            {"keys": np.array(keys, dtype=str), "features": features, "errors": np.array(errors, dtype=str)},
        )


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_batch_size(device: str) -> int:
    return CPU_BATCH_SIZE if device == "cpu" else CUDA_BATCH_SIZE


def embed_pixels(
    pixels: np.ndarray,
    config: PreprocessConfig,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    channels_last: bool = True,
    cancel: CancelToken = NEVER_CANCELLED,
) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 pixels (decoded with ``config``) to ``(N, 1280)`` float32 embeddings."""
    from trainer.model.backbone import EMBEDDING_SIZE

    if not pixels.flags.writeable:  # torch.from_numpy warns on read-only arrays (e.g. from PIL)
        pixels = pixels.copy()
    device = resolve_device(device)
    batch_size = batch_size or default_batch_size(device)
    out = np.zeros((len(pixels), EMBEDDING_SIZE), np.float32)
    starts = range(0, len(pixels), batch_size)

    def embed(start: int) -> None:
        cancel.raise_if_cancelled()
        out[start : start + batch_size] = _run_network(
            pixels[start : start + batch_size], config, device, channels_last
        )

    lanes = cpu_lanes() if device == "cpu" else 1
    if lanes == 1 or len(starts) == 1:
        for start in starts:
            embed(start)
        return out
    with Lanes(lanes) as pool:
        for future in [pool.submit(embed, start) for start in starts]:
            future.result()  # re-raises Cancelled; the pool's exit cancels the rest
    return out


def _run_network(
    pixels: np.ndarray, config: PreprocessConfig, device: str, channels_last: bool
) -> np.ndarray:
    import torch

    from trainer.model.backbone import load_backbone

    model = load_backbone(device)
    with torch.inference_mode():
        return model.embed(_as_images(pixels, config, device, channels_last)).float().cpu().numpy()


def _as_images(
    pixels: np.ndarray, config: PreprocessConfig, device: str, channels_last: bool
) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 to normalised ``(N, 3, S, S)`` float32, the same arithmetic as
    ``to_model_input`` but in one copy: an NHWC array permuted to NCHW already has channels_last
    strides, which ``float()`` keeps (``to_model_input`` makes it contiguous, then it was copied back)."""
    import torch

    batch = torch.from_numpy(np.ascontiguousarray(pixels)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(config.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    batch = batch.sub_(mean).div_(std)
    return batch.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _decode_one(path: Path, config: PreprocessConfig, cancel: CancelToken):
    """``(pixels or _Failure, seconds)``, or None once cancelled (the file is left for next time)."""
    if cancel.cancelled:
        return None
    start = time.perf_counter()
    try:
        value: np.ndarray | _Failure = decode_image(path, config)
    except ImageDecodeError as err:
        value = _Failure(err.reason, err.lasting)
    return value, time.perf_counter() - start


def extract_features(
    paths: Sequence[Path],
    *,
    backbone_input: PreprocessConfig,
    options: DecodeOptions = DecodeOptions(),
    cancel: CancelToken = NEVER_CANCELLED,
    root: Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    channels_last: bool = True,
) -> Generator[FeaturesProgressed | CacheDiscarded, None, FeatureSet]:
    """Embed every path once, yielding progress per batch; cached embeddings are reused, and a
    cache that cannot be used is rebuilt (``CacheDiscarded`` says so).

    On cancel (token or ``close()``), the embeddings finished so far are still written to the
    cache, atomically, and ``Cancelled``/``GeneratorExit`` propagates.
    """
    start = time.perf_counter()
    device = resolve_device(device)
    batch_size = batch_size or default_batch_size(device)
    total = len(paths)
    results: list[np.ndarray | _Failure | None] = [None] * total
    cache = None
    keys: list[str | None] = [None] * total
    if options.use_cache and root is not None:
        cache = FeatureCache(options.resolved_cache_dir, root, backbone_input)
        cached = cache.load()
        keys = file_keys(list(paths), root)
        for i, key in enumerate(keys):
            if key is not None and key in cached:
                results[i] = cached[key]
    from_cache = sum(r is not None for r in results)
    todo = [i for i, r in enumerate(results) if r is None]
    timing = [0.0, 0.0]  # decode, network
    yield FeaturesProgressed(from_cache, total, from_cache)
    stored: str | None = None
    try:
        if todo:
            yield from _extract_todo(
                paths, todo, results, backbone_input, options, cancel, device, batch_size,
                channels_last, from_cache, timing,
            )  # fmt: skip
    finally:
        if cache is not None and todo:
            entries = {
                k: v
                for k, v in zip(keys, results, strict=True)
                if k is not None and v is not None and not (isinstance(v, _Failure) and not v.lasting)
            }
            stored = store_quietly(cache.path, lambda: cache.store(entries))
    if cache is not None and cache.problem:
        yield CacheDiscarded(str(cache.path), cache.problem, rewritten=stored is None and bool(todo))
    from trainer.model.backbone import EMBEDDING_SIZE

    ok = [i for i, v in enumerate(results) if isinstance(v, np.ndarray)]
    features = np.zeros((len(ok), EMBEDDING_SIZE), np.float32)
    for row, i in enumerate(ok):
        features[row] = results[i]
    errors = {i: v.reason for i, v in enumerate(results) if isinstance(v, _Failure)}
    return FeatureSet(
        features, np.array(ok, dtype=np.int64), errors, from_cache, time.perf_counter() - start, *timing
    )


def _extract_todo(
    paths, todo, results, config, options, cancel, device, batch_size, channels_last, from_cache, timing
):
    if device == "cpu":
        return _extract_on_lanes(
            paths, todo, results, config, cancel, batch_size, channels_last, from_cache, timing
        )
    return _extract_with_decode_pool(
        paths, todo, results, config, options, cancel, device, batch_size, channels_last, from_cache, timing
    )


@dataclass(frozen=True, slots=True)
class _LaneBatch:
    rows: list[int]  # input indices embedded, in order
    embedded: np.ndarray
    failures: dict[int, _Failure]
    decode_seconds: float
    network_seconds: float


def _lane_batch(paths, indices, config, channels_last, stopped) -> _LaneBatch | None:
    """Decode then embed one batch on this lane; None once stopped (nothing of it is kept)."""
    rows: list[int] = []
    pixels: list[np.ndarray] = []
    failures: dict[int, _Failure] = {}
    decode_seconds = 0.0
    for i in indices:
        if stopped():
            return None
        value, seconds = _decode_one(paths[i], config, NEVER_CANCELLED)
        decode_seconds += seconds
        if isinstance(value, _Failure):
            failures[i] = value
        else:
            rows.append(i)
            pixels.append(value)
    if stopped():
        return None
    began = time.perf_counter()
    embedded = _run_network(np.stack(pixels), config, "cpu", channels_last) if pixels else np.zeros((0, 0))
    return _LaneBatch(rows, embedded, failures, decode_seconds, time.perf_counter() - began)


def _extract_on_lanes(paths, todo, results, config, cancel, batch_size, channels_last, from_cache, timing):
    """Batches go to the lanes in order, two per lane in flight; progress follows that order, so
    the result (and what a cancel keeps) does not depend on which lane finished first."""
    done = from_cache
    stop = threading.Event()

    def stopped() -> bool:
        return stop.is_set() or cancel.cancelled

    batches = iter([todo[s : s + batch_size] for s in range(0, len(todo), batch_size)])
    lanes = min(cpu_lanes(), -(-len(todo) // batch_size))
    window: deque[Future] = deque()
    with Lanes(lanes) as pool:
        try:

            def refill() -> None:
                while len(window) < 2 * lanes:
                    batch = next(batches, None)
                    if batch is None:
                        return
                    window.append(pool.submit(_lane_batch, paths, batch, config, channels_last, stopped))

            refill()
            while window:
                outcome = window.popleft().result()
                if outcome is not None:  # None: the lane saw the cancel first
                    _store_batch(outcome, results, timing)
                    done += len(outcome.rows) + len(outcome.failures)
                cancel.raise_if_cancelled()
                refill()
                yield FeaturesProgressed(done, len(results), from_cache)
        finally:
            # Cancelled or closed: lanes stop before their next image (a batch already in the
            # network finishes, which is short), and every batch that finished is kept for the cache.
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            finished = [f.result() for f in window if not f.cancelled() and f.exception() is None]
            for outcome in finished:
                if outcome is not None:
                    _store_batch(outcome, results, timing)


def _store_batch(batch: _LaneBatch, results: list, timing: list[float]) -> None:
    for i, failure in batch.failures.items():
        results[i] = failure
    for i, row in zip(batch.rows, batch.embedded, strict=True):
        results[i] = row
    timing[0] += batch.decode_seconds
    timing[1] += batch.network_seconds


def _extract_with_decode_pool(
    paths, todo, results, config, options, cancel, device, batch_size, channels_last, from_cache, timing
):
    """Decode ahead on the pool (a window of two batches) while the network runs on this thread."""
    done = from_cache
    window: deque[tuple[int, Future]] = deque()
    queue = iter(todo)
    pool = ThreadPoolExecutor(max_workers=options.resolved_workers, thread_name_prefix="facecomic-features")

    def refill() -> None:
        while len(window) < 2 * batch_size:
            i = next(queue, None)
            if i is None:
                return
            window.append((i, pool.submit(_decode_one, paths[i], config, cancel)))

    try:
        refill()
        while window:
            rows: list[int] = []
            pixels: list[np.ndarray] = []
            while window and len(pixels) < batch_size:
                i, future = window.popleft()
                outcome = future.result()
                cancel.raise_if_cancelled()
                value, seconds = outcome
                timing[0] += seconds
                if isinstance(value, _Failure):
                    results[i] = value
                    done += 1
                else:
                    rows.append(i)
                    pixels.append(value)
            refill()
            if pixels:
                began = time.perf_counter()
                embedded = _run_network(np.stack(pixels), config, device, channels_last)
                timing[1] += time.perf_counter() - began
                for i, row in zip(rows, embedded, strict=True):
                    results[i] = row
                done += len(rows)
            cancel.raise_if_cancelled()
            yield FeaturesProgressed(done, len(results), from_cache)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def non_face_file_name(config: PreprocessConfig) -> str:
    """The file that holds the non-faces' embeddings for ``config``: named by everything they
    depend on (generator, backbone weights, preprocessing), so a stale one is never read."""
    from trainer.data.non_faces import generator_description
    from trainer.model.backbone import BACKBONE_NAME, WEIGHTS_SHA256

    ident = json.dumps(
        {
            "generator": generator_description(),
            "backbone": BACKBONE_NAME,
            "weights": WEIGHTS_SHA256,
            "preprocess": config.to_dict(),
            "format": CACHE_FORMAT,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
    return f"non-faces-{BACKBONE_NAME}-{config.size}-{digest}.npz"


def non_face_embeddings(
    config: PreprocessConfig,
    *,
    options: DecodeOptions = DecodeOptions(),
    device: str = "auto",
    cancel: CancelToken = NEVER_CANCELLED,
) -> tuple[np.ndarray, bool]:
    """Backbone embeddings of the synthetic non-faces (``trainer.data.non_faces``), and whether
    they were read rather than computed.

    They are the same for every run, so the default settings' ones ship in ``assets/``
    (``make model`` writes them; a test checks they equal a fresh computation): a cold first run
    would otherwise spend about 3 s of 2 cores on them. Other settings compute them once (the
    generator's pictures through the backbone) and keep them in the cache folder. A damaged file
    is a miss, never a failure."""
    from trainer.common.assets import assets_dir
    from trainer.data.non_faces import NEGATIVES, non_face_pixels
    from trainer.model.backbone import EMBEDDING_SIZE

    name = non_face_file_name(config)
    cached_path = options.resolved_cache_dir / name

    def expected(headers) -> str | None:
        shape, dtype = headers["embeddings"]
        if dtype != np.float32 or shape != (NEGATIVES, EMBEDDING_SIZE):
            return f"embeddings of dtype {dtype} and shape {shape}"
        return None

    for path in (assets_dir() / name, cached_path if options.use_cache else None):
        if path is None:
            continue
        try:
            found = read_arrays(path, ("embeddings",), expected)
        except CacheMiss:  # an optimisation, never a failure: computed again below
            continue
        if found is not None:
            return found["embeddings"], True
    embeddings = embed_pixels(non_face_pixels(config), config, device=device, cancel=cancel)
    if options.use_cache:
        store_quietly(cached_path, lambda: write_arrays(cached_path, {"embeddings": embeddings}))
    return embeddings, False


def write_non_face_asset(config: PreprocessConfig, directory: Path) -> Path:
    """Compute the non-faces' embeddings for ``config`` and write them to ``directory`` under
    their own name (``make model`` writes the default settings' into ``assets/``)."""
    from trainer.data.non_faces import non_face_pixels

    path = Path(directory) / non_face_file_name(config)
    write_arrays(path, {"embeddings": embed_pixels(non_face_pixels(config), config, device="cpu")})
    return path
