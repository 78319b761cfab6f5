"""Decoding many files once per run: cache first, then a pool of one worker per core.

Threads, not processes: Pillow releases the GIL while it decodes and resizes, so threads scale
(1.8x on 2 cores, measured by ``make bench``) without process start-up, pickling of pixels, or the
fork/spawn pitfalls of a Qt app or a frozen executable.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.errors import ImageDecodeError
from trainer.common.events import CacheDiscarded, DecodeProgressed
from trainer.data.decode_cache import CachedEntry, DecodeCache, file_keys, store_quietly
from trainer.data.preprocess import decode_image

CHUNK_SIZE = 32  # files per pool task: small enough to cancel fast, big enough to amortise
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class DecodedFiles:
    pixels: np.ndarray  # (n_ok, size, size, 3) uint8, in input order of the readable files
    ok_indices: np.ndarray  # index into the input list for each row of ``pixels``
    errors: dict[int, str]  # input index -> reason
    from_cache: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    lasting: bool  # only lasting failures go into the cache


Decoded = np.ndarray | _Failure


def _decode_chunk(paths: Sequence[Path], config: PreprocessConfig, cancel: CancelToken) -> list[Decoded]:
    """Decode in order; stops early (returning fewer results) once cancelled."""
    out: list[Decoded] = []
    for path in paths:
        if cancel.cancelled:
            break
        try:
            out.append(decode_image(path, config))
        except ImageDecodeError as err:
            out.append(_Failure(err.reason, err.lasting))
    return out


def decode_files(
    paths: Sequence[Path],
    config: PreprocessConfig,
    options: DecodeOptions = DecodeOptions(),
    *,
    root: Path | None = None,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Generator[DecodeProgressed | CacheDiscarded, None, DecodedFiles]:
    """Decode every path once, yielding progress; cached results are reused and refreshed.

    A cache that cannot be used is decoded afresh and rewritten, and ``CacheDiscarded`` says so.
    On cancel (token or ``close()``), what was decoded so far is still written to the cache,
    atomically, and ``Cancelled``/``GeneratorExit`` propagates.
    """
    start = time.perf_counter()
    total = len(paths)
    results: list[Decoded | None] = [None] * total
    cache = None
    keys: list[str | None] = [None] * total
    cached: dict[str, CachedEntry] = {}
    if options.use_cache and root is not None:
        cache = DecodeCache(options.resolved_cache_dir, root, config)
        cached = cache.load()
        keys = file_keys(list(paths), root)
    for i, key in enumerate(keys):
        entry = cached.get(key) if key is not None else None
        if entry is not None:
            results[i] = entry.pixels if entry.pixels is not None else _Failure(entry.error or "", True)
    from_cache = sum(r is not None for r in results)
    todo = [i for i, r in enumerate(results) if r is None]
    yield DecodeProgressed(from_cache, total, from_cache)
    stored: str | None = None
    try:
        yield from _decode_todo(paths, todo, results, config, options, cancel, from_cache, total)
    finally:
        if cache is not None and todo:
            stored = store_quietly(cache.path, lambda: _store(cache, keys, results))
    if cache is not None and cache.problem:
        yield CacheDiscarded(str(cache.path), cache.problem, rewritten=stored is None and bool(todo))
    pixels, ok, errors = _collect(results, config)
    return DecodedFiles(pixels, ok, errors, from_cache, time.perf_counter() - start)


def _decode_todo(paths, todo, results, config, options, cancel, from_cache, total):
    if not todo:
        return
    done = from_cache
    chunks = [todo[i : i + CHUNK_SIZE] for i in range(0, len(todo), CHUNK_SIZE)]
    workers = min(options.resolved_workers, len(chunks))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facecomic-decode")
    pending: dict[Future, list[int]] = {}

    def harvest(future: Future) -> int:
        chunk = pending.pop(future)
        values = future.result()
        for i, value in zip(chunk, values, strict=False):  # fewer values when cancelled
            results[i] = value
        return len(values)

    try:
        for chunk in chunks:
            pending[pool.submit(_decode_chunk, [paths[i] for i in chunk], config, cancel)] = chunk
        last_report = 0.0
        while pending:
            finished, _ = wait(pending, timeout=PROGRESS_INTERVAL_S, return_when=FIRST_COMPLETED)
            done += sum(harvest(f) for f in finished)
            cancel.raise_if_cancelled()
            now = time.perf_counter()
            if finished and (now - last_report >= PROGRESS_INTERVAL_S or not pending):
                last_report = now
                yield DecodeProgressed(done, total, from_cache)
    finally:
        # On cancel, queued chunks are dropped and running ones stop at their next file; what
        # they finished is kept, so the cache holds everything that was decoded.
        pool.shutdown(wait=True, cancel_futures=True)
        for future in [f for f in pending if f.done() and not f.cancelled() and f.exception() is None]:
            harvest(future)


def _store(cache: DecodeCache, keys: list[str | None], results: list) -> None:
    entries = {}
    for key, value in zip(keys, results, strict=True):
        if key is None or value is None:
            continue
        if isinstance(value, _Failure):
            if value.lasting:
                entries[key] = CachedEntry(None, value.reason)
        else:
            entries[key] = CachedEntry(value, None)
    cache.store(entries)


def _collect(results: list, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    ok = [i for i, v in enumerate(results) if isinstance(v, np.ndarray)]
    errors = {i: v.reason for i, v in enumerate(results) if isinstance(v, _Failure)}
    pixels = np.zeros((len(ok), config.size, config.size, 3), np.uint8)
    for row, i in enumerate(ok):
        pixels[row] = results[i]
    return pixels, np.array(ok, dtype=np.int64), errors
