"""The predictions CSV, written by ``facecomic-predict --csv`` and the app's *Export CSV*, and its
``OUT.csv.json`` sidecar: which model wrote it (file name and SHA-256), the FaceComic version, when,
how many rows and which columns. The CSV itself stays plain: header first, no comments, every
value exact (a file name with a newline is quoted, not altered).

Excel-safe (``--excel-safe``, the app's checkbox): a spreadsheet runs a cell that starts with
``=``, ``+``, ``-`` or ``@`` as a formula, so a file named ``=HYPERLINK(...).jpg`` could act when
the CSV is opened. With it, such text cells (and ones starting with a tab or a carriage return,
which some spreadsheets strip before that check) get a leading ``'``; numbers are left alone. It
is off by default because it changes the values: a program reading the CSV would see ``'=x.jpg``
for the file ``=x.jpg``. The sidecar says whether it was on."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from trainer.common.checksum import file_sha256
from trainer.common.errors import FaceComicError, read_named_file
from trainer.common.text import printable

__all__ = ["printable"]  # re-exported: callers import it from here

CSV_COLUMNS = ("path", "label", "confidence", "flag", "error")
UNSAVED_MODEL_NOTE = "the model was trained in this session and not saved to a file"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(cell: str) -> str:
    """``cell`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def predictions_csv(predictions, *, excel_safe_cells: bool = False) -> str:
    """The CSV text for a list of ``Prediction``; shared with the GUI's export."""
    buffer = io.StringIO()
    write_csv_rows(buffer, predictions, excel_safe_cells=excel_safe_cells)
    return buffer.getvalue()


def write_csv_rows(handle, predictions, *, excel_safe_cells: bool = False) -> None:
    """The header, then one row per ``Prediction`` as it comes, to a text ``handle``: a cluster
    job streams millions of rows from its shards into the file without holding them."""
    text = excel_safe if excel_safe_cells else str
    writer = csv.writer(_LineFeedRows(handle), lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for p in predictions:
        confidence = "" if p.confidence is None else f"{p.confidence:.6f}"
        writer.writerow(
            [
                text(printable(p.source)),
                text(printable(p.label or "")),
                confidence,
                text(p.flag),
                text(printable(p.error or "")),
            ]
        )


class _LineFeedRows:
    """Rows end in ``\n``, yet a cell holding a lone ``\r`` is quoted: the csv module quotes only
    the characters of its line terminator, so the writer is given ``\r\n`` and each row's ending is
    turned back into ``\n`` here (the writer writes one row per call)."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def write(self, row: str) -> int:
        return self.handle.write(row[:-2] + "\n" if row.endswith("\r\n") else row)


def sidecar_path(csv_path: str | os.PathLike[str]) -> Path:
    """``OUT.csv`` -> ``OUT.csv.json``."""
    target = Path(csv_path)
    return target.with_name(target.name + ".json")


def csv_sidecar(
    model_path: str | os.PathLike[str] | None,
    rows: int,
    *,
    now: datetime | None = None,
    excel_safe_cells: bool = False,
) -> dict:
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
        "excel_safe": excel_safe_cells,
    }


def csv_outputs(target: str | os.PathLike[str], label: str = "the CSV") -> dict[str, Path]:
    """The files a CSV export writes: the CSV, and its sidecar unless the CSV goes to a pipe, a
    device or an open descriptor (``/dev/stdout``, ``>(cat)``), which have nothing beside them."""
    from trainer.common.outputs import inspect_output

    outputs = {label: Path(target)}
    try:
        streamed = not inspect_output(target, allow_read_only=True).atomic
    except FaceComicError:
        streamed = False  # the full check (check_outputs) says why
    if not streamed:
        outputs["its sidecar"] = sidecar_path(target)
    return outputs


def write_predictions_csv(
    target: str | os.PathLike[str],
    predictions,
    model_path: str | os.PathLike[str] | None,
    *,
    excel_safe_cells: bool = False,
    allow_read_only: bool = False,
) -> Path | None:
    """Write the CSV and then its sidecar (each atomically, see ``trainer.common.outputs``);
    returns the sidecar's path, or None when the CSV went to a stream and has no sidecar.

    Refuses (``OutputError``) a CSV or sidecar that is the model file or one of the images."""
    from trainer.common.outputs import check_outputs, write_text

    predictions = list(predictions)
    inputs = [model_path, *(p.source for p in predictions)]  # "<image>" (pasted) names no file
    outputs = csv_outputs(target)
    check_outputs(outputs, inputs=inputs, allow_read_only=allow_read_only)
    write_text(
        target,
        predictions_csv(predictions, excel_safe_cells=excel_safe_cells),
        allow_read_only=allow_read_only,
    )
    sidecar = outputs.get("its sidecar")
    if sidecar is None:
        return None
    info = csv_sidecar(model_path, len(predictions), excel_safe_cells=excel_safe_cells)
    write_text(sidecar, json.dumps(info, indent=2) + "\n", allow_read_only=allow_read_only)
    return sidecar


def read_predictions_csv(path: str | os.PathLike[str]) -> list:
    """The predictions of a CSV this module wrote (``--sort-into DIR --from-csv P.csv``), as
    ``Prediction`` values in its order; anything else is one sentence naming the file. One written
    with ``--excel-safe`` is refused: its names were changed for the spreadsheet."""
    from trainer.prediction.predictor import Prediction

    target = Path(path)
    shown = printable(os.fspath(target))
    try:
        text = read_named_file(target, "predictions file").decode("utf-8")
    except UnicodeDecodeError:
        raise FaceComicError(f"The predictions file {shown} is not UTF-8 text.") from None
    try:
        sidecar = json.loads(sidecar_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sidecar = {}
    if isinstance(sidecar, dict) and sidecar.get("excel_safe"):
        raise FaceComicError(
            f"{shown} was written with --excel-safe, which changes names for spreadsheets; "
            "predict again without it to sort from the file."
        )
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise FaceComicError(f"{shown} is not a predictions CSV (its header is not {','.join(CSV_COLUMNS)}).")
    predictions = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(CSV_COLUMNS):
            raise FaceComicError(f"Line {number} of {shown} has {len(row)} fields, not {len(CSV_COLUMNS)}.")
        source, label, confidence, flag, problem = row
        try:
            value = float(confidence) if confidence else None
        except ValueError:
            raise FaceComicError(
                f"Line {number} of {shown}: the confidence {confidence!r} is not a number."
            ) from None
        if problem or not label:
            predictions.append(Prediction(source, error=problem or "no answer"))
        else:
            predictions.append(Prediction(source, label=label, confidence=value, flag=flag))
    return predictions
