"""``make test``: the suite as two pytest processes at once, each on a fixed part of ``tests/``,
both shuffled by the same random-order seed.

Why not pytest-xdist: it hands each test to whichever worker is free, so which tests shared a
process, and in what order, depends on timing, and a seed no longer replays a failure. Here a
part is a fixed list of paths, so ``python -m pytest PART --randomly-seed=N`` (printed when a
part fails) runs exactly what ran, in the same order. The first part is the GUI and the
cluster tests, the second everything else, so a new test file lands in the second part and
none is run twice or left out. On 2 cores the two parts take about 0.7x the time of one
process (docs/development.md, "Time").

    scripts/run_tests.py                    both parts, a new seed
    scripts/run_tests.py --seed 7           both parts, that seed
    scripts/run_tests.py --jobs 1           one pytest over everything
    scripts/run_tests.py -- -x -k sort      arguments after -- go to each pytest
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / "build" / "test-logs"
# The first part; the second is tests/ without these. About equal halves of the time here.
FIRST_PART = (
    "tests/gui",
    "tests/trainer/test_cluster.py",
    "tests/trainer/test_cluster_parts.py",
    "tests/trainer/test_readme_examples.py",
    "tests/test_architecture.py",
    "tests/test_docs_links.py",
)
PROGRESS = re.compile(rb"\[\s*(\d+)%\]")
PROGRESS_EVERY_S = 20.0


@dataclass
class Part:
    """One pytest process: its arguments, its log, and how it ended."""

    name: str
    paths: list[str]
    log: Path
    process: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0
    code: int | None = None
    extra: list[str] = field(default_factory=list)

    def command(self, seed: int) -> list[str]:
        return [sys.executable, "-m", "pytest", *self.paths, f"--randomly-seed={seed}", *self.extra]

    def progress(self) -> str:
        """The last percentage pytest printed, from its log."""
        try:
            found = PROGRESS.findall(self.log.read_bytes()[-4096:])
        except OSError:
            return "starting"
        return f"{int(found[-1])}%" if found else "collecting"


def parts(jobs: int, extra: list[str]) -> list[Part]:
    if jobs == 1:
        return [Part("the suite", ["tests"], LOGS / "all.log", extra=extra)]
    rest = ["tests", *(f"--ignore={path}" for path in FIRST_PART)]
    return [
        Part("part 1 (GUI, cluster, docs)", list(FIRST_PART), LOGS / "part-1.log", extra=extra),
        Part("part 2 (the rest)", rest, LOGS / "part-2.log", extra=extra),
    ]


def shown_command(part: Part, seed: int) -> str:
    """``part.command`` as a person types it, from the repository's root."""
    return ".venv/bin/python -m " + shlex.join(part.command(seed)[2:])


def run(all_parts: list[Part], seed: int) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    print(f"run_tests: {len(all_parts)} pytest process(es) at once, random order seed {seed}", flush=True)
    for part in all_parts:
        with open(part.log, "wb") as log:  # the child writes it; this process only reads it
            part.started = time.monotonic()
            # A session of its own: a Ctrl+C reaches this process only, which passes on one
            # SIGINT (a second one would cut pytest's clean-up short).
            part.process = subprocess.Popen(
                part.command(seed),
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        print(f"run_tests: {part.name}: {shown_command(part, seed)} (log: {part.log.relative_to(REPO)})")
    running = list(all_parts)
    next_report = time.monotonic() + PROGRESS_EVERY_S
    while running:
        for part in list(running):
            code = part.process.poll()
            if code is None:
                continue
            part.code, part.seconds = code, time.monotonic() - part.started
            running.remove(part)
            print(f"\n===== {part.name}: exit {code} after {part.seconds:.0f} s =====", flush=True)
            sys.stdout.buffer.write(part.log.read_bytes())
            sys.stdout.flush()
        if running and time.monotonic() >= next_report:
            state = ", ".join(f"{p.name} {p.progress()}" for p in running)
            print(f"run_tests: still running: {state}", flush=True)
            next_report += PROGRESS_EVERY_S
        time.sleep(0.2)
    print()
    for part in all_parts:
        verdict = "passed" if part.code == 0 else f"FAILED (exit {part.code})"
        print(f"run_tests: {part.name} {verdict} in {part.seconds:.0f} s")
    failed = [p for p in all_parts if p.code != 0]
    for part in failed:
        print(f"run_tests: replay {part.name} exactly: {shown_command(part, seed)}")
    return failed[0].code if failed else 0


def stop(all_parts: list[Part], how: int) -> None:
    """Pass a Ctrl+C or SIGTERM on to the parts that still run, and wait for them."""
    for part in all_parts:
        if part.process is not None and part.process.poll() is None:
            part.process.send_signal(how)
    for part in all_parts:
        if part.process is not None:
            try:
                part.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                part.process.kill()
                part.process.wait()


def main(argv: list[str]) -> int:
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="scripts/run_tests.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, help="the random order's seed (default: a new one)")
    parser.add_argument("--jobs", type=int, choices=(1, 2), help="pytest processes (default: 2 on 2+ cores)")
    args = parser.parse_args(own)
    seed = args.seed if args.seed is not None else random.Random().getrandbits(32)
    jobs = args.jobs or (2 if (os.cpu_count() or 1) >= 2 else 1)
    all_parts = parts(jobs, extra)

    def _on_sigterm(*_: object) -> None:
        stop(all_parts, signal.SIGTERM)
        sys.exit(143)

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return run(all_parts, seed)
    except KeyboardInterrupt:
        stop(all_parts, signal.SIGINT)
        print("run_tests: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
