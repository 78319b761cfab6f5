"""A cluster job's results on disk as it goes: ``OUT.csv.parts/``, one shard file per chunk,
merged into ``OUT.csv`` at the end.

Chunk ``i`` is always the same images (the inputs in order, ``chunk_size`` at a time), and its
shard, ``shard-000i.jsonl``, is created whole or not at all and never over another
(``create_new``), so a chunk that a retried task delivers twice is kept once, and a job killed at
any moment leaves only complete shards. ``job.json`` says which job they belong to (the model's
SHA-256, the inputs' digest, the chunk size): ``--resume`` continues only that job, and skips the
chunks whose shard is there. Each row is one JSON line (names stay exact: a file name that is not
UTF-8 keeps its escaped bytes).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from trainer.common.errors import FaceComicError
from trainer.common.new_files import create_new
from trainer.common.outputs import write_text
from trainer.common.text import one_line

MANIFEST = "job.json"
FORMAT = 1


def parts_folder(csv_path: str | os.PathLike[str]) -> Path:
    """``OUT.csv`` -> ``OUT.csv.parts``."""
    target = Path(csv_path)
    return target.with_name(target.name + ".parts")


class Shards:
    """The shard folder of one job; ``job`` is what identifies it (JSON values)."""

    def __init__(self, folder: Path, job: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.job = {"format": FORMAT, **job}

    def check(self, *, resume: bool) -> None:
        """Before anything is written: a folder of another job, or one left without ``--resume``,
        is refused in one sentence."""
        if not self.folder.exists():
            return
        shown = one_line(self.folder)
        if not resume:
            raise FaceComicError(
                f"{shown} holds the shards of an unfinished job; add --resume to continue it, or "
                "delete the folder to start again."
            )
        try:
            found = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise FaceComicError(f"{shown} is not a job's shard folder ({MANIFEST}: {err}).") from None
        if found != self.job:
            differ = ", ".join(
                k for k in sorted(set(found) | set(self.job)) if found.get(k) != self.job.get(k)
            )
            raise FaceComicError(
                f"The shards in {shown} belong to another job (its {differ} differ); --resume "
                "needs the same model, inputs and --chunk-size."
            )

    def start(self) -> None:
        """Create the folder and its manifest (kept as they are when resuming)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / MANIFEST).exists():
            write_text(self.folder / MANIFEST, json.dumps(self.job, indent=2, sort_keys=True) + "\n")

    def path(self, index: int) -> Path:
        return self.folder / f"shard-{index:06d}.jsonl"

    def done(self, sizes: list[int]) -> set[int]:
        """The chunks whose shard is there and holds as many rows as the chunk has images."""
        found = set()
        for index, size in enumerate(sizes):
            try:
                lines = self.path(index).read_bytes().count(b"\n")
            except FileNotFoundError:
                continue
            if lines == size:
                found.add(index)
        return found

    def write(self, index: int, rows: list[dict]) -> bool:
        """Chunk ``index``'s rows, whole; False (nothing written) when its shard already exists."""
        text = "".join(json.dumps(row, ensure_ascii=True, sort_keys=True) + "\n" for row in rows)
        try:
            create_new(self.path(index), text.encode("ascii"))
        except FileExistsError:
            return False
        return True

    def read(self, index: int) -> list[dict]:
        lines = self.path(index).read_text(encoding="ascii").splitlines()
        return [json.loads(line) for line in lines]

    def remove(self) -> None:
        """After the merged CSV is written: the folder is no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
