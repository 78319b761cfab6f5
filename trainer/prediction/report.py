"""What ``facecomic-predict`` prints for its predictions, whichever engine made them (the local
lanes or a cluster): one line per image, and the summary."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from trainer.common.console import PipeSafeWriter, say
from trainer.common.text import one_line
from trainer.model.face_likeness import NOT_A_FACE


def print_rows(predictions: Sequence, stdout: PipeSafeWriter, *, sorting: bool = False) -> None:
    """One line per image, always four tab-separated fields (names escaped onto one line) on
    stdout; an unreadable image's reason on stderr. When sorting, the sort prints where each went."""
    for p in predictions:
        if p.ok and sorting:
            continue
        if p.ok:
            stdout.line(f"{one_line(p.source)}\t{one_line(p.label)}\t{p.confidence:.4f}\t{p.flag}")
        else:
            say(f"{one_line(p.source)}\terror\t{one_line(p.error)}", sys.stderr)


def summary(predictions: Sequence) -> str:
    """``1,000 predicted (12 unsure, 3 of them not a face), 2 unreadable``."""
    failed = sum(not p.ok for p in predictions)
    text = f"{len(predictions) - failed:,} predicted"
    unsure = sum(p.unsure for p in predictions)
    if unsure:
        not_faces = sum(p.flag == NOT_A_FACE for p in predictions)
        text += f" ({unsure:,} unsure" + (f", {not_faces:,} of them not a face)" if not_faces else ")")
    if failed:
        text += f", {failed:,} unreadable"
    return text
