"""A sort (or an undo) in its own process, for the SIGKILL test. The test forks each one from a
fork server that has imported this module (``forked``), which sends how many images it has
handled after each one, so the test can kill it at a chosen point. The labels come from the
file names (``sort_helpers.predict_by_name``), so no model and no torch load.

``--broken`` replaces the move with one that deletes the source before writing the copy, the
mistake the test exists to catch.

``os.fsync`` does nothing here. It guards against a power cut, not against a killed process: what
a process wrote stays in the kernel's page cache after SIGKILL, so an fsync cannot change what
the test finds after a kill; it only costs a disk flush per image (two thirds of a sort's time
here). The order of the steps (temp file, rename, log row) is what a kill tests, and it stays.
That the sort and its undo do call it, for each step, is checked in test_sorting.py
(``test_a_move_and_its_undo_flush_every_step_to_disk``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.trainer.sort_helpers import predict_by_name
from trainer.data.walk import collect_images
from trainer.prediction import sort_events, sort_plan, sort_undo, sorting


def _no_fsync(fd: int) -> None:
    """See the module's docstring: a SIGKILL loses nothing an fsync would have kept."""


def delete_then_copy(source, target, *, expected_sha256=None):
    data = Path(source).read_bytes()
    os.unlink(source)  # wrong: the picture now exists only in memory
    time.sleep(0.01)  # as writing a large photo takes; without it the window is too short to hit
    with open(target, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return None


def forked(source: str, target: str, undo: bool, broken: bool, connection) -> None:
    """The entry point of a child forked from the test's fork server (this module preloaded):
    the sort (or the undo), sending ``done`` after each image handled. Its stderr goes nowhere,
    as the test's own process's output is not this child's to write."""
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process's whole life)
    os.fsync = _no_fsync
    if broken:
        sorting.move_file = delete_then_copy
    if undo:
        events = sort_undo.undo_sort(Path(target))
    else:
        prune = sort_plan.check_target(Path(target), [Path(source)])
        paths, _ = collect_images([Path(source)], prune=prune)
        plan = sort_plan.plan_sort([predict_by_name(p) for p in paths], Path(target), move=True)
        events = sorting.execute_sort(plan)
    for event in events:
        if isinstance(event, sort_events.ImageSorted | sort_events.ImageRestored):
            connection.send(event.done)
        elif isinstance(event, sort_events.ImageLeftInPlace | sort_events.ImageNotRestored):
            print(f"problem: {event}", file=sys.stderr, flush=True)
    connection.close()
