"""Shared by the sorting tests and the SIGKILL child: predictions without a model, and the state
of a folder as a multiset of SHA-256."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

FLAGS = ("", "", "", "low confidence", "not a face", "unlike training images")


@dataclass(frozen=True)
class FakePrediction:
    source: str
    label: str | None = None
    confidence: float | None = None
    flag: str = ""
    error: str | None = None


def predict_by_name(path: Path) -> FakePrediction:
    """A stand-in for the model, stable across runs: the label and flag come from the name's hash."""
    h = int(hashlib.sha256(path.name.encode("utf-8", "surrogateescape")).hexdigest(), 16)
    return FakePrediction(
        str(path), ("comics", "faces")[h % 2], 0.5 + (h % 50) / 100, FLAGS[(h >> 3) % len(FLAGS)]
    )


def hashes(*folders: Path) -> Counter:
    """The SHA-256 of every visible file under the folders (the sort log aside)."""
    found: Counter = Counter()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith(".") or name == "facecomic-sort-log.csv":
                    continue
                found[hashlib.sha256(Path(root, name).read_bytes()).hexdigest()] += 1
    return found


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder``."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temp_files(*folders: Path) -> list[str]:
    return [
        os.path.join(root, name)
        for folder in folders
        for root, _dirs, files in os.walk(folder)
        for name in files
        if name.endswith(".part")
    ]


def make_images(folder: Path, names_and_bytes: dict[str, bytes]) -> list[Path]:
    """Files with these names (paths under ``folder``) and bytes, their parents made."""
    paths = []
    for name, data in names_and_bytes.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths
