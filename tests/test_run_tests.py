"""``scripts/run_tests.py`` (``make test``): its two parts run every test file once, and what it
prints for a failed part replays exactly that part."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _runner():
    spec = importlib.util.spec_from_file_location("run_tests", REPO / "scripts" / "run_tests.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _files_of(paths: list[str]) -> set[Path]:
    found: set[Path] = set()
    for path in (REPO / p for p in paths if not p.startswith("-")):
        found |= {path} if path.is_file() else set(path.rglob("test_*.py"))
    return found


def test_the_two_parts_run_every_test_file_once():
    runner = _runner()
    first, second = runner.parts(2, [])
    assert all((REPO / path).exists() for path in runner.FIRST_PART)  # a renamed file fails here
    in_first = _files_of(first.paths)
    ignored = _files_of([a.removeprefix("--ignore=") for a in second.paths if a.startswith("--ignore=")])
    in_second = _files_of(["tests"]) - ignored
    assert in_first == ignored and in_first and in_second
    assert in_first | in_second == _files_of(["tests"]) and not in_first & in_second


def test_a_failed_part_is_replayed_with_its_paths_seed_and_arguments():
    runner = _runner()
    part = runner.parts(2, ["-k", "sort or undo"])[1]
    words = shlex.split(runner.shown_command(part, 7))
    assert words[:4] == [".venv/bin/python", "-m", "pytest", "tests"]
    assert words[4:] == [*part.paths[1:], "--randomly-seed=7", "-k", "sort or undo"]
    assert part.command(7)[1:] == words[1:]


def test_progress_is_the_last_percentage_pytest_printed(tmp_path: Path):
    runner = _runner()
    part = runner.Part("p", ["tests"], tmp_path / "p.log")
    assert part.progress() == "starting"
    part.log.write_bytes(b"collecting ...\n")
    assert part.progress() == "collecting"
    part.log.write_bytes(b"....  [  9%]\n.....F [ 42%]\n..")
    assert part.progress() == "42%"
