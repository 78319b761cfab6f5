"""Plain-text tables in the paper's shape, shared by the CLI and the logs."""

from __future__ import annotations

from collections.abc import Sequence

from trainer.common.configs import SPLIT_NAMES, GridSpec
from trainer.common.text import fixed, one_line, plural
from trainer.data.dataset import SkippedFile
from trainer.model.results import GridResult, HoldoutMetrics, grid_layout

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
    root: str,
    class_names: Sequence[str],
    counts: Sequence[int],
    skipped: Sequence[SkippedFile],
    ignored: Sequence[str] = (),
) -> str:
    """The data set: images per class, folders that are not used, and the files skipped. Every
    name is escaped onto one line (a folder named with a newline cannot forge a line)."""
    lines = [f"Dataset {one_line(root)}"]
    lines += [
        f"  {one_line(name)}: {plural(count, 'image')}"
        for name, count in zip(class_names, counts, strict=True)
    ]
    lines.append(format_ignored(ignored, class_names))
    lines.append(format_skipped(skipped))
    return "\n".join(line for line in lines if line)


def format_ignored(ignored: Sequence[str], class_names: Sequence[str]) -> str:
    """Image folders beside the two classes that are not used (say ``other/`` beside ``faces/``
    and ``comics/``): said, so no one thinks they were trained on."""
    if not ignored:
        return ""
    folders = ", ".join(f"{one_line(name)}/" for name in ignored)
    used = " and ".join(f"{one_line(name)}/" for name in class_names)
    return f"  ignored {plural(len(ignored), 'folder')} with images: {folders} (the classes are {used})"


def format_skipped(skipped: Sequence[SkippedFile], title: str = "skipped") -> str:
    if not skipped:
        return ""
    lines = [f"  {title} {plural(len(skipped), 'file')}:"]
    lines += [f"    {one_line(s.path)}: {one_line(s.reason)}" for s in skipped[:MAX_SKIPPED_LISTED]]
    if len(skipped) > MAX_SKIPPED_LISTED:
        lines.append(f"    … and {len(skipped) - MAX_SKIPPED_LISTED:,} more (all are listed in --json)")
    return "\n".join(lines)


def format_cache_discarded(event) -> str:
    """A cache that could not be used: what was wrong, and whether it has been rebuilt."""
    outcome = (
        "it was rebuilt" if event.rewritten else "it could not be rewritten, so the next run starts afresh"
    )
    return f"The cache {one_line(event.path)} could not be used ({one_line(event.reason)}); {outcome}."


def format_split(method: str, class_names: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    rows = [["split", *map(one_line, class_names), "total"]]
    for name, row in zip(SPLIT_NAMES, counts, strict=True):
        rows.append([name, *(f"{c:,}" for c in row), f"{sum(row):,}"])
    return f"Split ({method}):\n" + _indent(_table(rows))


def format_grid(
    grid: GridSpec,
    results: Sequence[GridResult],
    best: GridResult | None = None,
    select_by: str | None = None,
    head: str = "mlp",
) -> str:
    """The MLP's lr rows x epoch columns, or the linear head's L2 rows in one column; each cell
    "acc / loss", as the paper's results table; for an ensemble, each cell also gives the range of
    its heads' own accuracies."""
    by_setting = {r.key: r for r in results}
    heads = max((len(r.head_accuracies) for r in results), default=0)
    title = "Validation acc / loss" + (f" ({heads} heads: acc range)" if heads else "")
    layout = grid_layout(grid, head)
    rows = [[title, *layout.columns]]
    for row_label, keys in zip(layout.rows, layout.cells, strict=True):
        row = [row_label]
        for key in keys:
            r = by_setting.get(key)
            cell = "…" if r is None else f"{fixed(r.val_accuracy, 3)} / {fixed(r.val_loss, 3)}"
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
        text += f"\nBest (*): {best.label}{rule}"
    return text


def format_setting(event) -> str:
    """The setting a final training uses: ``lr 0.3, 6 epochs`` or ``L2 0.1``."""
    if event.l2 is not None:
        return f"L2 {event.l2:g}"
    return f"lr {event.lr:g}, {plural(event.epochs, 'epoch')}"


def format_linear_fit(event) -> str:
    """One fit of the linear head: its L2 weight, iterations and final objective."""
    state = "converged" if event.converged else "stopped at the iteration cap"
    return (
        f"L2 {event.l2:g}: {plural(len(event.losses), 'iteration')}, objective "
        f"{fixed(event.losses[-1], 4)} ({state})"
    )


def format_holdout(metrics: HoldoutMetrics, class_names: Sequence[str]) -> str:
    lines = [
        f"Holdout: accuracy {fixed(metrics.accuracy, 4)}, loss {fixed(metrics.loss, 4)} "
        f"({plural(metrics.size, 'image')})"
    ]
    names = [one_line(name) for name in class_names]
    rows = [["true \\ predicted", *names]]
    for name, row in zip(names, metrics.confusion_matrix, strict=True):
        rows.append([name, *(f"{v:,}" for v in row)])
    lines.append(_indent(_table(rows)))
    for name, p, r in zip(names, metrics.precision, metrics.recall, strict=True):
        lines.append(f"  {name}: precision {fixed(p, 3)}, recall {fixed(r, 3)}")
    if metrics.ece is not None:
        lines.append(
            f"  calibration: expected calibration error {fixed(metrics.ece, 4)} (15 bins, calibrated probabilities)"
        )
    if metrics.not_a_face_fraction is not None:
        lines.append(f"  flagged not a face: {metrics.not_a_face_fraction:.1%} of the holdout")
    if metrics.unlike_fraction is not None:
        lines.append(f"  flagged unlike training images: {metrics.unlike_fraction:.1%} of the holdout")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
