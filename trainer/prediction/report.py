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


class Tally:
    """The summary's counts, added up one prediction at a time (a cluster job's rows stream)."""

    def __init__(self) -> None:
        self.rows = self.failed = self.unsure = self.not_faces = 0

    def add(self, p) -> None:
        self.rows += 1
        self.failed += not p.ok
        self.unsure += p.unsure
        self.not_faces += p.flag == NOT_A_FACE

    def summary(self) -> str:
        """``1,000 predicted (12 unsure, 3 of them not a face), 2 unreadable``."""
        text = f"{self.rows - self.failed:,} predicted"
        if self.unsure:
            not_faces = f", {self.not_faces:,} of them not a face)" if self.not_faces else ")"
            text += f" ({self.unsure:,} unsure" + not_faces
        if self.failed:
            text += f", {self.failed:,} unreadable"
        return text


def summary(predictions: Sequence) -> str:
    """``1,000 predicted (12 unsure, 3 of them not a face), 2 unreadable``."""
    tally = Tally()
    for p in predictions:
        tally.add(p)
    return tally.summary()
