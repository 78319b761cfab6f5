"""Predict tab: drop, add or paste images; each gets a label and a confidence from the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from facecomic_gui import jobs
from facecomic_gui.dialogs import CSV_FILTER, ask_images, ask_save_path, show_error
from facecomic_gui.prediction_table import (
    CONFIDENCE,
    DETAILS,
    ERROR_KEY,
    FILE,
    LABEL,
    PENDING_KEY,
    THUMB,
    ConfidenceDelegate,
    PredictionFilterProxy,
    PredictionTableModel,
)
from facecomic_gui.thumbnails import ThumbnailCache, qimage_to_pil
from facecomic_gui.train_widgets import error_banner
from facecomic_gui.worker import GeneratorWorker

if TYPE_CHECKING:
    from trainer.model.model_file import LoadedModel

ROW_HEIGHT = 56


@dataclass
class _Job:
    inputs: list[Path | Image.Image]
    first_row: int | None  # None: new rows; else re-predict existing rows from here


class PredictTabWidget(QWidget):
    predictions_finished = Signal()
    open_model_requested = Signal()

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.model: LoadedModel | None = None
        self.model_loading = False
        self._waiting: list[Path | Image.Image] = []  # dropped while the model was still loading
        self._thumbnails = thumbnails
        self._queue: list[_Job] = []
        self._worker: GeneratorWorker | None = None
        self._job: _Job | None = None
        self.last_dir = str(Path.home())
        self._build()
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

        self.table_model = PredictionTableModel(self._thumbnails, self)
        self.proxy = PredictionFilterProxy(self)
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
        self._refresh_filter_options()

    def _thumb_size(self):
        from PySide6.QtCore import QSize

        return QSize(ROW_HEIGHT - 6, ROW_HEIGHT - 6)

    # -- model -------------------------------------------------------------------------------------

    def set_model(self, model: LoadedModel) -> None:
        """Use ``model`` from now on; rows already here are predicted again with it."""
        self.model = model
        self.model_loading = False
        self.model_error.hide()
        holdout = model.holdout
        accuracy = f" · holdout accuracy <b>{holdout.accuracy:.1%}</b>" if holdout else ""
        self.model_label.setText(
            f"Model: <b>{model.name}</b> · classes: {', '.join(model.display_names)}{accuracy}"
        )
        self.model_label.setToolTip(str(model.path) if model.path else "")
        self.table_model.set_class_names(model.class_names)
        self._refresh_filter_options()
        # Rows already here are predicted again; inputs not yet turned into rows (queued, or in
        # the job being cancelled) are kept and follow, in the order they came.
        not_yet_rows = [job for job in self._pending_jobs() if job.first_row is None]
        self._cancel_jobs()
        if self.table_model.rows:
            self.table_model.reset_predictions()
            self._enqueue(_Job([r.source for r in self.table_model.rows], 0))
        for job in not_yet_rows:
            self._enqueue(_Job(job.inputs, None))
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            self.add_inputs(waiting)

    def show_model_error(self, message: str) -> None:
        self.model_loading = False
        if self._waiting:
            self._waiting.clear()
        if self.model is None:
            self.model_label.setText("No model loaded. Open one, or train one on the Train tab.")
        self.model_error.setText(message)
        self.model_error.show()

    # -- input ---------------------------------------------------------------------------------------

    def add_inputs(self, inputs: list[Path | Image.Image]) -> None:
        """Predict files, folders (recursively) and in-memory images."""
        if not inputs:
            return
        if self.model is None:
            if self.model_loading:
                self._waiting.extend(inputs)
                return
            show_error(
                self, "No model", "Open a model first (File > Open model…), or train one on the Train tab."
            )
            return
        self._enqueue(_Job(list(inputs), None))

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

    # -- jobs ------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None or bool(self._queue)

    def _enqueue(self, job: _Job) -> None:
        self._queue.append(job)
        if self._worker is None:
            self._start_next()

    def _start_next(self) -> None:
        if not self._queue or self.model is None:
            self._queue.clear()
            self._update_summary()
            self.predictions_finished.emit()
            return
        self._job = self._queue.pop(0)
        worker = GeneratorWorker(jobs.predict_job, self.model, self._job.inputs)
        # Signals of a cancelled worker may still be queued; each slot checks it is the current one.
        worker.yielded.connect(lambda event, w=worker: self._on_job_event(w, event))
        worker.errored.connect(lambda err, w=worker: self._on_job_errored(w, err))
        worker.finished.connect(lambda w=worker: self._on_job_finished(w))
        self._worker = worker
        worker.start()

    def _on_job_event(self, worker: GeneratorWorker, event: jobs.ImagesFound | jobs.BatchPredicted) -> None:
        job = self._job
        if worker is not self._worker or job is None:
            return
        if isinstance(event, jobs.ImagesFound):
            if job.first_row is None:
                job.first_row = self.table_model.add_sources(list(event.sources))
                self.stack.setCurrentWidget(self.view)
        else:
            self.table_model.set_predictions(job.first_row + event.start, list(event.predictions))
        self._update_summary()

    def _on_job_errored(self, worker: GeneratorWorker, err: BaseException) -> None:
        from facecomic_gui.train_tab import describe_error

        if worker is not self._worker:
            return
        show_error(self, "Prediction failed", describe_error(err))

    def _on_job_finished(self, worker: GeneratorWorker) -> None:
        if worker is not self._worker:
            return
        worker.join()
        self._worker = None
        self._job = None
        self._start_next()

    def _pending_jobs(self) -> list[_Job]:
        return ([self._job] if self._job is not None else []) + self._queue

    def _cancel_jobs(self) -> None:
        self._queue.clear()
        if self._worker is not None:
            self._worker.cancel_and_join()
            self._worker = None
            self._job = None

    # -- view ------------------------------------------------------------------------------------------

    def _on_clear_clicked(self) -> None:
        self.clear()

    def _on_paste(self) -> None:
        self.paste_from_clipboard()

    def _on_rows_changed(self, *_args) -> None:
        self._update_summary()

    def clear(self) -> None:
        self._cancel_jobs()
        self.table_model.clear()
        self._thumbnails.clear()
        self.stack.setCurrentWidget(self.drop_hint)
        self._update_summary()

    def _refresh_filter_options(self) -> None:
        current = self.filter_combo.currentData()
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItem("All images", None)
        if self.model is not None:
            for name, shown in zip(self.model.class_names, self.model.display_names, strict=True):
                self.filter_combo.addItem(shown, name)
        self.filter_combo.addItem("Unreadable", ERROR_KEY)
        index = self.filter_combo.findData(current)
        self.filter_combo.setCurrentIndex(max(0, index))
        self.filter_combo.blockSignals(False)
        self.proxy.set_label_filter(self.filter_combo.currentData())

    def _on_filter_changed(self) -> None:
        self.proxy.set_label_filter(self.filter_combo.currentData())

    def _on_data_changed(self, top_left, bottom_right, roles=()) -> None:
        if not roles or Qt.ItemDataRole.DisplayRole in roles:
            self._update_summary()

    def _update_summary(self) -> None:
        counts = self.table_model.counts()
        total = len(self.table_model.rows)
        has_rows = total > 0
        self.clear_button.setEnabled(has_rows)
        self.export_button.setEnabled(bool(self.table_model.predictions()))
        if not has_rows:
            self.summary_label.setText("")
            return
        parts = [f"{total:,} image{'s' if total != 1 else ''}"]
        if self.model is not None:
            for name, shown in zip(self.model.class_names, self.model.display_names, strict=True):
                parts.append(f"{counts.get(name, 0):,} {shown}")
        if counts.get(ERROR_KEY):
            parts.append(f"{counts[ERROR_KEY]:,} unreadable")
        if counts.get(PENDING_KEY):
            parts.append(f"predicting {total - counts[PENDING_KEY]:,}/{total:,}…")
        self.summary_label.setText("  ·  ".join(parts))

    def _on_export_clicked(self) -> None:
        self.export_csv()

    def export_csv(self) -> Path | None:
        from trainer.common.atomic import atomic_write_text
        from trainer.prediction.export import predictions_csv

        predictions = self.table_model.predictions()
        if not predictions:
            return None
        target = ask_save_path(
            self, "Export predictions", str(Path(self.last_dir) / "predictions.csv"), CSV_FILTER, ".csv"
        )
        if target is None:
            return None
        try:
            atomic_write_text(target, predictions_csv(predictions))
        except OSError as err:
            show_error(self, "Could not export", f"Could not write {target}: {err.strerror or err}.")
            return None
        return target

    def shutdown(self) -> None:
        self._cancel_jobs()


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
