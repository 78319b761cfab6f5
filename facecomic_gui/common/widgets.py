"""Small widgets and layout helpers both tabs use."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTableWidget, QWidget


def bold(label: QLabel, point_delta: int = 0) -> QLabel:
    font = label.font()
    font.setBold(True)
    if point_delta:
        font.setPointSize(font.pointSize() + point_delta)
    label.setFont(font)
    return label


def message_label(text: str, colour: str, background: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(
        f"QLabel {{ color: {colour}; background: {background}; border-radius: 4px; padding: 6px; }}"
    )
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def error_banner() -> QLabel:
    label = message_label("", "#8a1f11", "#fde2dd")
    label.hide()
    return label


def fit_table_height(table: QTableWidget) -> None:
    """Make a small table exactly as tall as its rows, so no empty band shows under them."""
    height = table.horizontalHeader().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(r) for r in range(table.rowCount()))
    table.setFixedHeight(height)


def keep_space_when_hidden(widget: QWidget) -> None:
    """Showing or hiding it later must not re-lay out its neighbours (the plots repaint then)."""
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)


def percent(p: float) -> str:
    """A probability for people: never a false "100.0%" or "0.0%"."""
    if p >= 0.9995:
        return ">99.9%"
    if p < 0.0005:
        return "<0.1%"
    return f"{p:.1%}"
