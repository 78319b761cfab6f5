"""The full-size view of one image (Predict tab and error gallery), with *Why?*: the answer's heat
map laid over the picture (key W), computed in the background by a ``WhySession`` and drawn with
the opacity the user sets. The dialog only renders; the session computes and caches."""

from __future__ import annotations

import os
from pathlib import Path

import shiboken6
from PIL import Image
from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QImage, QImageReader, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from facecomic_gui.common.thumbnails import pil_to_qimage
from facecomic_gui.common.why_session import WhyMap, WhyRequest, WhySession

MAX_DISPLAY_SIDE = 2048  # larger images are decoded scaled down (libjpeg does it cheaply)
DEFAULT_OPACITY = 60  # percent
WHY_KEY = QKeySequence(Qt.Key.Key_W)


def load_display_image(source: Path | str | Image.Image) -> QImage:
    """The picture as the user's file manager shows it (EXIF orientation applied), at most
    ``MAX_DISPLAY_SIDE`` on its longest side; a null image when it cannot be read."""
    if isinstance(source, Image.Image):
        from PIL import ImageOps

        image = ImageOps.exif_transpose(source)
        image.thumbnail((MAX_DISPLAY_SIDE, MAX_DISPLAY_SIDE))
        return pil_to_qimage(image)
    reader = QImageReader(os.fspath(source))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > MAX_DISPLAY_SIDE:
        reader.setScaledSize(
            size.scaled(MAX_DISPLAY_SIDE, MAX_DISPLAY_SIDE, Qt.AspectRatioMode.KeepAspectRatio)
        )
    return reader.read()


class ImageViewerDialog(QDialog):
    """One image, scaled down to fit; *Why?* overlays what the answer rests on."""

    why_shown = Signal()  # the map is drawn over the picture
    why_unavailable = Signal(str)  # this answer has no map, or computing it failed: the sentence

    def __init__(
        self,
        source: Path | str | Image.Image,
        caption: str,
        parent: QWidget | None = None,
        *,
        why: WhySession | None = None,
        request: WhyRequest | None = None,
    ) -> None:
        super().__init__(parent)
        name = os.path.basename(os.fspath(source)) if not isinstance(source, Image.Image) else "Pasted image"
        self.setWindowTitle(name)
        self.path = source if not isinstance(source, Image.Image) else None
        self._pixmap = QPixmap.fromImage(load_display_image(source))
        self._why = why
        self._request = request
        self._map: WhyMap | None = None
        self._overlay: QImage | None = None
        self._scaled: QPixmap | None = None  # the picture at the size shown

        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(200, 200)
        self.caption = QLabel(
            caption if not self._pixmap.isNull() else f"{caption}\nCould not read {source}."
        )
        self.caption.setWordWrap(True)

        self.why_button = QPushButton("Why?")
        self.why_button.setCheckable(True)
        self.why_button.setToolTip("Show what the answer rests on: a heat map over the picture (W)")
        self.why_button.toggled.connect(self._on_why_toggled)
        QShortcut(WHY_KEY, self, activated=self.why_button.toggle)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(DEFAULT_OPACITY)
        self.opacity_slider.setMaximumWidth(160)
        self.opacity_slider.setToolTip("Opacity of the map")
        self.opacity_slider.valueChanged.connect(self._on_opacity_changed)
        self.opacity_label = QLabel("Opacity")
        self.why_status = QLabel()
        self.why_status.setWordWrap(True)
        self.why_status.setStyleSheet("color: #555;")
        controls = QHBoxLayout()
        controls.addWidget(self.why_button)
        controls.addWidget(self.opacity_label)
        controls.addWidget(self.opacity_slider)
        controls.addWidget(self.why_status, 1)
        if why is None or request is None:
            self.why_button.setEnabled(False)
            self.why_button.setToolTip("No model to explain this image with")
        self._update_controls()

        layout = QVBoxLayout(self)
        layout.addWidget(self.image, 1)
        layout.addLayout(controls)
        layout.addWidget(self.caption)
        if why is not None:
            why.ready.connect(self._on_map_ready)
            why.failed.connect(self._on_map_failed)
        if not self._pixmap.isNull():
            size = self._pixmap.size().boundedTo(self.screen().availableSize() * 0.8)
            self.resize(max(size.width(), 420), max(size.height(), 240) + 80)
        else:
            self.resize(480, 260)

    # -- state -------------------------------------------------------------------------------------

    @property
    def why_on(self) -> bool:
        return self.why_button.isChecked()

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    def set_opacity(self, percent: int) -> None:
        self.opacity_slider.setValue(percent)

    @property
    def overlay_shown(self) -> bool:
        """True while the map is drawn over the picture."""
        return self.why_on and self._overlay is not None

    # -- Why? ------------------------------------------------------------------------------------------

    def _on_why_toggled(self, on: bool) -> None:
        request = self._request
        if not on or self._why is None or request is None:
            if self._why is not None:
                self._why.cancel()
            self._overlay = None
            self._update_controls()
            self._render()
            return
        if request.unavailable is not None:
            self._show_status(request.unavailable)
            self.why_unavailable.emit(request.unavailable)
            return
        found = self._why.request(request)
        if found is not None:
            self._show_map(found)
        else:
            self._show_status("Computing the map…")

    def _on_map_ready(self, request: WhyRequest, result: WhyMap) -> None:
        if shiboken6.isValid(self) and request is self._request and self.why_on:
            self._show_map(result)

    def _on_map_failed(self, request: WhyRequest, message: str) -> None:
        if shiboken6.isValid(self) and request is self._request and self.why_on:
            self._show_status(message)
            self.why_unavailable.emit(message)

    def _show_map(self, result: WhyMap) -> None:
        self._map = result
        height, width = result.overlay.shape[:2]
        data = result.overlay.tobytes()
        self._overlay = QImage(data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
        answer = self._request.answer if self._request is not None else ""
        if result.flat:
            self._show_status(
                f"{answer}: no part of the picture stands out; the answer rests on none of it more than the rest."
            )
        else:
            self._show_status(f"{answer}: brighter means the answer rests more on that part of the picture.")
        self._render()
        self.why_shown.emit()

    def _show_status(self, text: str) -> None:
        self.why_status.setText(text)
        self._update_controls()

    def _update_controls(self) -> None:
        self.opacity_slider.setEnabled(self.why_on and self._overlay is not None)
        self.opacity_label.setEnabled(self.opacity_slider.isEnabled())
        if not self.why_on:
            self.why_status.setText("" if self.why_button.isEnabled() else self.why_button.toolTip())

    def _on_opacity_changed(self, _value: int) -> None:
        self._render()

    # -- drawing ---------------------------------------------------------------------------------------

    def rendered(self) -> QPixmap:
        """What the image area shows: the picture, scaled to fit, and the map over it when on."""
        if self._pixmap.isNull():
            return QPixmap()
        target = self._pixmap.size().scaled(self.image.size(), Qt.AspectRatioMode.KeepAspectRatio)
        if self._scaled is None or self._scaled.size() != target:  # only a resize scales again
            self._scaled = self._pixmap.scaled(
                target, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        if not (self.overlay_shown and self.opacity > 0):
            return self._scaled
        shown = QPixmap(self._scaled)
        painter = QPainter(shown)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.setOpacity(self.opacity)
        painter.drawImage(QRect(0, 0, shown.width(), shown.height()), self._overlay)
        painter.end()
        return shown

    def _render(self) -> None:
        self.image.setPixmap(self.rendered())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._render()

    def done(self, result: int) -> None:
        if self._why is not None:
            if self.why_on:
                self._why.cancel()
            self._why.ready.disconnect(self._on_map_ready)
            self._why.failed.disconnect(self._on_map_failed)
            self._why = None
        super().done(result)
