"""Predict tab: drop, add or paste images; each gets a label and a confidence from the model.
A view of a ``PredictionSession``: it renders the session and forwards intents to it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common import dialogs
from facecomic_gui.common.dialogs import ask_images, show_error, write_confirming
from facecomic_gui.common.image_viewer import ImageViewerDialog
from facecomic_gui.common.thumbnails import ThumbnailCache, qimage_to_pil
from facecomic_gui.common.why_session import WhySession, image_key, request_for
from facecomic_gui.common.widgets import error_banner, percent
from facecomic_gui.predict.review import UNCERTAIN_FIRST_KEY
from facecomic_gui.predict.review_actions import PredictReviewTools
from facecomic_gui.predict.session import (
    ERROR_KEY,
    NOT_A_FACE_KEY,
    PENDING_KEY,
    UNSURE_KEY,
    PredictionRow,
    PredictionSession,
)
from facecomic_gui.predict.table import (
    CONFIDENCE,
    DETAILS,
    FILE,
    LABEL,
    THUMB,
    ConfidenceDelegate,
    PredictionFilterProxy,
    PredictionTableModel,
)

ROW_HEIGHT = 56
SHOW_IN_FOLDER_KEYS = QKeySequence("Ctrl+Shift+R")  # "reveal", as in file managers and editors


class PredictTabWidget(QWidget):
    predictions_finished = Signal()
    prediction_failed = Signal(str)
    open_model_requested = Signal()
    image_opened = Signal(object)  # ImageViewerDialog

    def __init__(
        self, session: PredictionSession, thumbnails: ThumbnailCache, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.session = session
        self._thumbnails = thumbnails
        self.last_dir = str(Path.home())
        self.why = WhySession(session.jobs, "why")
        self.viewer: ImageViewerDialog | None = None
        self.excel_safe = False  # the Export CSV dialog's checkbox, remembered while the app runs
        self._build()
        session.model_changed.connect(self._on_model_changed)
        session.predictions_finished.connect(self._on_predictions_finished)
        session.failed.connect(self._on_failed)
        session.needs_model.connect(self._on_needs_model)
        session.rows_added.connect(self._on_rows_added)
        session.rows_reset.connect(self._on_rows_reset)
        self._on_model_changed()
        self._update_summary()

    def _build(self) -> None:
        self.model_label = QLabel("Loading the model…")
        self.model_label.setTextFormat(Qt.TextFormat.RichText)
        self.model_label.setWordWrap(True)
        self.open_model_button = QPushButton("Open model…")
        self.open_model_button.clicked.connect(self.open_model_requested)
        banner = QFrame()
        banner.setObjectName("modelBanner")
        banner.setStyleSheet(
            "#modelBanner { background: #eef3f8; border: 1px solid #d5e0eb; border-radius: 4px; }"
        )
        banner_layout = QHBoxLayout(banner)
        banner_layout.addWidget(self.model_label, 1)
        banner_layout.addWidget(self.open_model_button)
        self.model_error = error_banner()

        self.add_button = QPushButton("Add images…")
        self.add_button.clicked.connect(self._on_add_clicked)
        self.filter_combo = QComboBox()
        self.filter_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self._on_clear_clicked)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._on_export_clicked)
        self.summary_label = QLabel()
        toolbar = QHBoxLayout()
        toolbar.addWidget(self.add_button)
        toolbar.addWidget(QLabel("Show"))
        toolbar.addWidget(self.filter_combo)
        toolbar.addWidget(self.summary_label, 1)
        toolbar.addWidget(self.clear_button)
        toolbar.addWidget(self.export_button)

        self.table_model = PredictionTableModel(self.session, self._thumbnails, self)
        self.proxy = PredictionFilterProxy(self.session, self)
        self.proxy.setSourceModel(self.table_model)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # insertion order until a header is clicked
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setIconSize(self._thumb_size())
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(THUMB, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(THUMB, ROW_HEIGHT + 4)
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(FILE, 260)
        header.resizeSection(LABEL, 120)
        header.resizeSection(CONFIDENCE, 170)
        header.setSectionResizeMode(DETAILS, QHeaderView.ResizeMode.Stretch)
        self.view.setItemDelegateForColumn(
            CONFIDENCE, ConfidenceDelegate(self.table_model, self.proxy, self.view)
        )
        # Row actions: in the context menu, and as shortcuts while the table has the focus.
        self.copy_path_action = QAction("Copy path", self.view)
        self.copy_path_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_path_action.triggered.connect(self._on_copy_path)
        self.show_in_folder_action = QAction("Show in folder", self.view)
        self.show_in_folder_action.setShortcut(SHOW_IN_FOLDER_KEYS)
        self.show_in_folder_action.triggered.connect(self._on_show_in_folder)
        self.open_action = QAction("Open full size", self.view)
        self.open_action.setShortcuts([QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)])
        self.open_action.triggered.connect(self._on_open_current)
        self.view.doubleClicked.connect(self._on_double_clicked)
        for action in (self.open_action, self.copy_path_action, self.show_in_folder_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.view.addAction(action)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_context_menu)
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.view.selectionModel().currentChanged.connect(self._on_selection_changed)
        self._update_row_actions()
        self.review = PredictReviewTools(self)  # marks (F, C), Sort into folders…, Add to dataset…
        toolbar.addWidget(self.review.sort_button)
        toolbar.addWidget(self.review.add_button)

        self.drop_hint = QLabel(
            "<p style='font-size:15pt'>Drop images or folders here</p>"
            "<p>or use <b>Add images…</b>, or paste with <b>Ctrl+V</b>.<br>"
            "Each image gets a label and a confidence from the model above.</p>"
        )
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.setStyleSheet(
            "QLabel { color: #555; border: 2px dashed #b8c4d0; border-radius: 10px; background: #fafbfc; }"
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.drop_hint)
        self.stack.addWidget(self.view)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(banner)
        layout.addWidget(self.model_error)
        layout.addLayout(toolbar)
        layout.addWidget(self.stack, 1)

        paste = QShortcut(QKeySequence.StandardKey.Paste, self)
        paste.activated.connect(self._on_paste)
        self.table_model.rowsInserted.connect(self._on_rows_changed)
        self.table_model.dataChanged.connect(self._on_data_changed)
        self.table_model.modelReset.connect(self._on_rows_changed)

    def _thumb_size(self):
        from PySide6.QtCore import QSize

        return QSize(ROW_HEIGHT - 6, ROW_HEIGHT - 6)

    # -- the session's events -------------------------------------------------------------------

    def _on_model_changed(self) -> None:
        session = self.session
        model = session.model
        if model is not None:
            holdout = model.holdout
            accuracy = f" · holdout accuracy <b>{holdout.accuracy:.1%}</b>" if holdout else ""
            if holdout is not None and holdout.ece is not None:
                accuracy += f", calibration error {holdout.ece:.3f}"
            if holdout is not None and model.refit_all:
                accuracy += " (of the run that chose it; then refitted on every image)"
            heads = f" · {model.heads} heads" if model.heads > 1 else ""
            self.model_label.setText(
                f"Model: <b>{model.name}</b> · {model.feature_kind} features{heads} · "
                f"classes: {', '.join(model.display_names)}{accuracy}"
            )
            self.model_label.setToolTip(str(model.path) if model.path else "")
        elif session.model_loading:
            self.model_label.setText("Loading the model…")
        else:
            self.model_label.setText("No model loaded. Open one, or train one on the Train tab.")
        self.model_error.setText(session.model_error or "")
        self.model_error.setVisible(session.model_error is not None and not session.model_loading)
        self._refresh_filter_options()
        self._update_summary()

    def _on_predictions_finished(self) -> None:
        self._update_summary()
        self.predictions_finished.emit()

    def _on_failed(self, message: str) -> None:
        show_error(self, "Prediction failed", message)
        self.prediction_failed.emit(message)

    def _on_needs_model(self) -> None:
        show_error(
            self, "No model", "Open a model first (File > Open model…), or train one on the Train tab."
        )

    def _on_rows_added(self, _first: int, _count: int) -> None:
        self.stack.setCurrentWidget(self.view)

    def _on_rows_reset(self) -> None:
        self.stack.setCurrentWidget(self.drop_hint)

    # -- input ---------------------------------------------------------------------------------------

    def add_inputs(self, inputs: list[Path | Image.Image]) -> None:
        """Predict files, folders (recursively) and in-memory images."""
        self.session.add_inputs(list(inputs))

    def _on_add_clicked(self) -> None:
        paths = ask_images(self, self.last_dir)
        if paths:
            self.last_dir = str(paths[0].parent)
            self.add_inputs(paths)

    def paste_from_clipboard(self) -> None:
        self.add_inputs(inputs_from_mime(QGuiApplication.clipboard().mimeData()))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if inputs_from_mime(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        inputs = inputs_from_mime(event.mimeData())
        if inputs:
            event.acceptProposedAction()
            self.add_inputs(inputs)

    # -- view ------------------------------------------------------------------------------------------

    def _on_clear_clicked(self) -> None:
        self.clear()

    def _on_paste(self) -> None:
        self.paste_from_clipboard()

    def _on_rows_changed(self, *_args) -> None:
        self._update_summary()
        self._update_row_actions()

    # -- row actions -----------------------------------------------------------------------------

    def selected_rows(self) -> list[PredictionRow]:
        """The selected rows, in the order the table shows them."""
        indexes = sorted(self.view.selectionModel().selectedRows(), key=lambda i: i.row())
        return [self.session.rows[self.proxy.mapToSource(i).row()] for i in indexes]

    def _folder_row(self) -> PredictionRow | None:
        """The row *Show in folder* acts on: the current row if selected, else the first selected."""
        current = self.view.currentIndex()
        if current.isValid() and self.view.selectionModel().isRowSelected(current.row()):
            return self.session.rows[self.proxy.mapToSource(current).row()]
        rows = self.selected_rows()
        return rows[0] if rows else None

    def _update_row_actions(self) -> None:
        current = self.view.currentIndex()
        self.open_action.setEnabled(
            current.isValid() and self.view.selectionModel().isRowSelected(current.row())
        )
        self.copy_path_action.setEnabled(any(r.path is not None for r in self.selected_rows()))
        row = self._folder_row()
        self.show_in_folder_action.setEnabled(row is not None and row.path is not None)

    def _on_selection_changed(self, *_args) -> None:
        self._update_row_actions()

    def row_menu(self) -> QMenu:
        self._update_row_actions()
        menu = QMenu(self.view)
        menu.addAction(self.open_action)
        menu.addAction(self.copy_path_action)
        menu.addAction(self.show_in_folder_action)
        menu.addSeparator()
        menu.addActions(self.review.marks.menu_actions())
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        if self.view.indexAt(pos).isValid():
            menu = self.row_menu()
            menu.exec(self.view.viewport().mapToGlobal(pos))
            menu.deleteLater()

    # -- full-size view -----------------------------------------------------------------------------

    def _on_open_current(self) -> None:
        index = self.view.currentIndex()
        if index.isValid() and self.view.selectionModel().isRowSelected(index.row()):
            self.open_image(self.proxy.mapToSource(index).row())

    def _on_double_clicked(self, index) -> None:
        self.open_image(self.proxy.mapToSource(index).row())

    def open_image(self, row: int) -> ImageViewerDialog | None:
        """Row ``row`` (of the session) at full size, with *Why?* for its answer."""
        if not 0 <= row < len(self.session.rows):
            return None
        item = self.session.rows[row]
        p = item.prediction
        if p is None:
            caption = f"{item.name}: still being predicted"
        elif not p.ok:
            caption = f"{item.name}: unreadable ({p.error})"
        else:
            answer = f"{p.display_label}{'?' if p.unsure else ''} {percent(p.confidence)}"
            caption = f"{item.name}: {answer}" + (f" ({p.flag})" if p.flag else "")
        request = request_for(
            image_key(item.source, item.key), item.source, self.session.model,
            label=p.label if p is not None else None,
            display_label=p.display_label if p is not None else None,
            confidence=p.confidence if p is not None else None,
            flag=p.flag if p is not None else "", error=p.error if p is not None else None,
        )  # fmt: skip
        if self.viewer is not None:
            self.viewer.close()
        self.viewer = ImageViewerDialog(item.source, caption, self, why=self.why, request=request)
        self.viewer.show()
        self.image_opened.emit(self.viewer)
        return self.viewer

    def _on_copy_path(self) -> None:
        self.copy_paths()

    def copy_paths(self) -> str:
        """Put the selected rows' file paths on the clipboard, one a line (pasted images have
        none); bytes of a name that are not UTF-8 and control characters (a newline in a name)
        are escaped visibly, as on the command line, so each path stays one line."""
        from trainer.common.text import one_line

        text = "\n".join(one_line(r.path) for r in self.selected_rows() if r.path is not None)
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    def _on_show_in_folder(self) -> None:
        self.show_in_folder()

    def show_in_folder(self) -> Path | None:
        """Open the folder holding the current row's file in the file manager."""
        from trainer.prediction.export import printable

        row = self._folder_row()
        if row is None or row.path is None:
            return None
        folder = row.path.parent
        if printable(folder) != str(folder):  # Qt's URLs cannot carry bytes that are not UTF-8
            show_error(
                self, "Could not show the folder", f"{printable(folder)} has a name that is not UTF-8."
            )
            return None
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            show_error(self, "Could not show the folder", f"No file manager opened {folder}.")
            return None
        return folder

    def clear(self) -> None:
        self.session.clear()

    def _refresh_filter_options(self) -> None:
        current = self.filter_combo.currentData()
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItem("All images", None)
        model = self.session.model
        if model is not None:
            for name, shown in zip(model.class_names, model.display_names, strict=True):
                self.filter_combo.addItem(shown, name)
        self.filter_combo.addItem("Unsure", UNSURE_KEY)
        self.filter_combo.setItemData(
            self.filter_combo.count() - 1,
            "Answers the model flagged: not a face, unlike its training images, or low confidence.",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.filter_combo.addItem("Not a face", NOT_A_FACE_KEY)
        self.filter_combo.setItemData(
            self.filter_combo.count() - 1,
            "Pictures that look like neither a face nor a comic face (charts, documents, screenshots, ...).",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.filter_combo.addItem("Unreadable", ERROR_KEY)
        self.filter_combo.addItem("Most uncertain first", UNCERTAIN_FIRST_KEY)
        self.filter_combo.setItemData(
            self.filter_combo.count() - 1,
            "Every answer, flagged ones first, then by confidence closest to 50%: review where mistakes are likeliest.",
            Qt.ItemDataRole.ToolTipRole,
        )
        index = self.filter_combo.findData(current)
        self.filter_combo.setCurrentIndex(max(0, index))
        self.filter_combo.blockSignals(False)
        self.session.set_filter(self.filter_combo.currentData())

    def _on_filter_changed(self) -> None:
        self.session.set_filter(self.filter_combo.currentData())
        if self.session.label_filter == UNCERTAIN_FIRST_KEY:
            self.view.sortByColumn(CONFIDENCE, Qt.SortOrder.AscendingOrder)

    def _on_data_changed(self, top_left, bottom_right, roles=()) -> None:
        if not roles or Qt.ItemDataRole.DisplayRole in roles:
            self._update_summary()

    def _update_summary(self) -> None:
        counts = self.session.counts()
        total = len(self.session.rows)
        has_rows = total > 0
        self.clear_button.setEnabled(has_rows)
        self.export_button.setEnabled(bool(self.session.predictions()))
        if not has_rows:
            self.summary_label.setText("")
            return
        parts = [f"{total:,} image{'s' if total != 1 else ''}"]
        model = self.session.model
        if model is not None:
            for name, shown in zip(model.class_names, model.display_names, strict=True):
                parts.append(f"{counts.get(name, 0):,} {shown}")
        if counts.get(UNSURE_KEY):
            not_faces = counts.get(NOT_A_FACE_KEY, 0)
            of_which = f" ({not_faces:,} not a face)" if not_faces else ""
            parts.append(f"{counts[UNSURE_KEY]:,} unsure{of_which}")
        if counts.get(ERROR_KEY):
            parts.append(f"{counts[ERROR_KEY]:,} unreadable")
        if counts.get(PENDING_KEY):
            parts.append(f"predicting {total - counts[PENDING_KEY]:,}/{total:,}…")
        self.summary_label.setText("  ·  ".join(parts))

    def _on_export_clicked(self) -> None:
        self.export_csv()

    def export_csv(self) -> Path | None:
        """Ask where (and whether Excel-safe), then write the CSV and its ``.csv.json`` sidecar
        (model, version, date). Never over the model or an image in the table, and over a
        read-only file only once the user agrees."""
        from trainer.common.errors import FaceComicError
        from trainer.common.outputs import shown
        from trainer.prediction.export import write_predictions_csv

        predictions = self.session.predictions()
        if not predictions:
            return None
        answer = dialogs.ask_csv_path(self, str(Path(self.last_dir) / "predictions.csv"), self.excel_safe)
        if answer is None:
            return None
        target, self.excel_safe = answer
        model = self.session.model
        model_path = model.path if model is not None else None

        def write(allow_read_only: bool) -> Path:
            write_predictions_csv(
                target,
                predictions,
                model_path,
                excel_safe_cells=self.excel_safe,
                allow_read_only=allow_read_only,
            )
            return target

        try:
            written = write_confirming(self, write)
        except FaceComicError as err:
            show_error(self, "Could not export", str(err))
            return None
        except OSError as err:
            show_error(
                self,
                "Could not export",
                f"Could not write {shown(err.filename or target)}: {err.strerror or err}.",
            )
            return None
        return written


def inputs_from_mime(mime: QMimeData) -> list[Path | Image.Image]:
    """Local files and folders from URLs, or the image itself (a screenshot, a copied picture)."""
    if mime.hasUrls():
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        if paths:
            return paths
    if mime.hasImage():
        image = mime.imageData()
        if image is not None and not image.isNull():
            return [qimage_to_pil(image)]
    return []
