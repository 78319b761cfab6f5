"""The Train tab's settings form: the widgets for ``facecomic_gui.train.form``'s text, each
invalid field marked with the reason the trainer's dataclasses gave."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from facecomic_gui.train.form import CHOICE_FIELDS, FIELDS, TEXT_FIELDS, FormText, Validation, hint, label

if TYPE_CHECKING:
    pass


class TrainSettingsWidget(QWidget):
    """Features, split, grid and batch settings as text. ``edited`` carries (field, text) to the
    session, ``paper_recipe_requested`` the one-click recipe; ``show_form`` renders the session's
    text and its validation (each invalid field marked with the reason, which the session got
    from the trainer's dataclasses)."""

    edited = Signal(str, str)
    paper_recipe_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.features = QComboBox()
        self.features.addItem("Pretrained (EfficientNet-Lite0)", "pretrained")
        self.features.addItem("Pixels 24x24 (paper)", "pixels")
        self.features.setToolTip(
            "Pretrained: frozen ImageNet features, then the head (linear by default); generalises "
            "to pictures unlike the dataset's. Pixels: the paper's MLP on the 24x24 pixels themselves."
        )
        self.split = QComboBox()
        self.split.addItem("Random (stratified, seeded)", "random")
        self.split.addItem("Paper (first files per class)", "paper")
        self.split.setToolTip("Both keep a face and its comic (same file name) in the same split.")
        self.head = QComboBox()
        self.head.addItem("Auto", "auto")  # named after the head it stands for, in show_form
        self.head.addItem("Linear (L2)", "linear")
        self.head.addItem("MLP (paper)", "mlp")
        self.head.setToolTip(
            "Linear: softmax regression with L2, fitted to convergence, so every seed gives the "
            "same answers; the default on pretrained features. MLP: the paper's 128-128 MLP trained "
            "by SGD over learning rates x epochs (an ensemble of 5 on pretrained features). Auto: "
            "linear for pretrained features, the MLP for pixels."
        )
        self.l2 = QLineEdit()
        self.l2.setPlaceholderText("e.g. 0.01, 0.1, 1")
        self.learning_rates = QLineEdit()
        self.learning_rates.setPlaceholderText("e.g. 0.01, 0.001")
        self.epochs = QLineEdit()
        self.epochs.setPlaceholderText("e.g. 1, 3, 5")
        # Text fields, not spin boxes: a QSpinBox is 32-bit and would clamp a valid seed.
        self.batch_size = QLineEdit()
        self.seed = QLineEdit()
        self.heads = QLineEdit()
        self.heads.setPlaceholderText("auto")
        self._hints = {
            "features": self.features.toolTip(),
            "split": self.split.toolTip(),
            "head": self.head.toolTip(),
            "l2": f"L2 weights the linear head tries ({hint('l2')}); the lowest validation loss wins.",
            "learning_rates": "Learning rates to try, separated by commas or spaces (each above 0).",
            "epochs": f"Epoch counts to try ({hint('epochs')}); they share one run per learning rate.",
            "batch_size": f"Images per mini-batch: {hint('batch_size')}.",
            "seed": f"Seed for the split, the initial weights and the shuffling: {hint('seed')}.",
            "heads": (
                f"MLP heads averaged into one answer, each with its own seed ({hint('heads')}). "
                "auto: 5 for pretrained features (steadier across seeds), 1 for pixels (the paper)."
            ),
        }
        for name in FIELDS:
            layout.addRow(label(name), self._field(name))
        self.paper_button = QPushButton("Paper recipe")
        self.paper_button.setToolTip(
            "Pixels 24x24, the paper's split, its MLP and its grid (lr 0.01, 0.001 x 1, 3, 5 epochs)."
        )
        self.paper_button.clicked.connect(self.paper_recipe_requested)
        layout.addRow("", self.paper_button)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addRow(self.error)
        for name in CHOICE_FIELDS:
            self._field(name).currentIndexChanged.connect(self._on_choice_changed)
        for name in TEXT_FIELDS:
            self._field(name).textChanged.connect(self._on_text_edited)

    def _field(self, name: str) -> QWidget:
        return getattr(self, name)

    def show_form(self, text: FormText, validation: Validation) -> None:
        self.head.setItemText(0, f"Auto: {'linear' if validation.head == 'linear' else 'MLP'}")
        for name in CHOICE_FIELDS:
            combo = self._field(name)
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(getattr(text, name))))
            combo.blockSignals(False)
        for name in TEXT_FIELDS:
            edit = self._field(name)
            if edit.text() != getattr(text, name):
                edit.setText(getattr(text, name))  # echoes back as an unchanged edit: a no-op
        for name in FIELDS:
            reason = validation.errors.get(name)
            widget = self._field(name)
            unused = validation.unused(name)
            style = "border: 1px solid #b00020;" if reason else ""
            widget.setStyleSheet(style + ("color: #8a8a8a;" if unused else ""))
            widget.setProperty("invalid", bool(reason))
            other = "the MLP" if validation.head == "linear" else "the linear head"
            widget.setToolTip(reason or self._hints[name] + (f" (Used by {other} only.)" if unused else ""))
        messages = [validation.errors[n] for n in FIELDS if n in validation.errors]
        self.error.setText("\n".join(messages))
        self.error.setVisible(bool(messages))

    def field_error(self, name: str) -> str | None:
        """The reason shown on ``name``, or None when it is valid."""
        widget = self._field(name)
        return widget.toolTip() if widget.property("invalid") else None

    def _on_choice_changed(self) -> None:
        sender = self.sender()
        name = next(n for n in CHOICE_FIELDS if self._field(n) is sender)
        self.edited.emit(name, sender.currentData())

    def _on_text_edited(self, text: str) -> None:
        sender = self.sender()
        name = next(n for n in TEXT_FIELDS if self._field(n) is sender)
        self.edited.emit(name, text)
