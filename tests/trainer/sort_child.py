"""A sort (or an undo) in its own process, for the SIGKILL test: ``python -m
tests.trainer.sort_child SOURCE TARGET [--undo] [--broken]``. It prints how many images it has
handled after each one, so the test can kill it at a chosen point. The labels come from the file
names (``sort_helpers.predict_by_name``), so no model and no torch load: a start costs a fraction
of a second.

``--broken`` replaces the move with one that deletes the source before writing the copy, the
mistake the test exists to catch."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.trainer.sort_helpers import predict_by_name
from trainer.data.walk import collect_images
from trainer.prediction import sort_events, sort_plan, sort_undo, sorting


def delete_then_copy(source, target, *, expected_sha256=None):
    data = Path(source).read_bytes()
    os.unlink(source)  # wrong: the picture now exists only in memory
    time.sleep(0.01)  # as writing a large photo takes; without it the window is too short to hit
    with open(target, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return None


def main(argv: list[str]) -> int:
    source, target = Path(argv[0]), Path(argv[1])
    if "--broken" in argv:
        sorting.move_file = delete_then_copy
    if "--undo" in argv:
        events = sort_undo.undo_sort(target)
    else:
        prune = sort_plan.check_target(target, [source])
        paths, _ = collect_images([source], prune=prune)
        plan = sort_plan.plan_sort([predict_by_name(p) for p in paths], target, move=True)
        events = sorting.execute_sort(plan)
    for event in events:
        if isinstance(event, sort_events.ImageSorted | sort_events.ImageRestored):
            print(event.done, flush=True)
        elif isinstance(event, sort_events.ImageLeftInPlace | sort_events.ImageNotRestored):
            print(f"problem: {event}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
