"""Plain-text tables in the paper's shape, shared by the CLI and the logs."""

from __future__ import annotations

from collections.abc import Sequence

from trainer.common.configs import SPLIT_NAMES, GridSpec
from trainer.data.dataset import SkippedFile
from trainer.training.results import GridResult, HoldoutMetrics

MAX_SKIPPED_LISTED = 20


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def format_dataset(
    root: str, class_names: Sequence[str], counts: Sequence[int], skipped: Sequence[SkippedFile]
) -> str:
    lines = [f"Dataset {root}"]
    lines += [f"  {name}: {count:,} images" for name, count in zip(class_names, counts, strict=True)]
    lines.append(format_skipped(skipped))
    return "\n".join(line for line in lines if line)


def format_skipped(skipped: Sequence[SkippedFile]) -> str:
    if not skipped:
        return ""
    lines = [f"  skipped {len(skipped):,} file{'s' if len(skipped) != 1 else ''}:"]
    lines += [f"    {s.path}: {s.reason}" for s in skipped[:MAX_SKIPPED_LISTED]]
    if len(skipped) > MAX_SKIPPED_LISTED:
        lines.append(f"    … and {len(skipped) - MAX_SKIPPED_LISTED:,} more (all are listed in --json)")
    return "\n".join(lines)


def format_split(method: str, class_names: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    rows = [["split", *class_names, "total"]]
    for name, row in zip(SPLIT_NAMES, counts, strict=True):
        rows.append([name, *(f"{c:,}" for c in row), f"{sum(row):,}"])
    return f"Split ({method}):\n" + _indent(_table(rows))


def format_grid(
    grid: GridSpec,
    results: Sequence[GridResult],
    best: GridResult | None = None,
    select_by: str | None = None,
) -> str:
    """lr rows x epoch columns, each cell "acc / loss", as the paper's results table; for an
    ensemble, each cell also gives the range of its heads' own accuracies."""
    by_setting = {(r.lr, r.epochs): r for r in results}
    heads = max((len(r.head_accuracies) for r in results), default=0)
    title = "Validation acc / loss" + (f" ({heads} heads: acc range)" if heads else "")
    header = [title, *(f"{e} epoch{'s' if e != 1 else ''}" for e in grid.epochs)]
    rows = [header]
    for lr in grid.learning_rates:
        row = [f"lr {lr:g}"]
        for epochs in grid.epochs:
            r = by_setting.get((lr, epochs))
            cell = "…" if r is None else f"{r.val_accuracy:.3f} / {r.val_loss:.3f}"
            if r is not None and r.head_spread is not None:
                low, high = r.head_spread
                cell += f" ({low:.3f}-{high:.3f})"
            if best is not None and r is best:
                cell = f"*{cell}"
            row.append(cell)
        rows.append(row)
    text = _table(rows)
    if best is not None:
        rule = f", lowest validation {'loss' if select_by == 'loss' else 'accuracy'}" if select_by else ""
        rule = rule.replace("lowest validation accuracy", "highest validation accuracy")
        text += f"\nBest (*): lr {best.lr:g}, {best.epochs} epoch{'s' if best.epochs != 1 else ''}{rule}"
    return text


def format_holdout(metrics: HoldoutMetrics, class_names: Sequence[str]) -> str:
    lines = [f"Holdout: accuracy {metrics.accuracy:.4f}, loss {metrics.loss:.4f} ({metrics.size:,} images)"]
    rows = [["true \\ predicted", *class_names]]
    for name, row in zip(class_names, metrics.confusion_matrix, strict=True):
        rows.append([name, *(f"{v:,}" for v in row)])
    lines.append(_indent(_table(rows)))
    for name, p, r in zip(class_names, metrics.precision, metrics.recall, strict=True):
        lines.append(f"  {name}: precision {p:.3f}, recall {r:.3f}")
    if metrics.ece is not None:
        lines.append(
            f"  calibration: expected calibration error {metrics.ece:.4f} (15 bins, calibrated probabilities)"
        )
    if metrics.not_a_face_fraction is not None:
        lines.append(f"  flagged not a face: {metrics.not_a_face_fraction:.1%} of the holdout")
    if metrics.unlike_fraction is not None:
        lines.append(f"  flagged unlike training images: {metrics.unlike_fraction:.1%} of the holdout")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
