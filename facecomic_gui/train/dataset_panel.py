"""The Train tab's dataset panel: the folder, the images per class with thumbnails, the
folders left out and the skipped files. It renders what the session holds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.thumbnails import ThumbnailCache, scaled
from facecomic_gui.common.widgets import bold as _bold
from facecomic_gui.common.widgets import error_banner
from facecomic_gui.common.widgets import message_label as _message
from trainer.common.text import plural
from trainer.data.dataset import display_name

if TYPE_CHECKING:
    from trainer.data.dataset import DatasetScan, SkippedFile

THUMBS_PER_CLASS = 6
THUMB_SIZE = 44
THUMB_OWNER = "train"
IMBALANCE_RATIO = 1.5


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
