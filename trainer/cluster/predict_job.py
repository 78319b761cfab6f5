"""Scoring a list of images on the cluster: one task per chunk, one shard per finished chunk,
the predictions back in input order at the end.

The model's bytes are read once by the driver and handed to every worker once (``ModelPlugin``);
tasks carry only file names. Dask retries the task of a worker that died (its nanny starts a new
worker, which gets the plugin too); a chunk delivered twice is written once (``Shards.write``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from trainer.cluster.shards import Shards
from trainer.cluster.worker import ModelPlugin, predict_chunk
from trainer.common.errors import FaceComicError
from trainer.prediction.predictor import Prediction


@dataclass(frozen=True, slots=True)
class ChunkPredicted:
    """Images done so far (``resumed`` of them from shards an earlier run wrote), of ``total``."""

    done: int
    total: int
    resumed: int


@dataclass(frozen=True, slots=True)
class PredictJob:
    """``sources``: the names rows carry (as the local CLI writes them); ``reads``: what a worker
    opens for each (an absolute path, or a URL)."""

    sources: tuple[str, ...]
    reads: tuple[str, ...]
    model: bytes
    sha256: str
    chunk_size: int

    def chunks(self) -> list[range]:
        n, size = len(self.sources), self.chunk_size
        return [range(start, min(start + size, n)) for start in range(0, n, size)]


def run_predict_job(client, job: PredictJob, shards: Shards) -> Generator[ChunkPredicted, None, None]:
    """Score every chunk without a shard, yielding progress after each; then every chunk has one
    (``merged`` reads them back in order)."""
    chunks = job.chunks()
    sizes = [len(c) for c in chunks]
    done = shards.done(sizes)
    resumed = sum(sizes[i] for i in done)
    yield ChunkPredicted(resumed, len(job.sources), resumed)
    todo = [i for i in range(len(chunks)) if i not in done]
    if todo:
        yield from _score(client, job, shards, chunks, todo, resumed)


def merged(job: PredictJob, shards: Shards) -> Iterator[Prediction]:
    """Every prediction in input order, one shard in memory at a time."""
    for i, chunk in enumerate(job.chunks()):
        for row in _checked(shards, i, job, chunk):
            yield _prediction(row)


def _score(client, job, shards, chunks, todo, resumed) -> Generator[ChunkPredicted, None, None]:
    from distributed import as_completed

    plugin = ModelPlugin(job.model, job.sha256)
    client.register_plugin(plugin, name=plugin.name)
    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            predict_chunk, job.sha256, [job.reads[k] for k in chunks[i]], key=f"facecomic-predict-{token}-{i}"
        ): i
        for i in todo
    }
    count = resumed
    try:
        for future in as_completed(futures, loop=client.loop):
            i = futures[future]
            rows = _result(future, i)
            shards.write(
                i, [{"source": job.sources[k], **row} for k, row in zip(chunks[i], rows, strict=True)]
            )
            future.release()
            count += len(chunks[i])
            yield ChunkPredicted(count, len(job.sources), resumed)
    finally:
        client.cancel(list(futures))
        with contextlib.suppress(Exception):  # the cluster may be gone (Ctrl+C): nothing to undo
            client.unregister_worker_plugin(plugin.name)


def _result(future, index: int):
    """The task's rows; a task that failed, or whose workers kept dying, is one sentence."""
    try:
        return future.result()
    except Exception as err:
        name = type(err).__name__
        if name == "KilledWorker":
            raise FaceComicError(
                f"The workers running chunk {index} died again and again (Dask's allowed-failures); "
                "the shards written so far are kept: run again with --resume."
            ) from None
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise FaceComicError(f"Chunk {index} failed on the cluster ({name}: {detail}).") from None


def _checked(shards: Shards, index: int, job: PredictJob, chunk: range) -> list[dict]:
    rows = shards.read(index)
    if [r.get("source") for r in rows] != [job.sources[k] for k in chunk]:
        raise FaceComicError(f"{shards.path(index)} does not hold the images of chunk {index}.")
    return rows


def _prediction(row: dict) -> Prediction:
    return Prediction(
        row["source"],
        label=row.get("label"),
        display_label=row.get("display_label"),
        confidence=row.get("confidence"),
        probabilities=row.get("probabilities"),
        flag=row.get("flag") or "",
        error=row.get("error"),
    )
