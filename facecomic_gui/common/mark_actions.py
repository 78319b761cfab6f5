"""Marking rows with their true class, in any table of images (the Predict tab, the error
gallery): one action per class, F for the face class and C for the comic class (pressed again on
rows with that mark, it clears them), and *Clear mark*; in the row menu and as keys while the
table has the focus. Marked rows show the mark (``mark_data``) in the column the table chooses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QBrush, QColor, QFont, QKeySequence
from PySide6.QtWidgets import QWidget

from facecomic_gui.common.corrections import CorrectionsSession, shortcut_classes
from facecomic_gui.common.widgets import percent
from trainer.data.dataset import display_name

MARK_COLOUR = QColor("#1b7f3b")
MARK_SIGN = "✔"

# (path, the model's class or None) of each row an action applies to
Targets = Callable[[], Sequence[tuple[str, str | None]]]


class MarkActions(QObject):
    def __init__(self, view: QWidget, targets: Targets, parent: QObject | None = None) -> None:
        super().__init__(parent or view)
        self._view = view
        self._targets = targets
        self.corrections: CorrectionsSession | None = None
        self.class_actions: dict[str, QAction] = {}
        self.clear_action = self._action("Clear mark", None, self._on_clear)
        selection = view.selectionModel() if hasattr(view, "selectionModel") else None
        if selection is not None:  # the keys work on the rows the view points at, once there are some
            selection.selectionChanged.connect(self._on_selection_changed)
            selection.currentChanged.connect(self._on_selection_changed)

    def set_corrections(self, corrections: CorrectionsSession | None) -> None:
        self.corrections = corrections
        self.update_enabled()

    def set_classes(self, class_names: Sequence[str]) -> None:
        """One action per class (rebuilt when the model's classes change)."""
        if tuple(self.class_actions) == tuple(class_names):
            return
        for action in self.class_actions.values():
            self._view.removeAction(action)
            action.deleteLater()
        keys = {name: key for key, name in shortcut_classes(class_names).items()}
        self.class_actions = {
            name: self._action(
                f"Mark as {display_name(name)}",
                keys.get(name),
                lambda _checked=False, n=name: self._on_mark(n),
            )
            for name in class_names
        }
        self.update_enabled()

    def _action(self, text: str, key: str | None, slot) -> QAction:
        action = QAction(text, self._view)
        if key:
            action.setShortcut(QKeySequence(key))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self._view.addAction(action)
        return action

    def menu_actions(self) -> list[QAction]:
        self.update_enabled()
        return [*self.class_actions.values(), self.clear_action]

    def update_enabled(self) -> None:
        targets = self._targets() if self.corrections is not None else []
        for action in self.class_actions.values():
            action.setEnabled(bool(targets))
        self.clear_action.setEnabled(any(self.corrections.get(p) is not None for p, _ in targets))

    # -- slots -------------------------------------------------------------------------------------

    def mark(self, class_name: str) -> None:
        """Toggle the mark ``class_name`` on the rows the view points at (as the key does)."""
        targets = self._targets()
        if self.corrections is None or not targets:
            return
        self.corrections.toggle([p for p, _ in targets], class_name, [c for _, c in targets])
        self.update_enabled()

    def _on_selection_changed(self, *_args) -> None:
        self.update_enabled()

    def _on_mark(self, class_name: str) -> None:
        self.mark(class_name)

    def _on_clear(self) -> None:
        if self.corrections is not None:
            self.corrections.unmark([p for p, _ in self._targets()])
            self.update_enabled()


def mark_data(
    corrections: CorrectionsSession | None,
    path: str | None,
    role: int,
    *,
    predicted: str | None = None,
    confidence: float | None = None,
) -> Any:
    """What a marked row shows in its mark column for ``role`` (None: not marked, or nothing to
    say for this role): "✔ Real face" in green and bold, and a tooltip with the model's answer."""
    correction = corrections.get(path) if corrections is not None and path is not None else None
    if correction is None:
        return None
    shown = display_name(correction.true_class)
    if role == Qt.ItemDataRole.DisplayRole:
        return f"{MARK_SIGN} {shown}"
    if role == Qt.ItemDataRole.ForegroundRole:
        return QBrush(MARK_COLOUR)
    if role == Qt.ItemDataRole.FontRole:
        font = QFont()
        font.setBold(True)
        return font
    if role == Qt.ItemDataRole.ToolTipRole:
        said = ""
        if predicted is not None:
            said = f" The model said {display_name(predicted)}" + (
                f" ({percent(confidence)})." if confidence is not None else "."
            )
        added = (
            f" Added to {correction.added_to}." if correction.added_to else " Not yet added to a data set."
        )
        return f"Marked {shown} by you (press its key again, or use Clear mark, to undo).{said}{added}"
    return None


def mark_note(corrections: CorrectionsSession | None, path, predicted: str | None) -> str:
    """The start of a marked row's details: "Marked Real face (the model said Comic)  ·  "."""
    correction = corrections.get(path) if corrections is not None and path is not None else None
    if correction is None:
        return ""
    said = (
        f" (the model said {display_name(predicted)})"
        if predicted and predicted != correction.true_class
        else ""
    )
    return f"Marked {display_name(correction.true_class)}{said}  ·  "
