"""FaceComic's desktop app: a thin PySide6 layer over :mod:`trainer`."""

from trainer import __version__

__all__ = ["__version__"]
