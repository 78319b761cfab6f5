"""The mutation score of the file-safety core, after `mutmut run` (`make mutation`).

Per mutated file, and per file as issue 24 named them before the split (outputs.py, sorting.py,
sort_log.py): killed / (all mutants less the survivors listed as equivalent in
docs/development.md, "Mutation testing"). A mutant whose tests time out counts as killed (a
hang is noticed); one that no test reaches, or that survives, does not. Exits 1 when any file
or group is under 85%, or when an equivalent-listed mutant is no longer a survivor (the list
must say what is true).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "development.md"
THRESHOLD = 85.0

FILES = [
    "trainer/common/outputs.py",
    "trainer/common/new_files.py",
    "trainer/prediction/sorting.py",
    "trainer/prediction/sort_plan.py",
    "trainer/prediction/sort_undo.py",
    "trainer/prediction/sort_events.py",
    "trainer/prediction/sort_log.py",
]
# The three files of issue 24, before they were split along their seams.
GROUPS = {
    "outputs.py (outputs + new_files)": FILES[0:2],
    "sorting.py (sorting + sort_plan + sort_undo + sort_events)": FILES[2:6],
    "sort_log.py": FILES[6:7],
}
KILLED = {1, 3, 24, -24, 152, 255, 36, -11, -9}  # a failing test, a timeout, a crash
STATUS = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked"}
EQUIVALENT_LINE = re.compile(r"^- `(trainer\.[\w.]+__mutmut_\d+)`")


def equivalent_mutants(doc: Path = DOC) -> set[str]:
    """The mutant names listed, one a line as "- `name`: why", in the mutation section."""
    names: set[str] = set()
    inside = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Mutation testing"
        elif inside and (match := EQUIVALENT_LINE.match(line)):
            names.add(match.group(1))
    return names


def results(root: Path, path: str) -> dict[str, int | None]:
    meta = root / "mutants" / (path + ".meta")
    if not meta.is_file():
        raise SystemExit(f"{meta} is missing: run `make mutation` first")
    return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]


def main(root: Path = REPO) -> int:
    equivalent = equivalent_mutants()
    rows: dict[str, tuple[int, int, int, list[str]]] = {}
    wrongly_listed: list[str] = []
    for path in FILES:
        codes = results(root, path)
        killed = sum(code in KILLED for code in codes.values())
        listed = {name for name in codes if name in equivalent}
        wrongly_listed += sorted(name for name in listed if codes[name] in KILLED)
        alive = sorted(name for name, code in codes.items() if code not in KILLED and name not in listed)
        rows[path] = (killed, len(codes), len(listed), alive)

    failed = False
    print(f"{'file':58} {'killed':>6} {'total':>6} {'equiv':>6} {'score':>7}")

    def line(name: str, killed: int, total: int, equiv: int) -> bool:
        counted = total - equiv
        if not counted:  # sort_events.py: frozen dataclasses only, nothing mutmut can change
            print(f"{name:58} {killed:6d} {total:6d} {equiv:6d} {'n/a':>7}")
            return False
        score = 100.0 * killed / counted
        print(f"{name:58} {killed:6d} {total:6d} {equiv:6d} {score:6.1f}%")
        return score < THRESHOLD

    for path, (killed, total, equiv, _) in rows.items():
        failed |= line(path, killed, total, equiv)
    print("\nAs issue 24 named the files (before the split):")
    for group, paths in GROUPS.items():
        sums = [sum(rows[p][i] for p in paths) for i in range(3)]
        failed |= line(group, *sums)
    all_sums = [sum(row[i] for row in rows.values()) for i in range(3)]
    line("all", *all_sums)
    print("\nscore = killed / (total - equivalent survivors listed in docs/development.md)")

    alive = [(name, path) for path, row in rows.items() for name in row[3]]
    if alive:
        print(f"\n{len(alive)} mutants not killed and not listed as equivalent (mutmut show NAME):")
        for name, path in alive:
            code = results(root, path)[name]
            print(f"  {name}: {STATUS.get(code, code)}")
    if wrongly_listed:
        print("\nListed as equivalent in docs/development.md but killed now (remove them):")
        for name in wrongly_listed:
            print(f"  {name}")
        failed = True
    if failed:
        print(f"\nUnder {THRESHOLD:.0f}% somewhere, or the list of equivalent mutants is stale.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
