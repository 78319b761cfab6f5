"""Pictures that are not faces, made apart from ``trainer.data.non_faces`` (the generator the
"not a face" scorer trains on), to measure that scorer honestly.

Two sources, neither of which the generator's code knows:
- scikit-image's bundled sample pictures (photos of objects, animals, textures, text pages,
  microscopy, a logo), less the ones that show a person;
- pictures rendered by Qt: pyqtgraph charts, Qt widgets and dialogs, rich-text documents and the
  FaceComic window itself (Train tab and Runs tab, with no face thumbnails in view), plus the
  committed Runs screenshot.

``python -m bench.non_face_eval`` writes them as PNGs to ``bench/data/non-faces/`` (ignored by
git) and prints the count; ``bench.honesty`` scores them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "data" / "non-faces"
# Bundled sample pictures that show a person, or are too small to be a picture.
SKIMAGE_EXCLUDED = {
    "astronaut.png",
    "camera.png",
    "lfw_subset.npy",
    "no_time_for_that_tiny.gif",
    "multipage.tif",
    "multipage_rgb.tif",
    "chessboard_RGB.png",  # the same board as chessboard_GRAY
    "motorcycle_right.png",  # the same scene as motorcycle_left
}


def skimage_pictures() -> dict[str, Image.Image]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    out = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".png", ".jpg", ".gif", ".tif") or path.name in SKIMAGE_EXCLUDED:
            continue
        with Image.open(path) as image:
            out[f"skimage-{path.stem}"] = image.convert("RGB")
    return out


def _grab(widget, size: tuple[int, int]) -> Image.Image:
    from PySide6.QtWidgets import QApplication

    from facecomic_gui.common.thumbnails import qimage_to_pil

    widget.resize(*size)
    widget.show()
    for _ in range(5):
        QApplication.processEvents()
    image = widget.grab().toImage()
    widget.close()
    return qimage_to_pil(image).convert("RGB")


def _charts() -> dict[str, Callable]:
    import numpy as np
    import pyqtgraph as pg

    rng = np.random.default_rng(12345)

    def line(background: str = "w"):
        plot = pg.PlotWidget(background=background, title="Training loss")
        for colour in ("b", "r", "g"):
            plot.plot(np.cumsum(rng.normal(0, 1, 200)), pen=pg.mkPen(colour, width=2))
        plot.showGrid(x=True, y=True)
        return plot

    def scatter():
        plot = pg.PlotWidget(background="w")
        plot.plot(rng.normal(0, 1, 300), rng.normal(0, 1, 300), pen=None, symbol="o", symbolSize=6)
        return plot

    def bars():
        plot = pg.PlotWidget(background="w", title="Sales by month")
        plot.addItem(
            pg.BarGraphItem(x=np.arange(12), height=rng.uniform(1, 10, 12), width=0.6, brush="steelblue")
        )
        return plot

    def histogram():
        plot = pg.PlotWidget(background="k")
        y, x = np.histogram(rng.normal(0, 1, 5000), bins=40)
        plot.plot(x, y, stepMode="center", fillLevel=0, brush=(0, 0, 255, 150))
        return plot

    def heatmap():
        x, y = np.meshgrid(np.linspace(-3, 3, 200), np.linspace(-3, 3, 200))
        surface = np.sin(x * 2) * np.cos(y * 1.5) * np.exp(-(x**2 + y**2) / 8)
        view = pg.ImageView()
        view.setImage(surface)
        view.setColorMap(pg.colormap.get("viridis"))
        return view

    def surface_contours():
        plot = pg.PlotWidget(background="w", title="f(x, y)")
        x, y = np.meshgrid(np.linspace(-3, 3, 120), np.linspace(-3, 3, 120))
        z = np.exp(-(x**2 + y**2)) + 0.5 * np.exp(-((x - 1.5) ** 2 + (y - 1) ** 2) * 2)
        image = pg.ImageItem(z)
        image.setColorMap(pg.colormap.get("CET-L9"))
        plot.addItem(image)
        for level in np.linspace(0.1, 0.9, 6):
            plot.addItem(pg.IsocurveItem(z, level=level, pen="k"))
        return plot

    def sine_waves():
        plot = pg.PlotWidget(background="w")
        t = np.linspace(0, 10, 500)
        for k in range(1, 5):
            plot.plot(t, np.sin(k * t) / k, pen=pg.mkPen(width=2, color=pg.intColor(k)))
        plot.addLegend()
        return plot

    def subplots():
        layout = pg.GraphicsLayoutWidget()
        layout.setBackground("w")
        for row in range(2):
            for col in range(2):
                layout.addPlot(row=row, col=col).plot(rng.normal(0, 1, 50).cumsum(), pen="b")
        return layout

    return {
        "chart-line": line,
        "chart-line-dark": lambda: line("k"),
        "chart-scatter": scatter,
        "chart-bars": bars,
        "chart-histogram": histogram,
        "chart-heatmap": heatmap,
        "chart-surface-contours": surface_contours,
        "chart-sines": sine_waves,
        "chart-subplots": subplots,
    }


def _widgets() -> dict[str, Callable]:
    from PySide6.QtCore import QDate
    from PySide6.QtWidgets import (
        QCalendarWidget,
        QCheckBox,
        QComboBox,
        QFormLayout,
        QGroupBox,
        QLineEdit,
        QListWidget,
        QProgressBar,
        QPushButton,
        QSlider,
        QSpinBox,
        QTableWidget,
        QTableWidgetItem,
        QTextEdit,
        QTreeWidget,
        QTreeWidgetItem,
        QVBoxLayout,
        QWidget,
    )

    def form():
        widget = QWidget()
        layout = QFormLayout(widget)
        layout.addRow("Name", QLineEdit("Ada Lovelace"))
        layout.addRow("E-mail", QLineEdit("ada@example.org"))
        combo = QComboBox()
        combo.addItems(["Monthly", "Weekly"])
        layout.addRow("Report", combo)
        layout.addRow("Copies", QSpinBox())
        layout.addRow(QCheckBox("Send me a copy"))
        layout.addRow(QPushButton("Submit"))
        return widget

    def table():
        widget = QTableWidget(20, 6)
        widget.setHorizontalHeaderLabels(["Date", "Item", "Qty", "Price", "Total", "Note"])
        for r in range(20):
            for c in range(6):
                widget.setItem(r, c, QTableWidgetItem(f"{(r * 7 + c * 13) % 97}.{c}"))
        return widget

    def tree():
        widget = QTreeWidget()
        widget.setHeaderLabels(["Name", "Size", "Modified"])
        for i in range(6):
            folder = QTreeWidgetItem(widget, [f"folder {i}", "", "2026-11-0{i + 1}"])
            for j in range(4):
                QTreeWidgetItem(folder, [f"file_{i}_{j}.txt", f"{(i + 1) * (j + 3)} KB", "2026-10-12"])
        widget.expandAll()
        return widget

    def calendar():
        widget = QCalendarWidget()
        widget.setSelectedDate(QDate(2026, 12, 1))
        return widget

    def settings():
        widget = QWidget()
        layout = QVBoxLayout(widget)
        box = QGroupBox("Playback")
        inner = QVBoxLayout(box)
        inner.addWidget(QSlider())
        inner.addWidget(QCheckBox("Loop"))
        bar = QProgressBar()
        bar.setValue(62)
        inner.addWidget(bar)
        layout.addWidget(box)
        items = QListWidget()
        items.addItems([f"Track {i:02d} - untitled" for i in range(12)])
        layout.addWidget(items)
        return widget

    def editor():
        widget = QTextEdit()
        widget.setPlainText(Path(__file__).read_text()[:3000])
        return widget

    return {
        "widget-form": form,
        "widget-table": table,
        "widget-tree": tree,
        "widget-calendar": calendar,
        "widget-settings": settings,
        "widget-code-editor": editor,
    }


def _documents() -> dict[str, Callable[[], Image.Image]]:
    def render(html: str, size=(700, 900)) -> Image.Image:
        from PySide6.QtCore import QSizeF
        from PySide6.QtGui import QColor, QImage, QPainter, QTextDocument

        from facecomic_gui.common.thumbnails import qimage_to_pil

        document = QTextDocument()
        document.setHtml(html)
        document.setPageSize(QSizeF(*size))
        image = QImage(*size, QImage.Format.Format_RGB32)
        image.fill(QColor("white"))
        painter = QPainter(image)
        document.drawContents(painter)
        painter.end()
        return qimage_to_pil(image).convert("RGB")

    paragraph = (
        "<p>The committee met on Tuesday to review the quarterly figures. Revenue rose by four "
        "percent, while costs stayed flat; the board asked for a revised forecast before the "
        "next meeting, and for a summary of the open risks.</p>"
    )
    rows = "".join(f"<tr><td>{i}</td><td>Item {i}</td><td>{i * 3.5:.2f}</td></tr>" for i in range(1, 15))
    return {
        "document-letter": lambda: render("<h1>Minutes</h1>" + paragraph * 8),
        "document-table": lambda: render(
            f"<h2>Invoice 2026-114</h2><table border=1 cellpadding=4>{rows}</table>" + paragraph
        ),
        "document-list": lambda: render(
            "<h2>Checklist</h2><ul>"
            + "".join(f"<li>Step {i}: check the valve</li>" for i in range(20))
            + "</ul>"
        ),
        "document-wide": lambda: render("<h1>README</h1>" + paragraph * 3, size=(1200, 500)),
    }


def _app_windows() -> dict[str, Callable]:
    """FaceComic's own window: the Train tab before a data set is chosen and the Runs tab."""

    def window(tab: int):
        import tempfile

        from facecomic_gui.launch import isolated_settings
        from facecomic_gui.main_window import MainWindow

        settings, _ = isolated_settings()
        main = MainWindow(settings, Path(tempfile.mkdtemp(prefix="facecomic-eval-runs-")), restore=False)
        main.tabs.setCurrentIndex(tab)
        return main

    return {"app-train-tab": lambda: window(0), "app-runs-tab": lambda: window(2)}


def qt_pictures() -> dict[str, Image.Image]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 - kept alive
    out: dict[str, Image.Image] = {}
    for name, make in {**_charts(), **_widgets(), **_app_windows()}.items():
        for size in ((640, 480), (420, 420)) if name.startswith("chart") else ((800, 560),):
            out[f"{name}-{size[0]}"] = _grab(make(), size)
    for name, render in _documents().items():
        out[name] = render()
    runs_shot = REPO / "docs" / "runs.png"
    if runs_shot.exists():
        with Image.open(runs_shot) as image:
            out["app-runs-screenshot"] = image.convert("RGB")
    return out


def non_face_pictures() -> dict[str, Image.Image]:
    return {**skimage_pictures(), **qt_pictures()}


def write_pictures(folder: Path = OUT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in non_face_pictures().items():
        image.save(folder / f"{name}.png")
    return folder


if __name__ == "__main__":
    folder = write_pictures()
    print(f"{len(list(folder.glob('*.png')))} pictures in {folder.relative_to(REPO)}")
