"""The predictions CSV, written by ``facecomic-predict --csv`` and the app's *Export CSV*."""

from __future__ import annotations

import csv
import io

CSV_COLUMNS = ("path", "label", "confidence", "error")


def predictions_csv(predictions) -> str:
    """The CSV text for a list of ``Prediction``; shared with the GUI's export."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in predictions:
        confidence = "" if p.confidence is None else f"{p.confidence:.6f}"
        writer.writerow([p.source, p.label or "", confidence, p.error or ""])
    return buffer.getvalue()
