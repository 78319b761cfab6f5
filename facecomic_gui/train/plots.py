"""Live training plots with pyqtgraph: fast for thousands of points, and QtCharts is deprecated."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

pg.setConfigOptions(antialias=True, background="w", foreground="#333333")

# Tableau 10: distinct and colour-blind friendlier than Qt's defaults.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
FINAL_COLOUR = "#222222"
SMOOTHING = 0.15  # exponential moving average weight of the newest batch
REDRAW_MS = 200  # 5 frames a second is live enough and leaves the GUI thread idle
LINEAR_SERIES = "linear head"


def l2_position(l2: float) -> float:
    """Where an L2 weight sits on the accuracy plot's axis: its log10 (the grid is log-spaced)."""
    return math.log10(l2)


@dataclass
class _Series:
    raw_curve: pg.PlotDataItem
    smooth_curve: pg.PlotDataItem
    x: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    smooth: list[float] = field(default_factory=list)


class _LivePlotWidget(QWidget):
    """A pyqtgraph plot whose redraws are batched on a timer, so per-batch data never floods the
    event loop."""

    def __init__(self, title: str, x_label: str, y_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setTitle(title, size="10pt")
        self.plot.setLabel("bottom", x_label)
        self.plot.setLabel("left", y_label)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)  # a loss of 0.7 is not "700 x0.001"
        self.plot.setMenuEnabled(False)
        self.legend = self.plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._on_redraw_timer)
        self._timer.start()

    def _mark_dirty(self) -> None:
        self._dirty = True

    def _on_redraw_timer(self) -> None:
        if self._dirty:
            self._dirty = False
            self.redraw(live=True)

    def redraw(self, *, live: bool = False) -> None:  # pragma: no cover - overridden
        """``live``: a redraw while data arrives, with lines drawn without antialiasing. Smooth
        wide lines cost much of a redraw (both plots of a 2,700-batch run: 68 ms of the GUI thread
        smooth, 25 ms live; bench/micro_bench.py); the final state is drawn smooth by ``flush``."""
        raise NotImplementedError

    def flush(self) -> None:
        """Draw now, smooth (at the end of a run, for screenshots and tests)."""
        self._dirty = False
        self.redraw(live=False)


class LossPlotWidget(_LivePlotWidget):
    """Training loss per batch, one colour per learning-rate run (the grid's settings that differ
    only in epochs share a run) plus the final run; raw values faint, a light moving average bold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Training loss per batch", "epoch", "cross-entropy", parent)
        self._series: dict[str, _Series] = {}

    @property
    def series_names(self) -> list[str]:
        return list(self._series)

    def point_count(self, name: str) -> int:
        return len(self._series[name].x) if name in self._series else 0

    def add_point(self, name: str, x: float, loss: float, *, final: bool = False) -> None:
        series = self._series.get(name) or self._new_series(name, final)
        series.x.append(x)
        series.raw.append(loss)
        previous = series.smooth[-1] if series.smooth else loss
        series.smooth.append(previous + SMOOTHING * (loss - previous))
        self._mark_dirty()

    def set_series(self, name: str, x: list[float], losses: list[float], *, final: bool = False) -> None:
        """A whole curve at once, unsmoothed (a reopened run's per-epoch losses)."""
        series = self._series.get(name) or self._new_series(name, final)
        series.x, series.raw, series.smooth = list(x), list(losses), list(losses)
        self._mark_dirty()

    def series_data(self, name: str) -> tuple[list[float], list[float]]:
        """The x values and the drawn (smoothed) values of a curve (for tests)."""
        series = self._series[name]
        return list(series.x), list(series.smooth)

    def _new_series(self, name: str, final: bool) -> _Series:
        colour = FINAL_COLOUR if final else PALETTE[len(self._series) % len(PALETTE)]
        faint = pg.mkColor(colour)
        faint.setAlpha(60)
        raw = self.plot.plot([], [], pen=pg.mkPen(faint, width=1), antialias=False)
        smooth = self.plot.plot([], [], pen=pg.mkPen(colour, width=2.2), name=name)
        for curve in (raw, smooth):  # thousands of batches: draw about one point per pixel
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        series = _Series(raw, smooth)
        self._series[name] = series
        return series

    def set_epoch_range(self, epochs: int) -> None:
        """Fix the x axis to the run's length, so axes are not re-laid out on every redraw."""
        self.plot.setXRange(0, epochs, padding=0.02)
        self.plot.enableAutoRange(axis="x", enable=False)

    def set_axes(self, title: str, x_label: str) -> None:
        """The MLP's loss per batch over epochs, or the linear head's objective per iteration
        (whose length no one knows ahead: the x axis follows the data)."""
        self.plot.setTitle(title, size="10pt")
        self.plot.setLabel("bottom", x_label)
        self.plot.enableAutoRange(axis="x", enable=True)

    def redraw(self, *, live: bool = False) -> None:
        for series in self._series.values():
            series.raw_curve.setData(series.x, series.raw)
            series.smooth_curve.setData(series.x, series.smooth, antialias=not live)

    def clear(self) -> None:
        self.plot.clear()
        self.legend.clear()
        self._series.clear()


class AccuracyPlotWidget(_LivePlotWidget):
    """Validation accuracy after each epoch, per learning rate; or, for the linear head, per L2
    weight."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Validation accuracy per epoch", "epoch", "accuracy", parent)
        self.plot.enableAutoRange(axis="y", enable=False)
        self._points: dict[str, tuple[pg.PlotDataItem, list[int], list[float]]] = {}
        self._bottom = 0.0
        self.plot.setYRange(0, 1, padding=0.02)

    def add_point(self, name: str, epoch: int, accuracy: float) -> None:
        if name not in self._points:
            colour = PALETTE[len(self._points) % len(PALETTE)]
            curve = self.plot.plot(
                [], [], pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                symbolBrush=colour, symbolPen=None, name=name,
            )  # fmt: skip
            self._points[name] = (curve, [], [])
        _, epochs, values = self._points[name]
        epochs.append(epoch)
        values.append(accuracy)
        self._mark_dirty()

    def point_count(self, name: str) -> int:
        return len(self._points[name][1]) if name in self._points else 0

    @property
    def series_names(self) -> list[str]:
        return list(self._points)

    def series_data(self, name: str) -> tuple[list[int], list[float]]:
        _, epochs, values = self._points[name]
        return list(epochs), list(values)

    def set_epoch_range(self, epochs: int) -> None:
        self.plot.setXRange(1, max(epochs, 2), padding=0.05)
        self.plot.enableAutoRange(axis="x", enable=False)

    def set_epoch_axis(self) -> None:
        self.plot.setTitle("Validation accuracy per epoch", size="10pt")
        self.plot.setLabel("bottom", "epoch")
        self.plot.getAxis("bottom").setTicks(None)
        self.legend.setVisible(True)

    def set_l2_axis(self, weights: tuple[float, ...]) -> None:
        """The linear head's grid: one point per L2 weight, on a log axis labelled with them."""
        self.plot.setTitle("Validation accuracy per L2 weight", size="10pt")
        self.plot.setLabel("bottom", "L2 weight")
        self.legend.setVisible(False)  # one series, named by the title
        positions = [l2_position(w) for w in weights]
        self.plot.getAxis("bottom").setTicks(
            [[(p, f"{w:g}") for p, w in zip(positions, weights, strict=True)]]
        )
        low, high = min(positions), max(positions)
        self.plot.setXRange(low - 0.25, high + 0.25 if high > low else low + 0.25, padding=0.02)
        self.plot.enableAutoRange(axis="x", enable=False)

    def redraw(self, *, live: bool = False) -> None:
        lowest = 1.0
        for curve, epochs, values in self._points.values():
            curve.setData(epochs, values, antialias=not live)
            lowest = min([lowest, *values])
        bottom = max(0.0, min(lowest, 0.9) - 0.05)
        if bottom != self._bottom:  # re-range only when needed: it re-lays out the axis
            self._bottom = bottom
            self.plot.setYRange(bottom, 1.0, padding=0.02)

    def clear(self) -> None:
        self.plot.clear()
        self.legend.clear()
        self._points.clear()


class ReliabilityPlotWidget(QWidget):
    """The holdout's reliability diagram: per confidence bin, how often the answer was right (a
    bar spanning the bin), against the diagonal a perfectly calibrated model would follow. Bins
    without images have no bar; hovering a bar shows its image count."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "confidence")
        self.plot.setLabel("left", "accuracy")
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
            self.plot.getAxis(axis).setTicks([[(v, f"{v:g}") for v in (0, 0.5, 1)]])
        self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.05)
        self.plot.addItem(
            pg.PlotDataItem([0, 1], [0, 1], pen=pg.mkPen("#999999", width=1, style=Qt.PenStyle.DashLine))
        )
        self.bars = pg.BarGraphItem(
            x0=[], x1=[], height=[], brush=pg.mkBrush(PALETTE[0] + "b0"), pen=pg.mkPen("#ffffff")
        )
        self.plot.addItem(self.bars)
        self._bins: tuple = ()
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def show_bins(self, bins) -> None:
        """``bins``: the trainer's ``ReliabilityBin``s (lower, upper, count, accuracy, confidence)."""
        self._bins = tuple(bins)
        self.bars.setOpts(
            x0=[b.lower for b in self._bins],
            x1=[b.upper for b in self._bins],
            height=[b.accuracy if b.count else 0.0 for b in self._bins],
        )

    def clear(self) -> None:
        self.show_bins(())

    def bar_heights(self) -> list[float]:
        """The heights drawn, one per bin (for tests)."""
        return [float(h) for h in self.bars.opts["height"]]

    def bin_tooltip(self, index: int) -> str:
        b = self._bins[index]
        if not b.count:
            return f"confidence {b.lower:.2f} to {b.upper:.2f}: no images"
        return (
            f"confidence {b.lower:.2f} to {b.upper:.2f}: {b.count:,} image{'s' if b.count != 1 else ''}, "
            f"{b.accuracy:.0%} right at {b.confidence:.0%} mean confidence"
        )

    def _on_mouse_moved(self, position) -> None:
        x = self.plot.getPlotItem().vb.mapSceneToView(position).x()
        index = next((i for i, b in enumerate(self._bins) if b.lower <= x <= b.upper), None)
        self.plot.setToolTip("" if index is None else self.bin_tooltip(index))
