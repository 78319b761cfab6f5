"""Real drag-and-drop events, as a file manager sends them, for the widgets' own handlers."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent


def file_urls(paths: list[Path]) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _event_args(mime: QMimeData, pos: QPoint | QPointF) -> tuple:
    return (
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )


def drag_enter_event(mime: QMimeData) -> QDragEnterEvent:
    event = QDragEnterEvent(*_event_args(mime, QPoint(10, 10)))  # takes an integer point
    event.keep_alive = mime  # Qt events do not own their mime data; Python must keep it alive
    return event


def drop(widget, paths: list[Path]) -> None:
    mime = file_urls(paths)
    widget.dropEvent(QDropEvent(*_event_args(mime, QPointF(10, 10))))
