"""The documented ``facecomic-train`` and ``facecomic-predict`` examples (README.md and docs/*.md;
they live in docs/cli.md), run as written (on the real sample in ``../shared``): every line they
print must have the shape the page shows, its words and fields in the same order; only numbers may
differ. A page that describes yesterday's output fails here."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?")


def examples() -> dict[str, tuple[list[str], list[str]]]:
    """Each ``$ .venv/bin/facecomic-…`` example in a ``text`` block of a page: its arguments and
    output lines (a command documented twice must be documented the same)."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for page in PAGES:
        for block in re.findall(r"```text\n(.*?)```", page.read_text(), re.S):
            lines = block.splitlines()
            if lines and lines[0].startswith("$ .venv/bin/facecomic-"):
                command, *args = shlex.split(lines[0][2:])
                name = Path(command).name
                assert found.setdefault(name, (args, lines[1:])) == (args, lines[1:]), (page, name)
    return found


def shape(line: str) -> str:
    """A line with its numbers as ``#`` and its spacing as one space (tabs stay tabs: fields)."""
    fields = line.split("\t")
    return "\t".join(" ".join(NUMBER.sub("#", f).split()) for f in fields)


def run(command: str, args: list[str], tmp: Path) -> list[str]:
    """The example's command from this checkout's environment, its /tmp paths in ``tmp``."""
    args = [a.replace("/tmp/", f"{tmp}/") for a in args]
    script = Path(sys.executable).parent / command
    done = subprocess.run(
        [str(script), *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    return [line.replace(f"{tmp}/", "/tmp/") for line in done.stdout.splitlines()]


def test_the_docs_have_both_examples():
    assert {"facecomic-train", "facecomic-predict"} <= set(examples())


def test_the_train_and_predict_examples_print_what_the_readme_shows(shared_sample: Path, tmp_path: Path):
    found = examples()
    for command in ("facecomic-train", "facecomic-predict"):  # predict uses the model train saved
        args, shown = found[command]
        printed = run(command, args, tmp_path)
        assert [shape(line) for line in printed] == [shape(line) for line in shown], command


def test_shapes_keep_words_and_fields():
    assert (
        shape("Holdout: accuracy 0.9286, loss 0.2224 (126 images)")
        == "Holdout: accuracy #, loss # (# images)"
    )
    assert shape("a.jpg\tfaces\t0.9\t") == "a.jpg\tfaces\t#\t"
    assert shape("a.jpg\tfaces\t0.9\t") != shape("a.jpg\tfaces\t0.9")  # a field fewer is another shape
    with pytest.raises(AssertionError):
        assert shape("Extracted features of 3 images") == shape("Decoded 3 images")
