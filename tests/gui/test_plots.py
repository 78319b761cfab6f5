"""Live plots: cheap redraws while data arrives, a smooth final drawing."""

from __future__ import annotations

from facecomic_gui.train.plots import REDRAW_MS, AccuracyPlotWidget, LossPlotWidget


def test_live_redraws_skip_antialiasing_and_the_final_one_is_smooth(qtbot):
    loss, accuracy = LossPlotWidget(), AccuracyPlotWidget()
    for widget in (loss, accuracy):
        qtbot.addWidget(widget)
    for i in range(50):
        loss.add_point("lr 0.1", i / 10, 1.0 / (i + 1))
    accuracy.add_point("lr 0.1", 1, 0.9)
    curve = loss._series["lr 0.1"].smooth_curve
    points = accuracy._points["lr 0.1"][0]
    qtbot.waitUntil(lambda: curve.opts["antialias"] is False, timeout=50 * REDRAW_MS)
    qtbot.waitUntil(lambda: points.opts["antialias"] is False, timeout=50 * REDRAW_MS)
    assert len(curve.xData) == 50
    loss.flush()
    accuracy.flush()
    assert curve.opts["antialias"] is True and points.opts["antialias"] is True
