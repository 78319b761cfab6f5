"""``facecomic-predict --sort-into OUT [--move] [--dry-run]`` and ``--undo-sort OUT``: the sorting
events of ``trainer.prediction.sorting`` (and its plan, events and undo modules) rendered on a terminal.

On stdout, one line per image, ``source<TAB>destination<TAB>action`` (names escaped onto one line
as everywhere else); on stderr, the images left where they were with the reason, a progress line
on a terminal, and a summary with the images per folder. Ctrl+C or SIGTERM stop between two
images (exit 130 or 143): running the same command again continues, ``--undo-sort`` takes back."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from trainer.common.cancel import CancelToken
from trainer.common.console import (
    EXIT_CANCELLED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_TERMINATED,
    PipeSafeWriter,
    say,
)
from trainer.common.errors import Cancelled
from trainer.common.events import run_events
from trainer.common.text import one_line, plural

PROG = "facecomic-predict"


def add_sort_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sorting into folders")
    group.add_argument(
        "--sort-into",
        type=Path,
        metavar="OUT",
        help="copy each readable image into OUT/<class>/ (e.g. faces/, comics/), or into "
        "OUT/unsure/<reason>/ when the answer is flagged; never over a file (name (2).jpg), content "
        "already there is not copied again; every step goes to OUT/facecomic-sort-log.csv",
    )
    group.add_argument(
        "--move", action="store_true", help="with --sort-into: move the images instead of copying"
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="with --sort-into: print what would go where, and touch nothing",
    )
    group.add_argument(
        "--from-csv",
        type=Path,
        metavar="PREDICTIONS.csv",
        help="with --sort-into: sort the images of a finished predictions CSV (say, a --cluster "
        "job's) by its labels and flags, without scoring them again",
    )
    group.add_argument(
        "--undo-sort",
        type=Path,
        metavar="OUT",
        help="take back what was sorted into OUT, per its log: moved images go back, copies are "
        "deleted; every file's SHA-256 is checked first, and what cannot be verified stays",
    )


def check_args(args: argparse.Namespace) -> str | None:
    """Why these flags do not go together, or None."""
    if args.undo_sort is not None:
        others = [
            flag
            for flag, given in (
                ("PATH", bool(args.paths)),
                ("--sort-into", args.sort_into is not None),
                ("--move", args.move),
                ("--dry-run", args.dry_run),
                ("--csv", args.csv is not None),
                ("--explain", args.explain is not None),
            )
            if given
        ]
        return f"--undo-sort takes only the folder; drop {', '.join(others)}" if others else None
    if args.from_csv is not None:
        if args.sort_into is None:
            return "--from-csv goes with --sort-into OUT"
        others = [f for f, given in (("PATH", bool(args.paths)), ("--input-list", args.input_list is not None),
                  ("--model", args.model is not None), ("--explain", args.explain is not None),
                  ("--cluster", getattr(args, "ClusterOptions.address", None) is not None)) if given]  # fmt: skip
        return f"--from-csv sorts what the CSV says; drop {', '.join(others)}" if others else None
    if not args.paths and args.input_list is None:
        return "the following arguments are required: PATH (or --input-list FILE)"
    if args.sort_into is None and (args.move or args.dry_run):
        return "--move and --dry-run go with --sort-into OUT"
    return None


def prune_for(args: argparse.Namespace):
    """Checked before the model loads: the target may not hold an input; a target inside an input
    folder is left out of the walk. None when not sorting."""
    if args.sort_into is None:
        return None
    from trainer.prediction.sort_plan import check_target

    return check_target(args.sort_into, args.paths)


def check_sources(args: argparse.Namespace, paths: Sequence[Path]) -> None:
    """With --move, every image's folder must let it go: said before the model predicts."""
    if args.sort_into is not None and args.move:
        from trainer.prediction.sort_plan import check_movable

        check_movable(paths)


@contextlib.contextmanager
def signals_cancel(token: CancelToken) -> Iterator[list[int]]:
    """While the block runs, Ctrl+C and SIGTERM cancel ``token`` (the image being moved is
    finished first) instead of raising at an arbitrary point; yields the signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def stop(signum, _frame) -> None:
        received.append(signum)
        token.cancel()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Progress:
    """One redrawn line on a terminal, at most ten times a second; nothing otherwise."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.width = 0

    def show(self, verb: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        eta = f"  ETA {max(0.0, (total - done) / rate):.0f}s" if done and done < total else ""
        line = f"{verb} {done:,}/{total:,}{eta}"
        self.stream.write("\r" + line + " " * max(0, self.width - len(line)))
        self.stream.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def sort_predictions(args: argparse.Namespace, predictions: Sequence, class_names: Sequence[str]) -> int:
    """Plan and run the sort of ``predictions``; the exit code."""
    from trainer.prediction import sort_events, sort_plan, sorting

    plan = sort_plan.plan_sort(predictions, args.sort_into, move=args.move, class_names=class_names)
    for skipped in plan.left_out:
        say(f"{one_line(skipped.path)}\tleft in place\t{one_line(skipped.reason)}", sys.stderr)
    token = CancelToken()
    progress, stdout = _Progress(sys.stderr), PipeSafeWriter(sys.stdout)
    verb = "Moving" if args.move else "Copying"
    done = 0

    def show(event) -> None:
        nonlocal done
        if isinstance(event, sort_events.SortStarted) and (event.resumed or event.recovered):
            say(_resumed_line(event), sys.stderr)
        elif isinstance(event, sort_events.ImageSorted):
            done = event.done
            progress.show(verb, event.done, event.total)
            stdout.line(f"{one_line(event.source)}\t{one_line(event.destination)}\t{event.action}")
        elif isinstance(event, sort_events.ImageLeftInPlace):
            progress.clear()
            say(f"{one_line(event.source)}\tleft in place\t{one_line(event.reason)}", sys.stderr)

    with signals_cancel(token) as received:
        events = sorting.execute_sort(plan, dry_run=args.dry_run, cancel=token)
        try:
            summary = run_events(events, show)
        except Cancelled:
            progress.clear()
            how = "stopped by SIGTERM" if signal.SIGTERM in received else "cancelled"
            say(
                f"{PROG}: {how} between two images; {done:,} of {len(plan.items):,} sorted. Run the same "
                f"command to finish, or {PROG} --undo-sort {one_line(plan.target)} to undo.",
                sys.stderr,
            )
            return EXIT_TERMINATED if signal.SIGTERM in received else EXIT_CANCELLED
        finally:
            progress.clear()
            events.close()
    say(_summary_line(summary), sys.stderr)
    if not args.dry_run:
        say(
            f"Log: {one_line(summary.log)}; undo with {PROG} --undo-sort {one_line(summary.target)}",
            sys.stderr,
        )
    return EXIT_PARTIAL if plan.left_out or summary.left else EXIT_OK


def sort_from_csv(args: argparse.Namespace) -> int:
    """``--sort-into OUT --from-csv P.csv``: the CSV's answers sorted as a direct sort would."""
    from trainer.prediction.export import read_predictions_csv
    from trainer.prediction.sort_plan import check_target

    predictions = read_predictions_csv(args.from_csv)
    sources = [p.source for p in predictions]
    check_target(args.sort_into, sources)
    check_sources(args, [Path(p.source) for p in predictions if p.ok])
    labels = sorted({p.label for p in predictions if p.label})
    return sort_predictions(args, predictions, labels)


def _resumed_line(event) -> str:
    parts = []
    if event.recovered:
        parts.append(f"settled {plural(event.recovered, 'step')} an interrupted run had under way")
    if event.resumed:
        parts.append(
            f"continuing the interrupted {'move' if event.move else 'copy'} into {one_line(event.target)}"
        )
    return "; ".join(parts).capitalize() + "."


def _summary_line(summary) -> str:
    verb = {
        (True, True): "Would move",
        (True, False): "Would copy",
        (False, True): "Moved",
        (False, False): "Copied",
    }[(summary.dry_run, summary.move)]
    folders = ", ".join(f"{folder} {count:,}" for folder, count in summary.counts.items()) or "nothing"
    line = f"{verb} {plural(summary.sorted, 'image')} into {one_line(summary.target)}: {folders}"
    extra = {
        k: v for k, v in summary.actions.items() if k not in ("moved", "copied", "would move", "would copy")
    }
    if extra:
        line += " (" + ", ".join(f"{v:,} {k}" for k, v in extra.items()) + ")"
    if summary.left:
        n = len(summary.left)
        line += f"; {plural(n, 'image')} left where {'it was' if n == 1 else 'they were'}"
    if summary.dry_run:
        line += "; a dry run: nothing was touched"
    return line


def undo_main(args: argparse.Namespace) -> int:
    """``--undo-sort OUT``: the exit code (1 when some images could not be verified)."""
    from trainer.prediction import sort_events, sort_undo

    token = CancelToken()
    progress, stdout = _Progress(sys.stderr), PipeSafeWriter(sys.stdout)
    done = 0

    def show(event) -> None:
        nonlocal done
        if isinstance(event, sort_events.UndoStarted) and event.recovered:
            say(f"Settled {plural(event.recovered, 'step')} an interrupted run had under way.", sys.stderr)
        elif isinstance(event, sort_events.ImageRestored):
            done = event.done
            progress.show("Undoing", event.done, event.total)
            stdout.line(f"{one_line(event.destination)}\t{one_line(event.source)}\t{event.action}")
        elif isinstance(event, sort_events.ImageNotRestored):
            progress.clear()
            say(f"{one_line(event.destination)}\tnot undone\t{one_line(event.reason)}", sys.stderr)

    with signals_cancel(token) as received:
        events = sort_undo.undo_sort(args.undo_sort, cancel=token)
        try:
            summary = run_events(events, show)
        except Cancelled:
            progress.clear()
            how = "stopped by SIGTERM" if signal.SIGTERM in received else "cancelled"
            say(f"{PROG}: {how}; {done:,} images taken back. Run the same command to finish.", sys.stderr)
            return EXIT_TERMINATED if signal.SIGTERM in received else EXIT_CANCELLED
        finally:
            progress.clear()
            events.close()
    parts = [f"{v:,} {k}" for k, v in summary.actions.items()]
    text = f"Undid the sort into {one_line(summary.target)}: " + (
        ", ".join(parts) if parts else "nothing left to undo"
    )
    if summary.refused:
        text += f"; {plural(len(summary.refused), 'image')} could not be verified and stayed (see above)"
    say(text, sys.stderr)
    return EXIT_PARTIAL if summary.refused else EXIT_OK
