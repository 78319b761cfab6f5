"""``facecomic-predict --cluster`` and ``facecomic-train --cluster``: the driver's side on a
terminal. Imported by ``trainer.cli`` only when ``--cluster`` is given, so a plain run never
loads Dask.

Every check that can fail on the input (the CSV and its sidecar, the input list, the model, the
images, the cluster's address, another job's shards) runs before anything is written; then the
shards are written as chunks finish, merged into the CSV (atomically, with its sidecar), and
removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from trainer.cluster.engine import connect, warm_up
from trainer.cluster.shards import Shards, parts_folder
from trainer.common.assets import default_model_path
from trainer.common.configs import ClusterOptions, DecodeOptions, TrainConfig
from trainer.common.console import EXIT_OK, EXIT_PARTIAL, PipeSafeWriter, for_stream, interrupted, say
from trainer.common.errors import FaceComicError
from trainer.common.events import run_events
from trainer.common.outputs import check_outputs, open_output, refuse_inputs, write_text
from trainer.common.text import one_line, plural
from trainer.data.input_list import is_remote, local_path, read_input_list

PROG = "facecomic-predict"


class ProgressLine:
    """The local CLI's progress line (``[####....]  42%  TEXT  ETA 3s``), redrawn on a
    terminal, or a line at each quarter otherwise; the rate counts only this run's images."""

    def __init__(self, stream: TextIO, verb: str) -> None:
        self.stream, self.verb = stream, verb
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.width = 0
        self.quarter = 0
        self.last = 0.0

    def show(self, done: int, total: int, resumed: int) -> None:
        from trainer.training.progress import format_duration

        now = time.monotonic()
        elapsed = now - self.start
        rate = (done - resumed) / elapsed if elapsed > 0 and done > resumed else None
        eta = format_duration((total - done) / rate if rate else None)
        percent = int(100 * done / total) if total else 100
        text = f"{self.verb} {done:,}/{total:,}" + (f", {rate:,.0f} images/s" if rate else "")
        if resumed:
            text += f" ({resumed:,} from an earlier run)"
        if self.tty:
            if now - self.last < 0.1 and done < total:
                return
            self.last = now
            filled = int(24 * done / total) if total else 24
            line = for_stream(
                f"[{'#' * filled}{'.' * (24 - filled)}] {percent:3d}%  {text}  ETA {eta}", self.stream
            )
            self.stream.write("\r" + line + " " * max(0, self.width - len(line)))
            self.stream.flush()
            self.width = len(line)
        elif percent // 25 > self.quarter:
            self.quarter = percent // 25
            say(f"{percent:3d}%  {text}  ETA {eta}", self.stream)

    def clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _model_bytes(path: Path) -> bytes:
    """The model file, checked as the local CLI checks it, then read once for the workers."""
    from trainer.model.model_file import load_model

    load_model(path)  # one ModelFileError sentence for a bad or unreadable file
    try:
        return path.read_bytes()
    except OSError as err:
        raise FaceComicError(f"The model {one_line(path)} cannot be read ({err.strerror or err}).") from None


def _inputs_digest(sources: list[str]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def predict_on_cluster(args: argparse.Namespace, cluster: ClusterOptions) -> int:
    """The whole ``--cluster`` prediction; the exit code (errors raise, as the local CLI's do)."""
    from trainer.cluster.predict_job import PredictJob, run_predict_job
    from trainer.data.dataset import collect_images
    from trainer.prediction.export import csv_outputs

    warm_up(cluster)
    model_path = args.model or default_model_path()
    entries = list(args.paths) + (read_input_list(args.input_list) if args.input_list else [])
    remote = [e for e in entries if is_remote(e)]
    local = [local_path(e) for e in entries if not is_remote(e)]
    outputs = csv_outputs(args.csv, "--csv")
    parts = parts_folder(args.csv)
    outputs["its shard folder"] = parts  # refused when it is an input; a folder there is for --resume
    targets = check_outputs({k: v for k, v in outputs.items() if v != parts}, inputs=[model_path, *local])
    if args.model is None and not model_path.exists():
        raise FaceComicError(
            f"No default model is installed ({model_path} is missing); pass --model MODEL.safetensors."
        )
    model = _model_bytes(model_path)
    paths, skipped = collect_images(local)
    for s in skipped:
        say(f"{one_line(s.path)}\tskipped\t{one_line(s.reason)}", sys.stderr)
    if not paths and not remote:
        shown = ", ".join(one_line(p) for p in entries) or one_line(args.input_list)
        raise FaceComicError(f"No images found in {shown}.")
    refuse_inputs(targets, paths)
    sources = [str(p) for p in paths] + remote
    reads = [os.path.abspath(p) for p in paths] + remote
    sha256 = hashlib.sha256(model).hexdigest()
    job = PredictJob(tuple(sources), tuple(reads), model, sha256, cluster.chunk_size)
    shards = Shards(
        parts,
        {"model_sha256": sha256, "inputs_sha256": _inputs_digest(sources), "images": len(sources),
         "chunk_size": cluster.chunk_size},
    )  # fmt: skip
    shards.check(resume=args.resume)
    with connect(cluster) as connected:
        say(f"Connected to {connected.description} in {connected.seconds:.1f}s", sys.stderr)
        progress = ProgressLine(sys.stderr, "Predicting")
        shards.start()
        events = run_predict_job(connected.client, job, shards)
        try:
            run_events(events, lambda e: progress.show(e.done, e.total, e.resumed))
        except KeyboardInterrupt as err:
            progress.clear()
            events.close()
            kept = len(list(parts.glob("shard-*.jsonl")))
            return interrupted(
                PROG, err, f"no CSV was written; {plural(kept, 'finished chunk')} kept in {one_line(parts)}: "
                "run the same command with --resume to continue."
            )  # fmt: skip
        finally:
            progress.clear()
    seconds = time.monotonic() - progress.start
    sidecar = outputs.get("its sidecar")
    tally = _write_csv(args, job, shards, model_path, sidecar)
    shards.remove()
    where = f"model, version and date in {one_line(sidecar)}" if sidecar else "a stream: no sidecar"
    rate = tally.rows / seconds if seconds > 0 else 0.0
    say(
        f"{tally.summary()} on {connected.description} in {seconds:.1f}s after connecting "
        f"({rate:,.0f} images/s); CSV written to {one_line(args.csv)} ({where})",
        sys.stderr,
    )
    return EXIT_PARTIAL if tally.failed else EXIT_OK


def _write_csv(args: argparse.Namespace, job, shards: Shards, model_path: Path, sidecar: Path | None):
    """The shards, in order, streamed into the CSV (atomically: whole or not at all) and onto
    stdout as the local CLI prints them; then the sidecar. Only one shard is in memory at a time."""
    from trainer.cluster.predict_job import merged
    from trainer.prediction.export import csv_sidecar, write_csv_rows
    from trainer.prediction.report import Tally, print_rows

    stdout, tally = PipeSafeWriter(sys.stdout), Tally()

    def rows():
        for prediction in merged(job, shards):
            tally.add(prediction)
            print_rows([prediction], stdout)
            yield prediction

    with open_output(args.csv, "w") as handle:
        write_csv_rows(handle, rows(), excel_safe_cells=args.excel_safe)
    if sidecar is not None:
        info = csv_sidecar(model_path, tally.rows, excel_safe_cells=args.excel_safe)
        write_text(sidecar, json.dumps(info, indent=2) + "\n")
    return tally


def extract_on_cluster(
    data_dir: str | os.PathLike[str],
    config: TrainConfig,
    decode: DecodeOptions,
    cluster: ClusterOptions,
    *,
    quiet: bool = False,
) -> None:
    """``facecomic-train --cluster``: the data set's features into the cache, on the cluster
    (with ``quiet``, as ``-q``: no progress line)."""
    from trainer.cluster.extract_job import extract_to_cache

    if not decode.use_cache:
        raise FaceComicError("--cluster fills the feature cache that the run then reads; drop --no-cache.")
    warm_up(cluster)
    with connect(cluster) as connected:
        say(f"Connected to {connected.description} in {connected.seconds:.1f}s", sys.stderr)
        progress = ProgressLine(sys.stderr, "Extracting features on the cluster")
        events = extract_to_cache(connected.client, data_dir, config, decode, cluster)
        try:
            done = run_events(events, lambda e: quiet or progress.show(e.done, e.total, e.from_cache))
        finally:
            progress.clear()
            events.close()
    cached = f", {done.from_cache:,} already in the cache" if done.from_cache else ""
    say(
        f"Extracted features of {plural(done.extracted, 'image')} on {connected.description} in "
        f"{done.seconds:.1f}s{cached}",
        sys.stderr,
    )
    if done.store_problem:
        raise FaceComicError(f"The feature cache {done.cache} could not be written ({done.store_problem}).")
