"""The Train tab's parts: dataset summary, settings form, grid table and holdout panel. They
render what the session holds; none decides a domain rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.thumbnails import ThumbnailCache, scaled
from facecomic_gui.common.widgets import bold as _bold
from facecomic_gui.common.widgets import error_banner, fit_table_height, keep_space_when_hidden
from facecomic_gui.common.widgets import message_label as _message
from facecomic_gui.train.form import CHOICE_FIELDS, FIELDS, TEXT_FIELDS, FormText, Validation, hint, label
from facecomic_gui.train.plots import ReliabilityPlotWidget
from trainer.common.text import fixed, plural
from trainer.data.dataset import display_name
from trainer.model.results import GridLayout, grid_layout

if TYPE_CHECKING:
    from trainer.common.configs import GridSpec
    from trainer.data.dataset import DatasetScan, SkippedFile
    from trainer.model.results import GridResult, HoldoutMetrics

THUMBS_PER_CLASS = 6
THUMB_SIZE = 44
THUMB_OWNER = "train"
IMBALANCE_RATIO = 1.5
BEST_BRUSH = QBrush(QColor("#d8f0d8"))


class DatasetSummaryWidget(QWidget):
    """Per-class counts with a strip of thumbnails, skipped files, and an imbalance warning."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._thumb_labels: dict[str, QLabel] = {}
        thumbnails.ready.connect(self._on_thumbnail_ready)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.placeholder = QLabel(
            "Choose a dataset folder, or drop one on this tab. It needs two class folders, "
            "for example faces/ and comics/ (the Kaggle download works as is)."
        )
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet("color: #666;")
        layout.addWidget(self.placeholder)
        self.classes_box = QWidget()
        self.classes_layout = QVBoxLayout(self.classes_box)
        self.classes_layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.classes_box)
        self.imbalance = _message("", "#7a5200", "#fff3cd")
        self.imbalance.hide()
        layout.addWidget(self.imbalance)
        self.ignored_label = QLabel()  # image folders beside the two classes, not used
        self.ignored_label.setWordWrap(True)
        self.ignored_label.setStyleSheet("color: #7a5200;")
        self.ignored_label.hide()
        layout.addWidget(self.ignored_label)
        self.skipped_toggle = QToolButton()
        self.skipped_toggle.setCheckable(True)
        self.skipped_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.skipped_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.skipped_toggle.setAutoRaise(True)
        self.skipped_toggle.toggled.connect(self._on_skipped_toggled)
        self.skipped_toggle.hide()
        layout.addWidget(self.skipped_toggle)
        self.skipped_list = QListWidget()
        self.skipped_list.setMaximumHeight(120)
        self.skipped_list.hide()
        layout.addWidget(self.skipped_list)

    def clear(self) -> None:
        while self.classes_layout.count():
            item = self.classes_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self._thumb_labels.clear()
        self.imbalance.hide()
        self.ignored_label.hide()
        self.skipped_toggle.hide()
        self.skipped_toggle.setChecked(False)
        self.skipped_list.clear()
        self.placeholder.show()

    def show_scan(self, scan: DatasetScan) -> None:
        self.clear()
        self.placeholder.hide()
        for class_dir, name, files in zip(scan.class_dirs, scan.class_names, scan.files, strict=True):
            title = _bold(QLabel(f"{display_name(name)}  ·  {plural(len(files), 'image')}"))
            title.setToolTip(str(class_dir))
            self.classes_layout.addWidget(title)
            strip = QHBoxLayout()
            strip.setSpacing(3)
            for path in files[:THUMBS_PER_CLASS]:
                label = QLabel()
                label.setFixedSize(THUMB_SIZE, THUMB_SIZE)
                label.setFrameShape(QFrame.Shape.StyledPanel)
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                label.setToolTip(path.name)
                key = str(path)
                self._thumb_labels[key] = label
                pixmap = self._thumbnails.pixmap(key, path, owner=THUMB_OWNER)
                if pixmap is not None:
                    label.setPixmap(scaled(pixmap, THUMB_SIZE - 2))
                strip.addWidget(label)
            strip.addStretch(1)
            holder = QWidget()
            holder.setLayout(strip)
            strip.setContentsMargins(0, 0, 0, 6)
            self.classes_layout.addWidget(holder)
        self.set_imbalance(scan.class_names, scan.counts)
        self.set_ignored(scan.ignored, scan.class_names)
        self.set_skipped(scan.skipped)

    def set_imbalance(self, class_names: Sequence[str], counts: Sequence[int]) -> None:
        low, high = min(counts), max(counts)
        if low and high / low > IMBALANCE_RATIO:
            big = display_name(class_names[counts.index(high)])
            small = display_name(class_names[counts.index(low)])
            self.imbalance.setText(
                f"Imbalanced: {big} has {high / low:.1f}x as many images as {small}. Accuracy can "
                f"look good by favouring {big}; check the per-class recall in the holdout."
            )
            self.imbalance.show()
        else:
            self.imbalance.hide()

    def set_ignored(self, ignored: Sequence[str], class_names: Sequence[str]) -> None:
        """Say which image folders are not used, so no one thinks they were trained on."""
        if not ignored:
            self.ignored_label.hide()
            return
        folders = ", ".join(f"{name}/" for name in ignored)
        used = " and ".join(f"{name}/" for name in class_names)
        self.ignored_label.setText(
            f"{plural(len(ignored), 'folder')} with images not used: {folders} (the classes are {used})"
        )
        self.ignored_label.setToolTip("FaceComic trains on two classes; these folders are left out.")
        self.ignored_label.show()

    def set_skipped(self, skipped: Sequence[SkippedFile]) -> None:
        self.skipped_list.clear()
        if not skipped:
            self.skipped_toggle.hide()
            return
        for item in skipped:
            self.skipped_list.addItem(f"{Path(item.path).name}: {item.reason}")
            self.skipped_list.item(self.skipped_list.count() - 1).setToolTip(item.path)
        self.skipped_toggle.setText(f"{plural(len(skipped), 'file')} skipped")
        self.skipped_toggle.show()

    def _on_skipped_toggled(self, shown: bool) -> None:
        self.skipped_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.skipped_list.setVisible(shown)

    def _on_thumbnail_ready(self, key: str) -> None:
        label = self._thumb_labels.get(key)
        pixmap = self._thumbnails.pixmap(key)
        if label is not None and pixmap is not None:
            label.setPixmap(scaled(pixmap, THUMB_SIZE - 2))


class DatasetPanelWidget(QGroupBox):
    """The chosen folder, *Choose folder…*, a scan error, and the scan's summary."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__("Dataset", parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.dataset_label = QLabel("No folder chosen")
        self.dataset_label.setWordWrap(True)
        self.dataset_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.choose_button = QPushButton("Choose folder…")
        row.addWidget(self.dataset_label, 1)
        row.addWidget(self.choose_button)
        layout.addLayout(row)
        self.dataset_error = error_banner()
        layout.addWidget(self.dataset_error)
        self.summary = DatasetSummaryWidget(thumbnails)
        layout.addWidget(self.summary)

    def show_dataset(self, session) -> None:
        """The session's folder, its scan (not redrawn while a run uses it) and skipped files."""
        path = session.dataset_path
        self.dataset_label.setText(path or "No folder chosen")
        self.dataset_label.setToolTip(path or "")
        self.dataset_error.setText(session.scan_error or "")
        self.dataset_error.setVisible(session.scan_error is not None)
        if session.scan is None:
            self.summary.clear()
            if session.state == "scanning":
                self.summary.placeholder.setText("Scanning…")
        elif not session.busy:
            self.summary.show_scan(session.scan)
        self.summary.set_skipped(session.skipped)


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


class GridTableWidget(QTableWidget):
    """The validation grid in the paper's shape, "acc / loss": learning-rate rows x epoch columns
    for the MLP, a row per L2 weight for the linear head (``trainer``'s ``grid_layout``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._layout: GridLayout | None = None

    def show_grid(
        self,
        grid: GridSpec,
        results: Sequence[GridResult],
        best: GridResult | None,
        select_by: str = "accuracy",
        head: str = "mlp",
    ) -> None:
        """The grid's cells, filled where a result is in, the best (chosen by the session)
        highlighted. The same shape again only updates the cells: no re-layout, so starting a run
        does not make the plots above repaint from scratch."""
        layout = grid_layout(grid, head)
        if layout != self._layout:
            self._layout = layout
            self.clear()
            self.setRowCount(len(layout.rows))
            self.setColumnCount(len(layout.columns))
            self.setHorizontalHeaderLabels(list(layout.columns))
            self.setVerticalHeaderLabels(list(layout.rows))
            for r in range(len(layout.rows)):
                for c in range(len(layout.columns)):
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    self.setItem(r, c, item)
            self.resizeRowsToContents()
            fit_table_height(self)
        scored = {r.key: r for r in results}
        for r, keys in enumerate(layout.cells):
            for c, key in enumerate(keys):
                result = scored.get(key)
                item = self.item(r, c)
                is_best = best is not None and best.key == key
                item.setText(
                    "…"
                    if result is None
                    else f"{fixed(result.val_accuracy, 3)} / {fixed(result.val_loss, 3)}"
                )
                item.setForeground(QBrush(QColor("#999999" if result is None else "#000000")))
                item.setBackground(BEST_BRUSH if is_best else QBrush())
                font = item.font()
                font.setBold(is_best)
                item.setFont(font)
                tips = []
                if is_best:
                    tips.append(
                        "Best so far: lowest validation loss, ties to the higher accuracy"
                        if select_by == "loss"
                        else "Best so far: highest validation accuracy, ties to the lower loss"
                    )
                if result is not None and result.head_spread is not None:
                    low, high = result.head_spread
                    tips.append(
                        f"The ensemble of {len(result.head_accuracies)} heads; each head alone: "
                        f"accuracy {low:.3f} to {high:.3f}"
                    )
                item.setToolTip("\n".join(tips))

    def cell_text(self, lr: float | None, epochs: int | None = None, l2: float | None = None) -> str:
        position = self._layout.position((lr, epochs, l2)) if self._layout else None
        if position is None:
            raise KeyError((lr, epochs, l2))
        return self.item(*position).text()

    def highlighted(self) -> tuple[float, int] | tuple[float | None, int | None, float | None] | None:
        """The setting shown as best, read from the table (for tests and screenshots): (lr,
        epochs) for the MLP, (None, None, l2) for the linear head."""
        if self._layout is None:
            return None
        for r, keys in enumerate(self._layout.cells):
            for c, key in enumerate(keys):
                if self.item(r, c).font().bold():
                    return key[:2] if key[2] is None else key
        return None


RELIABILITY_HEIGHT = 130


class HoldoutWidget(QWidget):
    """The final model's one evaluation on the holdout: accuracy, loss, confusion matrix, and how
    well its calibrated confidence holds (expected calibration error, reliability diagram). Every
    part has its size from the start, so showing the results does not re-lay out the plots."""

    cell_clicked = Signal(int, int)  # (true class, predicted class) of a confusion-matrix cell

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.accuracy = _bold(QLabel("—"), 8)
        self.caption = QLabel("Holdout accuracy appears when training ends.")
        self.caption.setStyleSheet("color: #666;")
        self.caption.setWordWrap(True)
        self.caption.setFixedHeight(2 * self.caption.fontMetrics().lineSpacing() + 4)
        self.confusion = QTableWidget(2, 2)  # sized for two classes from the start: no jump later
        self.confusion.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.confusion.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.confusion.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.confusion.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
        self.confusion.cellClicked.connect(self.cell_clicked)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.setHorizontalHeaderLabels(["", ""])
        self.confusion.resizeRowsToContents()
        fit_table_height(self.confusion)
        keep_space_when_hidden(self.confusion)
        self.confusion.hide()
        self.per_class = QLabel()
        self.per_class.setWordWrap(True)
        self.per_class.setFixedHeight(2 * self.per_class.fontMetrics().lineSpacing() + 4)
        layout.addWidget(self.accuracy, 0, 0)
        layout.addWidget(self.caption, 1, 0)
        layout.addWidget(self.confusion, 2, 0)
        layout.addWidget(self.per_class, 3, 0)
        self.calibration = QLabel()
        self.calibration.setWordWrap(True)
        self.calibration.setFixedHeight(2 * self.calibration.fontMetrics().lineSpacing() + 4)
        self.calibration.setToolTip(
            "Expected calibration error: how far the stated confidence is from the share of right "
            "answers, averaged over 15 confidence bins (0 is perfect). The diagram shows each bin's "
            "accuracy against the diagonal of a perfectly calibrated model."
        )
        layout.addWidget(self.calibration, 4, 0)
        self.reliability = ReliabilityPlotWidget()
        self.reliability.setFixedHeight(RELIABILITY_HEIGHT)
        keep_space_when_hidden(self.reliability)
        self.reliability.hide()
        layout.addWidget(self.reliability, 5, 0)
        self.hint = _message("", "#7a5200", "#fff3cd")
        self.hint.hide()
        layout.addWidget(self.hint, 6, 0)
        layout.setRowStretch(7, 1)

    def clear(self) -> None:
        self.accuracy.setText("—")
        self.caption.setText("Holdout accuracy appears when training ends.")
        self.confusion.hide()
        self.per_class.clear()
        self.calibration.clear()
        self.reliability.clear()
        self.reliability.hide()
        self.hint.hide()

    def show_metrics(
        self,
        metrics: HoldoutMetrics,
        class_names: Sequence[str],
        best: GridResult | None = None,
        refit_all: bool = False,
    ) -> None:
        names = [display_name(c) for c in class_names]
        self.accuracy.setText(f"{metrics.accuracy:.1%}")
        chosen = f"; trained with {_setting_text(best)} on train+val" if best else ""
        if refit_all:  # the figures stay those of the run that chose the setting
            chosen += "; the saved model was then refitted on every image, holdout included"
        self.caption.setText(
            f"holdout accuracy, loss {fixed(metrics.loss, 3)}, {plural(metrics.size, 'image')}{chosen}"
        )
        self.confusion.setRowCount(len(names))
        self.confusion.setColumnCount(len(names))
        self.confusion.setHorizontalHeaderLabels([f"→ {n}" for n in names])
        self.confusion.setVerticalHeaderLabels(names)
        bold = QFont()
        bold.setBold(True)
        for r, row in enumerate(metrics.confusion_matrix):
            for c, value in enumerate(row):
                item = QTableWidgetItem(f"{value:,}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if r == c:
                    item.setFont(bold)
                    item.setBackground(BEST_BRUSH)
                self.confusion.setItem(r, c, item)
        self.confusion.setToolTip(
            "Rows: true class. Columns: predicted class. Click a cell to see its images."
        )
        self.confusion.resizeRowsToContents()
        fit_table_height(self.confusion)
        self.confusion.show()
        self.per_class.setText(
            "  ·  ".join(
                f"{n}: precision {p:.2f}, recall {r:.2f}"
                for n, p, r in zip(names, metrics.precision, metrics.recall, strict=True)
            )
        )
        self._show_calibration(metrics)
        never = [n for n, r in zip(names, metrics.recall, strict=True) if r == 0]
        if never:
            # The usual cause on a small data set: the paper's 5 epochs are a few dozen steps.
            self.hint.setText(
                f"It never predicted {never[0]} correctly. On a small data set this usually means too "
                "few training steps: try more epochs (such as 20, 50) or a higher learning rate."
            )
        self.hint.setVisible(bool(never))

    def _show_calibration(self, metrics: HoldoutMetrics) -> None:
        parts = []
        if metrics.ece is not None:
            parts.append(f"calibration error {fixed(metrics.ece, 3)}")
        if metrics.not_a_face_fraction is not None:
            parts.append(f"{metrics.not_a_face_fraction:.1%} flagged not a face")
        if metrics.unlike_fraction is not None:
            parts.append(f"{metrics.unlike_fraction:.1%} flagged unlike training images")
        self.calibration.setText("  ·  ".join(parts))
        self.reliability.show_bins(metrics.reliability)
        self.reliability.setVisible(bool(metrics.reliability))


def _setting_text(best: GridResult) -> str:
    if best.l2 is not None:
        return f"the linear head at L2 {best.l2:g}"
    return f"lr {best.lr:g} for {plural(best.epochs, 'epoch')}"


class RunResultsWidget(QWidget):
    """The validation grid beside the holdout panel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid_box = QGroupBox("Validation grid: accuracy / loss")
        grid_layout = QVBoxLayout(grid_box)
        self.grid_table = GridTableWidget()
        grid_layout.addWidget(self.grid_table)
        self.grid_hint = QLabel("Each cell: validation accuracy / mean cross-entropy. Best in green.")
        self.grid_hint.setStyleSheet("color: #666;")
        self.grid_hint.setWordWrap(True)
        grid_layout.addWidget(self.grid_hint)
        grid_layout.addStretch(1)
        holdout_box = QGroupBox("Holdout")
        holdout_layout = QVBoxLayout(holdout_box)
        self.holdout = HoldoutWidget()
        holdout_layout.addWidget(self.holdout)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(grid_box, 3)
        layout.addWidget(holdout_box, 2)
