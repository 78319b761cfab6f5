"""Feature extraction for training on the cluster, into the one feature cache a local run reads.

The driver scans the data set as ``run_experiment`` will, looks each file up in the same cache
(``FeatureCache``: same folder, same keys, same entries), sends what is missing to the workers in
chunks, and stores what came back, even on Ctrl+C. The local run that follows then finds every
entry in the cache and trains exactly as it would have: the same rows, so the same model.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass

from trainer.cluster.worker import extract_chunk
from trainer.common.configs import ClusterOptions, DecodeOptions, TrainConfig
from trainer.common.errors import FaceComicError
from trainer.common.events import FeaturesProgressed
from trainer.data.dataset import scan_dataset
from trainer.features.cache import FeatureCache, file_keys, store_quietly
from trainer.features.registry import featurizer_for, resolved_config
from trainer.features.types import Failure


@dataclass(frozen=True, slots=True)
class ClusterExtraction:
    """How it went: images extracted on the cluster, found in the cache, and the seconds."""

    extracted: int
    from_cache: int
    seconds: float
    cache: str
    store_problem: str | None


def extract_to_cache(
    client,
    data_dir: str | os.PathLike[str],
    config: TrainConfig,
    decode: DecodeOptions,
    cluster: ClusterOptions,
) -> Generator[FeaturesProgressed, None, ClusterExtraction]:
    """Fill the feature cache of ``data_dir`` for ``config``'s features on the cluster."""
    from distributed import as_completed

    start = time.perf_counter()
    config = resolved_config(config)
    featurizer = featurizer_for(config.features)
    scan = scan_dataset(data_dir)
    paths = [p for files in scan.files for p in files]
    cache = FeatureCache(decode.resolved_cache_dir, scan.root, featurizer)
    keys = file_keys(paths, scan.root)
    entries = cache.load()
    todo = [i for i, key in enumerate(keys) if key is not None and key not in entries]
    cached = len(paths) - len(todo)
    yield FeaturesProgressed(cached, len(paths), cached)
    chunks = [todo[i : i + cluster.chunk_size] for i in range(0, len(todo), cluster.chunk_size)]
    resources = {"GPU": 1} if config.device == "cuda" else None
    device = "cuda" if config.device == "cuda" else "cpu"
    token = uuid.uuid4().hex[:8]
    identity, preprocess = featurizer.identity, featurizer.preprocess.to_dict()
    futures = {
        client.submit(
            extract_chunk, identity, preprocess, [os.path.abspath(paths[k]) for k in chunk], device,
            key=f"facecomic-extract-{token}-{n}", resources=resources,
        ): chunk
        for n, chunk in enumerate(chunks)
    }  # fmt: skip
    done, problem = cached, None
    try:
        for future in as_completed(futures, loop=client.loop):
            chunk = futures[future]
            try:
                values = future.result()
            except Exception as err:
                detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
                raise FaceComicError(
                    f"Feature extraction failed on the cluster ({type(err).__name__}: {detail}); what "
                    "was extracted so far is kept in the cache."
                ) from None
            for k, value in zip(chunk, values, strict=True):
                if not (isinstance(value, Failure) and not value.lasting):
                    entries[keys[k]] = value
            future.release()
            done += len(chunk)
            yield FeaturesProgressed(done, len(paths), cached)
    finally:
        client.cancel(list(futures))
        if todo:
            current = {k: entries[k] for k in keys if k is not None and k in entries}
            problem = store_quietly(cache.path, lambda: cache.store(current))
    return ClusterExtraction(len(todo), cached, time.perf_counter() - start, str(cache.path), problem)
