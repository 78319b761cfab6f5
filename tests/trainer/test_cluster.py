"""``--cluster`` (the ``[cluster]`` extra, Dask) against the local CLI, on a local cluster of 2
workers: the same rows, a worker killed mid-job, a job killed as a whole then ``--resume``d,
sorting from the CSV, training with the features extracted on the cluster, and bad input."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import distributed  # noqa: F401
except ImportError:  # make test installs the extra; a venv without it skips, CI fails
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("the cluster extra is not installed", allow_module_level=True)

from trainer.cli import predict_main, train_main

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLES = ("face2comics-sample", "diverse-sample", "styles-sample")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def samples() -> list[Path]:
    folders = [SHARED_DATA / name for name in SAMPLES]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the samples are not here: {missing}")
        pytest.skip(f"the real samples are not here: {missing}")
    return folders


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local cluster of 2 single-threaded worker processes, as ``--cluster local`` starts."""
    from distributed import Client, LocalCluster

    from trainer.cluster.engine import _use_forkserver

    with pytest.MonkeyPatch.context() as patch:  # the workers' own backbone cache, never the user's
        patch.setenv("FACECOMIC_CACHE_DIR", str(tmp_path_factory.mktemp("worker-cache")))
        _use_forkserver()
        local = LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
        )
    client = Client(local, set_as_default=False)
    yield local, client
    client.close()
    local.close()


@pytest.fixture(scope="module")
def reference(samples, tmp_path_factory) -> dict[str, list[str]]:
    """The local CLI's CSV rows over the three samples, by path."""
    out = tmp_path_factory.mktemp("reference") / "local.csv"
    code = predict_main([*map(str, samples), "--csv", str(out)])
    assert code == 0
    return {row[0]: row for row in read_rows(out)}


def read_rows(path: Path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["path", "label", "confidence", "flag", "error"]
    return rows[1:]


def assert_same_rows(rows: list[list[str]], reference: dict[str, list[str]]) -> None:
    """Every row once, each equal to the local CLI's: labels, flags, errors; confidences within 1e-5."""
    assert len({r[0] for r in rows}) == len(rows)
    for path, label, confidence, flag, error in rows:
        want = reference[path]
        assert (label, flag, error) == (want[1], want[3], want[4]), path
        if confidence or want[2]:
            assert abs(float(confidence) - float(want[2])) <= 1e-5, path


def test_cluster_local_gives_the_local_cli_rows(samples, reference, tmp_path, capsys):
    out = tmp_path / "cluster.csv"
    code = predict_main(
        ["--cluster", "local", "--cluster-workers", "2", *map(str, samples), "--csv", str(out)]
    )
    assert code == 0
    rows = read_rows(out)
    assert [r[0] for r in rows] == list(reference)  # the same order, row for row
    assert_same_rows(rows, reference)
    assert not (tmp_path / "cluster.csv.parts").exists()  # the shards are merged and gone
    assert (tmp_path / "cluster.csv.json").is_file()
    err = capsys.readouterr().err
    assert "on a local cluster of 2 workers" in err and "Predicting" in err


def _job(paths: list[Path], chunk_size: int, shards_dir: Path):
    from trainer.cluster.predict_job import PredictJob
    from trainer.cluster.shards import Shards
    from trainer.common.assets import default_model_path

    model = default_model_path().read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    job = PredictJob(tuple(map(str, paths)), tuple(map(str, paths)), model, sha, chunk_size)
    shards = Shards(shards_dir, {"test": True})
    shards.start()
    return job, shards


def test_a_worker_killed_mid_job_loses_and_repeats_no_row(samples, reference, cluster, tmp_path):
    from trainer.cluster.predict_job import merged, run_predict_job
    from trainer.data.dataset import collect_images

    _, client = cluster
    paths, _ = collect_images([samples[0]])
    job, shards = _job(paths, 16, tmp_path / "parts")
    events = run_predict_job(client, job, shards)
    killed = None
    while True:
        try:
            event = next(events)
        except StopIteration:
            break
        if killed is None and event.done > 0:
            busy = []
            while not busy:  # a worker with a chunk under way (there always is one soon)
                busy = [addr for addr, keys in client.processing().items() if keys]
            pids = client.run(os.getpid)
            killed = pids[busy[0]]
            os.kill(killed, signal.SIGKILL)  # mid-chunk: its task is lost and run again elsewhere
    assert killed is not None
    assert killed not in client.run(os.getpid).values()  # the nanny started another process
    predictions = list(merged(job, shards))
    rows = [[p.source, p.label or "", f"{p.confidence:.6f}", p.flag, p.error or ""] for p in predictions]
    assert [r[0] for r in rows] == list(map(str, paths))
    assert_same_rows(rows, reference)
    assert len(list((tmp_path / "parts").glob("shard-*.jsonl"))) == -(-len(paths) // 16)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_a_job_killed_then_resumed_gives_the_same_csv(samples, reference, cluster, tmp_path, how):
    local, _ = cluster
    out = tmp_path / "p.csv"
    parts = tmp_path / "p.csv.parts"
    args = ["--cluster", local.scheduler_address, "--chunk-size", "16", str(samples[0]), "--csv", str(out)]
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # Ctrl+C as a terminal delivers it: a test run in the background inherits SIGINT
            # ignored (POSIX), and Python then installs no KeyboardInterrupt handler at all.
            "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from trainer.cli import predict_main; sys.exit(predict_main(sys.argv[1:]))",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(parts.glob("shard-*.jsonl"))) < 3:
            assert driver.poll() is None, driver.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        driver.send_signal(how)  # SIGKILL: the driver as a whole, at any moment, nothing runs after it
        code = driver.wait(timeout=60)
        message = driver.stderr.read().decode()
    finally:
        driver.kill()
        driver.wait()
        driver.stderr.close()
    if how == signal.SIGINT:  # Ctrl+C: one line, exit 130, the shards kept
        assert code == 130
        assert "cancelled; no CSV was written" in message and "--resume" in message
    assert not out.exists()
    kept = len(list(parts.glob("shard-*.jsonl")))
    assert 3 <= kept < 26
    assert predict_main(args) == 2  # without --resume the shards are not silently reused
    assert predict_main([*args, "--resume"]) == 0
    rows = read_rows(out)
    assert [r[0] for r in rows] == [p for p in reference if p.startswith(str(samples[0]) + "/")]
    assert_same_rows(rows, reference)
    assert not parts.exists()


def _tree(folder: Path) -> list[tuple[str, str]]:
    return sorted(
        (str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in folder.rglob("*")
        if p.is_file() and p.name != "facecomic-sort-log.csv"
    )


def test_sorting_from_the_csv_gives_the_folders_of_a_direct_sort(samples, tmp_path):
    import shutil

    images = sorted((samples[1] / "comics").glob("*"))[:12] + sorted((samples[1] / "faces").glob("*"))[:12]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for image in images:
            shutil.copy(image, tmp_path / name / image.name)
    assert predict_main(["--sort-into", str(tmp_path / "direct"), "--move", str(tmp_path / "a")]) == 0
    csv_path = tmp_path / "b.csv"
    assert predict_main([str(tmp_path / "b"), "--csv", str(csv_path)]) == 0
    sort = ["--sort-into", str(tmp_path / "from-csv"), "--move", "--from-csv", str(csv_path)]
    assert predict_main(sort) == 0
    assert _tree(tmp_path / "direct") == _tree(tmp_path / "from-csv") != []
    assert not list((tmp_path / "b").iterdir())  # every image moved
    assert predict_main(["--undo-sort", str(tmp_path / "from-csv")]) == 0  # and today's undo works
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(i.name for i in images)


def test_training_on_the_cluster_gives_the_local_model(dataset, cluster, tmp_path):
    from safetensors.numpy import load_file

    local, _ = cluster
    base = [str(dataset), "--seed", "0", "-q"]
    assert train_main([*base, "--cache-dir", str(tmp_path / "c1"), "--out", str(tmp_path / "local.st")]) == 0
    remote = ["--cluster", local.scheduler_address, "--cache-dir", str(tmp_path / "c2")]
    assert train_main([*base, *remote, "--out", str(tmp_path / "cluster.st")]) == 0
    a, b = load_file(tmp_path / "local.st"), load_file(tmp_path / "cluster.st")
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].shape == b[name].shape, name
        assert abs(a[name].astype("float64") - b[name].astype("float64")).max(initial=0) <= 1e-5, name
    assert len(list((tmp_path / "c2").glob("*.npz"))) == 1  # the same cache, which the run then read


def _nothing_written(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["inputs"]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            ["--cluster", "tcp://127.0.0.1:9", "--cluster-timeout", "0.5"],
            "Could not reach the Dask scheduler",
        ),
        (["--cluster", "local", "--input-list", "{tmp}/missing.txt"], "does not exist"),
        (["--cluster", "local", "--model", "{tmp}/inputs/bad.safetensors"], "is not a valid FaceComic model"),
    ],
    ids=["unreachable address", "missing input list", "unreadable model"],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(samples, tmp_path, capsys, extra, problem):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "bad.safetensors").write_bytes(b"not a model")
    image = sorted((samples[0] / "faces").glob("*.jpg"))[0]
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code = predict_main([*args, str(image), "--csv", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and problem in err[0] and err[0].startswith("facecomic-predict: error: ")
    _nothing_written(tmp_path)


def test_train_with_an_unreachable_cluster_writes_nothing(dataset, tmp_path, capsys):
    args = ["--cluster", "tcp://127.0.0.1:9", "--cluster-timeout", "0.5", "--out", str(tmp_path / "m.st")]
    assert train_main([str(dataset), *args, "--cache-dir", str(tmp_path / "cache"), "-q"]) == 2
    assert "Could not reach the Dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "m.st").exists() and not (tmp_path / "cache").exists()


def test_the_plain_cli_and_the_app_never_load_dask(samples, tmp_path):
    image = sorted((samples[0] / "faces").glob("*.jpg"))[0]
    code = (
        "import sys; from trainer.cli import predict_main; import facecomic_gui.app;"
        f"code = predict_main([{str(image)!r}, '--csv', {str(tmp_path / 'p.csv')!r}]);"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed') or m.startswith('trainer.cluster')];"
        "print(bad); sys.exit(code or (3 if bad else 0))"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_input_list_with_urls_gives_a_row_each(samples, reference, cluster, tmp_path):
    """Plain paths and ``file://`` ones are read as files; another URL goes through fsspec on the
    worker, and one that cannot be read is an error row (here: no HTTP filesystem installed, or
    nothing listening), as an unreadable file is."""
    local, _ = cluster
    images = sorted((samples[0] / "faces").glob("*.jpg"))[:2]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{images[0]}\nfile://{images[1]}\nhttp://127.0.0.1:9/x.jpg\n")
    out = tmp_path / "p.csv"
    args = ["--cluster", local.scheduler_address, "--input-list", str(listing), "--csv", str(out)]
    assert predict_main(args) == 1  # done, with one unreadable
    rows = read_rows(out)
    assert [r[0] for r in rows] == [str(images[0]), str(images[1]), "http://127.0.0.1:9/x.jpg"]
    assert_same_rows(rows[:2], reference)
    assert rows[2][1] == "" and rows[2][4].startswith("could not read it")


def test_local_workers_are_not_forked_from_the_driver(cluster):
    """A fork of the driver copies the locks its other threads hold (Dask's event loop, its
    process-starting thread): a worker forked while one held stderr's waited forever (seen once
    in this suite). Workers come from a forkserver, started before any of those threads."""
    _, client = cluster
    parents = set(client.run(os.getppid).values())
    assert parents and os.getpid() not in parents
