"""Thumbnails made off the GUI thread (QImage is thread-safe; QPixmap is not) and cached by key."""

from __future__ import annotations

import queue
from collections.abc import Generator
from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap

from facecomic_gui.common.worker import GeneratorWorker
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
    """Loads thumbnails lazily on one worker, most recent request first, and caches the pixmaps.

    Each request names its owner (a tab); ``release(owner)`` forgets what only that owner asked
    for, so clearing the Predict tab never drops the Train tab's pending thumbnails."""

    ready = Signal(str)

    def __init__(self, size: int = 64, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pixmaps: dict[str, QPixmap | None] = {}
        self._owners: dict[str, set[str]] = {}  # key -> owners that asked for it
        # Last in, first out: the rows the user just scrolled to or dropped load first.
        self._queue: queue.LifoQueue[tuple[str, Path | Image.Image]] = queue.LifoQueue()
        self._worker: GeneratorWorker | None = None

    def pixmap(
        self, key: str, source: Path | Image.Image | None = None, *, owner: str = ""
    ) -> QPixmap | None:
        """The cached pixmap, or None while it loads (``ready`` fires when it has)."""
        owners = self._owners.get(key)
        if owners is None:
            self._owners[key] = {owner}
            self._queue.put((key, source if source is not None else Path(key)))
            self._ensure_worker()
            return None
        owners.add(owner)
        return self._pixmaps.get(key)

    @property
    def requested(self) -> int:
        """Thumbnails asked for and not released, loaded or not."""
        return len(self._owners)

    @property
    def pending(self) -> int:
        """Thumbnails asked for and not loaded yet."""
        return len(self._owners) - len(self._pixmaps)

    def release(self, owner: str) -> None:
        """Forget the thumbnails only ``owner`` asked for; queued ones are skipped unloaded."""
        for key in [k for k, owners in self._owners.items() if owner in owners]:
            owners = self._owners[key]
            owners.discard(owner)
            if not owners:
                del self._owners[key]
                self._pixmaps.pop(key, None)

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel_and_join()
            self._worker = None

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_running():
            self._worker = GeneratorWorker(self._serve, self._queue, self.size, self._owners)
            self._worker.yielded.connect(self._on_loaded)
            self._worker.start()

    @staticmethod
    def _serve(
        requests: queue.LifoQueue, size: int, wanted: dict, *, cancel: CancelToken
    ) -> Generator[tuple[str, QImage | None], None, None]:
        cancel.on_cancel(lambda: requests.put(_STOP))  # wakes the blocked get() below
        while True:
            request = requests.get()
            if request is _STOP:
                return
            key, source = request
            if key in wanted:  # a read under the GIL; a key released meanwhile is skipped
                yield key, make_thumbnail(source, size)

    def _on_loaded(self, item: tuple[str, QImage | None]) -> None:
        key, image = item
        if key not in self._owners:
            return  # released meanwhile
        self._pixmaps[key] = None if image is None else QPixmap.fromImage(image)
        self.ready.emit(key)


def scaled(pixmap: QPixmap, size: int) -> QPixmap:
    return pixmap.scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
