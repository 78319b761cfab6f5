"""SIGKILL during a 2,000-file move and during its undo, at 20 random points each: after every
kill, what the next run does first (settle the step under way, ``sort_log.recover``) must leave
the multiset of SHA-256 of every image unchanged, with no temp file left; running the sort again
then finishes it, and undo restores every path and hash.

The sort runs in a child process (``sort_child``, forked from a fork server that has imported
it) that labels images by name instead of with a model, so each start is quick.
``test_the_kill_test_catches_a_move_that_deletes_first`` shows the test can fail: the same
procedure on a move that deletes before it writes finds a lost image."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.trainer import sort_child
from tests.trainer.sort_helpers import hashes, predict_by_name, temp_files, tree
from trainer.prediction.sort_log import SortLog, recover
from trainer.prediction.sort_plan import folder_of

FILES = 2_000
KILLS = 20


def make_pile(folder: Path, count: int, seed: int) -> None:
    """Small files in a few subfolders; one in twenty repeats an earlier file's bytes."""
    rng = random.Random(seed)
    contents: list[bytes] = []
    for i in range(count):
        data = (
            rng.choice(contents) if contents and rng.random() < 0.05 else rng.randbytes(rng.randint(64, 600))
        )
        contents.append(data)
        path = folder / f"part{i % 7}" / f"img{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _fork_server():
    """Children forked from a server that has imported the sort once: a start then costs no
    interpreter and no imports (0.1 s each, 80-odd starts a test). A fork server, not a fork
    of this process, which may hold torch's and Qt's threads."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.trainer.sort_child"])
    return context


FORK_SERVER = _fork_server()


def run_child(source: Path, target: Path, *, undo: bool, broken: bool, kill_after: int | None, rng) -> int:
    """Run the sort (or undo) in a child; SIGKILL it once it has handled ``kill_after`` images
    (plus a random fraction of a millisecond or two), or let it finish when None. Its exit
    code, negative for a signal, as ``subprocess`` gives it."""
    receive, send = FORK_SERVER.Pipe(duplex=False)
    child = FORK_SERVER.Process(target=sort_child.forked, args=(str(source), str(target), undo, broken, send))
    child.start()
    send.close()  # the child holds the only sending end: its exit ends the stream
    try:
        while True:
            try:
                done = receive.recv()
            except EOFError:
                break
            if kill_after is not None and done >= kill_after:
                time.sleep(rng.uniform(0, 0.002))
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        receive.close()
        child.join(timeout=120)
    return child.exitcode


def settle(target: Path) -> None:
    """What the next run does before anything else."""
    with SortLog.open(target, create=False) as log:
        recover(log)


def kill_repeatedly(source, target, original, *, undo: bool, broken: bool, seed: int) -> list[str]:
    """Kill at KILLS random points in a row, settling after each; the problems found (stops at
    the first)."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, FILES), KILLS))
    for n, point in enumerate(points, 1):
        handled = len(tree(target)) - 1 if not undo else len(tree(source))  # images at their new place
        code = run_child(
            source, target, undo=undo, broken=broken, kill_after=max(1, point - handled), rng=rng
        )
        if code != -signal.SIGKILL:
            return [f"kill {n} (near image {point}) missed: the child ended by itself with {code}"]
        if (target / "facecomic-sort-log.csv").exists():
            settle(target)
        now = hashes(source, target)
        if now != original:
            lost = sum((original - now).values())
            extra = sum((now - original).values())
            return [f"after kill {n} (near image {point}): {lost} images lost, {extra} extra or damaged"]
        leftovers = temp_files(source, target)
        if leftovers:
            return [f"after kill {n}: temp files left: {leftovers[:3]}"]
    return []


def other_file_system(tmp_path: Path) -> Path | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        return Path(tempfile.mkdtemp(dir=shm, prefix="facecomic-kill-"))
    return None


@pytest.fixture(params=["same file system", "across file systems"])
def places(request, tmp_path: Path):
    source = tmp_path / "in"
    if request.param == "same file system":
        yield source, tmp_path / "out"
        return
    other = other_file_system(tmp_path)
    if other is None:
        pytest.skip("no second file system here (/dev/shm) to move across")
    yield source, other / "out"
    shutil.rmtree(other, ignore_errors=True)


def test_sigkill_at_20_random_points_of_a_move_and_of_its_undo_loses_nothing(places):
    source, target = places
    make_pile(source, FILES, seed=16)
    original_tree = tree(source)
    original = Counter(original_tree.values())
    problems = kill_repeatedly(source, target, original, undo=False, broken=False, seed=1)
    assert problems == []
    assert (
        run_child(source, target, undo=False, broken=False, kill_after=None, rng=None) == 0
    )  # again: finishes
    assert tree(source) == {}
    assert hashes(target) == original
    expected = Counter(folder_of(p.label, p.flag) for p in map(predict_by_name, map(Path, original_tree)))
    got = Counter(str(Path(rel).parent) for rel in tree(target) if "/" in rel)
    assert got == expected

    problems = kill_repeatedly(source, target, original, undo=True, broken=False, seed=2)
    assert problems == []
    assert run_child(source, target, undo=True, broken=False, kill_after=None, rng=None) == 0
    assert tree(source) == original_tree  # every path and every hash
    assert list(tree(target)) == ["facecomic-sort-log.csv"]


def test_the_kill_test_catches_a_move_that_deletes_first(tmp_path: Path):
    source, target = tmp_path / "in", tmp_path / "out"
    make_pile(source, FILES, seed=16)
    original = hashes(source)
    problems = kill_repeatedly(source, target, original, undo=False, broken=True, seed=1)
    assert problems and "lost" in problems[0], problems
