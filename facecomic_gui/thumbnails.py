"""Thumbnails made off the GUI thread (QImage is thread-safe; QPixmap is not) and cached by key."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Generator
from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap

from facecomic_gui.worker import GeneratorWorker
from trainer.common.cancel import CancelToken

_STOP = object()  # queued on cancel: the LIFO queue hands it out first


def pil_to_qimage(image: Image.Image) -> QImage:
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    return QImage(data, rgba.width, rgba.height, 4 * rgba.width, QImage.Format.Format_RGBA8888).copy()


def qimage_to_pil(image: QImage) -> Image.Image:
    converted = image.convertToFormat(QImage.Format.Format_RGBA8888)
    data = bytes(converted.constBits())[: converted.sizeInBytes()]
    return Image.frombuffer(
        "RGBA", (converted.width(), converted.height()), data, "raw", "RGBA", converted.bytesPerLine(), 1
    ).copy()


def make_thumbnail(source: Path | Image.Image, size: int) -> QImage | None:
    """A thumbnail no larger than ``size`` px, or None when the image cannot be read."""
    try:
        if isinstance(source, Image.Image):
            image = source.copy()
        else:
            with Image.open(source) as opened:
                if opened.format == "JPEG":
                    opened.draft("RGB", (size * 2, size * 2))
                opened.load()
                image = ImageOps.exif_transpose(opened)
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        return pil_to_qimage(image)
    except Exception:  # unreadable files get no thumbnail; their row shows the decode error
        return None


class ThumbnailCache(QObject):
    """Loads thumbnails lazily on one worker, most recent request first, and caches the pixmaps."""

    ready = Signal(str)

    def __init__(self, size: int = 64, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pixmaps: dict[str, QPixmap | None] = {}
        self._requested: set[str] = set()
        # Last in, first out: the rows the user just scrolled to or dropped load first.
        self._queue: queue.LifoQueue[tuple[str, Path | Image.Image]] = queue.LifoQueue()
        self._worker: GeneratorWorker | None = None

    def pixmap(self, key: str, source: Path | Image.Image | None = None) -> QPixmap | None:
        """The cached pixmap, or None while it loads (``ready`` fires when it has)."""
        if key in self._pixmaps:
            return self._pixmaps[key]
        if key not in self._requested:
            self._requested.add(key)
            self._queue.put((key, source if source is not None else Path(key)))
            self._ensure_worker()
        return None

    @property
    def pending(self) -> int:
        return len(self._requested) - len(self._pixmaps)

    def clear(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._pixmaps.clear()
        self._requested.clear()

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel_and_join()
            self._worker = None

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_running():
            self._worker = GeneratorWorker(self._serve, self._queue, self.size)
            self._worker.yielded.connect(self._on_loaded)
            self._worker.start()

    @staticmethod
    def _serve(
        requests: queue.LifoQueue, size: int, *, cancel: CancelToken
    ) -> Generator[tuple[str, QImage | None], None, None]:
        cancel.on_cancel(lambda: requests.put(_STOP))  # wakes the blocked get() below
        while True:
            request = requests.get()
            if request is _STOP:
                return
            key, source = request
            yield key, make_thumbnail(source, size)

    def _on_loaded(self, item: tuple[str, QImage | None]) -> None:
        key, image = item
        if key not in self._requested:
            return  # cleared meanwhile
        self._pixmaps[key] = None if image is None else QPixmap.fromImage(image)
        self.ready.emit(key)


def scaled(pixmap: QPixmap, size: int) -> QPixmap:
    return pixmap.scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
