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
    QMenu,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui.common.dialogs import ask_images, show_error
from facecomic_gui.common.image_viewer import ImageViewerDialog
from facecomic_gui.common.thumbnails import ThumbnailCache, qimage_to_pil
from facecomic_gui.common.why_session import WhySession, image_key, request_for
from facecomic_gui.common.widgets import error_banner, percent
from facecomic_gui.predict.parts import (
    ModelBannerWidget,
    PredictionToolbarWidget,
    drop_hint_label,
    export_predictions_csv,
    lay_out_prediction_view,
)
from facecomic_gui.predict.review import UNCERTAIN_FIRST_KEY
from facecomic_gui.predict.review_actions import PredictReviewTools
from facecomic_gui.predict.session import (
    PredictionRow,
    PredictionSession,
)
from facecomic_gui.predict.table import CONFIDENCE, PredictionFilterProxy, PredictionTableModel

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
        self.banner = ModelBannerWidget()
        self.model_label, self.open_model_button = self.banner.model_label, self.banner.open_model_button
        self.open_model_button.clicked.connect(self.open_model_requested)
        self.model_error = error_banner()
        self.toolbar = PredictionToolbarWidget()
        bar = self.toolbar
        self.add_button, self.filter_combo, self.summary_label = (
            bar.add_button,
            bar.filter_combo,
            bar.summary_label,
        )
        self.clear_button, self.export_button = bar.clear_button, bar.export_button
        self.add_button.clicked.connect(self._on_add_clicked)
        self.filter_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.clear_button.clicked.connect(self._on_clear_clicked)
        self.export_button.clicked.connect(self._on_export_clicked)
        self._build_table()
        self.review = PredictReviewTools(self)  # marks (F, C), Sort into folders…, Add to dataset…
        bar.add_trailing(self.review.sort_button, self.review.add_button)
        self.drop_hint = drop_hint_label()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.drop_hint)
        self.stack.addWidget(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.banner)
        layout.addWidget(self.model_error)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.stack, 1)
        paste = QShortcut(QKeySequence.StandardKey.Paste, self)
        paste.activated.connect(self._on_paste)

    def _build_table(self) -> None:
        """The table of rows, and the row actions: in its context menu, and as shortcuts while
        it has the focus."""
        self.table_model = PredictionTableModel(self.session, self._thumbnails, self)
        self.proxy = PredictionFilterProxy(self.session, self)
        self.proxy.setSourceModel(self.table_model)
        self.view = QTableView()
        lay_out_prediction_view(self.view, self.table_model, self.proxy)
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
        self.table_model.rowsInserted.connect(self._on_rows_changed)
        self.table_model.dataChanged.connect(self._on_data_changed)
        self.table_model.modelReset.connect(self._on_rows_changed)
        self._update_row_actions()

    # -- the session's events -------------------------------------------------------------------

    def _on_model_changed(self) -> None:
        session = self.session
        self.banner.show_model(session)
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
        self.toolbar.show_filters(self.session)
        self.session.set_filter(self.filter_combo.currentData())

    def _on_filter_changed(self) -> None:
        self.session.set_filter(self.filter_combo.currentData())
        if self.session.label_filter == UNCERTAIN_FIRST_KEY:
            self.view.sortByColumn(CONFIDENCE, Qt.SortOrder.AscendingOrder)

    def _on_data_changed(self, top_left, bottom_right, roles=()) -> None:
        if not roles or Qt.ItemDataRole.DisplayRole in roles:
            self._update_summary()

    def _update_summary(self) -> None:
        self.toolbar.show_summary(self.session)

    def _on_export_clicked(self) -> None:
        self.export_csv()

    def export_csv(self) -> Path | None:
        """Ask where, then write the CSV and its sidecar (``parts.export_predictions_csv``)."""
        written, self.excel_safe = export_predictions_csv(self, self.session, self.last_dir, self.excel_safe)
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
