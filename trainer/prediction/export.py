"""The predictions CSV, written by ``facecomic-predict --csv`` and the app's *Export CSV*, and its
``OUT.csv.json`` sidecar: which model wrote it (file name and SHA-256), the FaceComic version, when,
how many rows and which columns. The CSV itself stays plain: header first, no comments."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from trainer.common.checksum import file_sha256

CSV_COLUMNS = ("path", "label", "confidence", "flag", "error")
UNSAVED_MODEL_NOTE = "the model was trained in this session and not saved to a file"


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


def sidecar_path(csv_path: str | os.PathLike[str]) -> Path:
    """``OUT.csv`` -> ``OUT.csv.json``."""
    target = Path(csv_path)
    return target.with_name(target.name + ".json")


def csv_sidecar(model_path: str | os.PathLike[str] | None, rows: int, *, now: datetime | None = None) -> dict:
    """What the sidecar says about a CSV of ``rows`` predictions made with the model saved at
    ``model_path`` (None: an unsaved, in-memory model; the name and hash are then null, with a
    note). The hash is of the model file's bytes, read now; a file that cannot be read gets a null
    hash and a note saying why, rather than no sidecar."""
    from trainer import __version__

    model: dict = {"file": None, "sha256": None}
    if model_path is None:
        model["note"] = UNSAVED_MODEL_NOTE
    else:
        model["file"] = printable(Path(model_path).name)
        try:
            model["sha256"] = file_sha256(model_path)
        except OSError as err:
            model["note"] = printable(f"could not read the model file: {err.strerror or err}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "model": model,
        "facecomic_version": __version__,
        "created": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "rows": rows,
        "columns": list(CSV_COLUMNS),
    }


def write_predictions_csv(
    target: str | os.PathLike[str], predictions, model_path: str | os.PathLike[str] | None
) -> Path:
    """Write the CSV and then its sidecar, each atomically; returns the sidecar's path."""
    from trainer.common.atomic import atomic_write_text

    predictions = list(predictions)
    atomic_write_text(target, predictions_csv(predictions))
    sidecar = sidecar_path(target)
    text = json.dumps(csv_sidecar(model_path, len(predictions)), indent=2) + "\n"
    atomic_write_text(sidecar, text)
    return sidecar
