"""The predictions CSV, written by ``facecomic-predict --csv`` and the app's *Export CSV*."""

from __future__ import annotations

import csv
import io
import os

CSV_COLUMNS = ("path", "label", "confidence", "flag", "error")


def printable(text: str | os.PathLike[str]) -> str:
    """``text`` safe to encode as UTF-8: bytes of a file name that are not UTF-8 (legal on Linux,
    decoded by Python as lone surrogates) are shown as ``\\xe9``, so ``caf\\xe9.jpg`` is written
    instead of a ``UnicodeEncodeError`` that would lose every other row."""
    return os.fspath(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def predictions_csv(predictions) -> str:
    """The CSV text for a list of ``Prediction``; shared with the GUI's export."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in predictions:
        confidence = "" if p.confidence is None else f"{p.confidence:.6f}"
        writer.writerow(
            [printable(p.source), printable(p.label or ""), confidence, p.flag, printable(p.error or "")]
        )
    return buffer.getvalue()
