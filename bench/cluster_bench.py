"""``facecomic-predict`` on the bench JPEGs: the local CLI against ``--cluster local`` with 1 and 2
workers, in one run (section 8 of ``make bench``; alone: ``python -m bench.cluster_bench``).

Two measures, each alternating the three ways ``repeats`` times (medians), so a burst of other
work on a shared machine does not land on one way only:

1. End to end, the real console script in a new process: wall time, and the time after
   start-up (for the local CLI: less an interpreter that imports torch and the trainer; for the
   cluster: the job after the cluster answered, as its summary line says, and the connect time).
2. Steady state, in this process, on a longer job (the images ``steady_passes`` times): the local
   ``Predictor`` on every core, against a cluster that is already up with the model loaded on its
   workers (the tasks of ``trainer.cluster.worker``, ``chunk_size`` images each).

What the cluster adds beyond the images' work: the cluster's start (a forkserver that imports
torch, the worker processes, the scheduler), the model plugin's load on each worker, and per task
the scheduler's round trip and the rows sent back.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.make_data import ensure_bench_data

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "data" / "face2comics-sample"
BIN = Path(sys.executable).parent
WAYS = ("local", "cluster-1", "cluster-2")


def _script(way: str, folder: Path, out: Path) -> dict[str, float]:
    args = [str(BIN / "facecomic-predict"), str(folder), "--csv", str(out)]
    if way != "local":
        args += ["--cluster", "local", "--cluster-workers", way.split("-")[1]]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{way} failed ({done.returncode}): {done.stderr[-500:]}")
    result = {"wall": wall}
    connected = re.search(r"Connected to .* in ([\d.]+)s", done.stderr)
    job = re.search(r" in ([\d.]+)s after connecting", done.stderr)
    if connected and job:
        result.update(connect=float(connected.group(1)), job=float(job.group(1)))
    return result


def _startup_seconds() -> float:
    """A new interpreter importing torch and what facecomic-predict imports before its work."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import torch, onnxruntime, trainer.cli, trainer.prediction.predictor"],
        check=True,
    )
    return time.perf_counter() - start


def end_to_end(folder: Path, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    startups = []
    with tempfile.TemporaryDirectory(prefix="facecomic-cluster-bench-") as tmp:
        for r in range(repeats):
            startups.append(_startup_seconds())
            for way in WAYS if r % 2 == 0 else reversed(WAYS):
                out = Path(tmp) / f"{way}-{r}.csv"
                runs[way].append(_script(way, folder, out))
    startup = statistics.median(startups)
    result = {"startup": startup}
    for way, found in runs.items():
        entry = {"wall": statistics.median(f["wall"] for f in found)}
        if way == "local":
            entry["after_startup"] = statistics.median(max(1e-6, f["wall"] - startup) for f in found)
        else:
            entry["connect"] = statistics.median(f["connect"] for f in found)
            entry["after_startup"] = statistics.median(f["job"] for f in found)
        result[way] = entry
    return result


def steady_state(paths: list[Path], passes: int, chunk_size: int, repeats: int) -> dict:
    """images/s of the scoring alone on ``passes`` x the images: local lanes against a warm cluster."""
    from distributed import Client, LocalCluster

    from trainer.cluster.engine import _use_forkserver
    from trainer.cluster.worker import ModelPlugin, predict_chunk
    from trainer.common.assets import default_model_path
    from trainer.prediction.predictor import Predictor

    items = [str(p) for p in paths] * passes
    model = default_model_path().read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    predictor = Predictor.from_file(default_model_path())
    predictor.predict(paths[:8])  # the session's first run
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    _use_forkserver()
    logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines at close are noise here
    clusters = {}
    try:
        for n in (1, 2):
            local = LocalCluster(
                n_workers=n, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
            )
            client = Client(local, set_as_default=False)
            client.register_plugin(ModelPlugin(model, sha), name="bench-model")
            clusters[f"cluster-{n}"] = (local, client)
        for r in range(repeats):
            for way in WAYS if r % 2 == 0 else reversed(WAYS):
                start = time.perf_counter()
                if way == "local":
                    predictor.predict([Path(p) for p in items])
                else:
                    client = clusters[way][1]
                    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
                    futures = [client.submit(predict_chunk, sha, chunk, pure=False) for chunk in chunks]
                    client.gather(futures)
                rates[way].append(len(items) / (time.perf_counter() - start))
    finally:
        for local, client in clusters.values():
            client.close()
            local.close()
    return {way: statistics.median(found) for way, found in rates.items()} | {"images": len(items)}


def run(folder: Path, *, repeats: int = 2, passes: int = 3, chunk_size: int = 256) -> dict:
    paths = sorted(p for p in folder.rglob("*.jpg"))
    for path in paths:  # every file read once, so no way pays for a cold disk cache
        path.read_bytes()
    load = os.getloadavg()[0]
    e = end_to_end(folder, repeats)
    print(f"  end to end, seconds: {json.dumps(e)}", flush=True)  # kept should the rest fail
    return {
        "images": len(paths),
        "load_average_before": load,
        "end_to_end": e,
        "steady": steady_state(paths, passes, chunk_size, repeats),
        "load_average_after": os.getloadavg()[0],
    }


def report(result: dict) -> None:
    e, s, n = result["end_to_end"], result["steady"], result["images"]
    print(f"  {n:,} JPEGs; load average {result['load_average_before']:.1f} before, "
          f"{result['load_average_after']:.1f} after; images/s (higher is better):")  # fmt: skip
    print("  way                       end to end   after start-up   steady state   connect")
    for way in WAYS:
        connect = f"{e[way]['connect']:6.1f} s" if "connect" in e[way] else "     -  "
        print(
            f"  {way:24s} {n / e[way]['wall']:11.1f} {n / e[way]['after_startup']:16.1f} "
            f"{s[way]:14.1f}   {connect}"
        )
    for kind, local, two in (
        ("end to end", n / e["local"]["wall"], n / e["cluster-2"]["wall"]),
        ("after start-up", n / e["local"]["after_startup"], n / e["cluster-2"]["after_startup"]),
        (f"steady ({s['images']:,} images)", s["local"], s["cluster-2"]),
    ):
        share = two / local
        print(
            f"  2 workers / local CLI, {kind}: {share:.0%} (target >= 80%: {'met' if share >= 0.8 else 'MISSED'})"
        )
    print(f"  interpreter + torch start-up of a new process: {e['startup']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--passes", type=int, default=3, help="the steady-state job: the images N times")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench" / "data")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)
    folder = ensure_bench_data(args.sample, args.data_dir, args.images)
    print(f"`facecomic-predict` locally and with --cluster local ({os.cpu_count()} cores):", flush=True)
    result = run(folder, repeats=args.repeats, passes=args.passes, chunk_size=args.chunk_size)
    report(result)
    out = REPO / "bench" / "out" / f"cluster-n{args.images}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
