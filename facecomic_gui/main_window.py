"""The main window: Train and Predict tabs, menus, the model in use, and settings that persist."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING

import PySide6
from PySide6.QtCore import Signal, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QTabWidget

from facecomic_gui.common.dialogs import (
    ask_onnx_path,
    ask_open_model,
    save_model_dialog,
    show_error,
    write_confirming,
)
from facecomic_gui.common.model_jobs import export_onnx_job, load_model_job
from facecomic_gui.common.settings import AppSettings, default_runs_dir
from facecomic_gui.common.thumbnails import ThumbnailCache
from facecomic_gui.common.worker import LatestJobs, cancel_and_join_all
from facecomic_gui.predict.session import PredictionSession
from facecomic_gui.predict.tab import PredictTabWidget
from facecomic_gui.review_controller import ReviewController
from facecomic_gui.runs.session import RunsSession
from facecomic_gui.runs.tab import RunsTabWidget
from facecomic_gui.train.form import TrainForm
from facecomic_gui.train.session import TrainingSession
from facecomic_gui.train.tab import TrainTabWidget
from trainer import __version__
from trainer.common.assets import assets_dir, default_model_path
from trainer.common.errors import describe_error

if TYPE_CHECKING:
    from facecomic_gui.train.jobs import TrainingOutcome
    from trainer.model.model_file import LoadedModel

DEFAULT_SIZE = (1280, 860)
ICON_NAME = "facecomic.png"


def app_icon() -> QIcon:
    return QIcon(str(assets_dir() / ICON_NAME))


class MainWindow(QMainWindow):
    model_changed = Signal(object)  # LoadedModel
    model_failed = Signal(str)
    onnx_exported = Signal(str)  # the path written

    def __init__(
        self, settings: AppSettings | None = None, runs_dir: Path | None = None, *, restore: bool = True
    ) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.current_model: LoadedModel | None = None
        self._loading: tuple[Path, bool, bool] | None = None  # the model load in progress
        self.setWindowTitle("FaceComic")
        self.setWindowIcon(app_icon())
        self.jobs = LatestJobs(self)
        self.thumbnails = ThumbnailCache(64, self)
        self.runs_dir = runs_dir or default_runs_dir()
        self.train_session = TrainingSession(self.jobs, self.runs_dir)
        self.runs_session = RunsSession(self.jobs, self.runs_dir)
        self.prediction_session = PredictionSession(self.jobs)
        self.train_tab = TrainTabWidget(self.train_session, self.thumbnails)
        self.predict_tab = PredictTabWidget(self.prediction_session, self.thumbnails)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.train_tab, "Train")
        self.tabs.addTab(self.predict_tab, "Predict")
        self.runs_tab = RunsTabWidget(self.runs_session)
        self.tabs.addTab(self.runs_tab, "Runs")
        self.setCentralWidget(self.tabs)
        self._build_menus()
        self.review = ReviewController(self)  # marks, Add to dataset…, Retrain, Sort into folders…
        self.review.add_menu_actions(self.menuBar().actions()[0].menu(), self.quit_action)  # File
        self.train_tab.use_model_requested.connect(self._on_use_trained_model)
        self.train_tab.run_finished.connect(self._on_run_finished)
        self.train_tab.scan_finished.connect(self._on_scan_finished)
        self.predict_tab.open_model_requested.connect(self._on_open_model)
        self.runs_tab.use_model_requested.connect(self._on_use_trained_model)
        self.runs_tab.open_run_requested.connect(self._on_open_run)
        self.prediction_session.predictions_changed.connect(self._on_predictions_changed)
        self.prediction_session.rows_reset.connect(self._on_predictions_changed)
        self.resize(*DEFAULT_SIZE)
        self.statusBar().showMessage("Ready", 3000)
        self._restore(restore)
        self.runs_session.refresh()  # in the background; new runs are added when they finish
        self._update_actions()

    # -- set-up --------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_dataset_action = QAction("Open &dataset…", self, shortcut=QKeySequence("Ctrl+O"))
        self.open_dataset_action.triggered.connect(self._on_open_dataset)
        self.open_model_action = QAction("Open &model…", self, shortcut=QKeySequence("Ctrl+Shift+O"))
        self.open_model_action.triggered.connect(self._on_open_model)
        self.save_model_action = QAction("&Save model as…", self, shortcut=QKeySequence("Ctrl+S"))
        self.save_model_action.triggered.connect(self._on_save_model)
        self.export_onnx_action = QAction("Export model as &ONNX…", self)
        self.export_onnx_action.triggered.connect(self._on_export_onnx)
        self.export_action = QAction("&Export predictions CSV…", self, shortcut=QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(self._on_export_triggered)
        self.quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self._on_quit)
        for action in (
            self.open_dataset_action,
            self.open_model_action,
            self.save_model_action,
            self.export_onnx_action,
            self.export_action,
        ):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = QAction("&About FaceComic", self)
        self.about_action.triggered.connect(self._on_about)
        help_menu.addAction(self.about_action)

    def _restore(self, restore: bool) -> None:
        self.train_tab.set_form(TrainForm(*self.settings.training))
        if not restore:
            self.load_model(default_model_path(), quiet=True)
            return
        if self.settings.geometry is not None:
            self.restoreGeometry(self.settings.geometry)
        last_dataset = self.settings.last_dataset
        if last_dataset and Path(last_dataset).is_dir():
            self.train_tab.set_dataset(last_dataset)
        last_model = self.settings.last_model
        if last_model and Path(last_model).is_file():
            self.load_model(Path(last_model), quiet=True, remembered=True)
        else:
            self.load_model(default_model_path(), quiet=True)

    def _on_predictions_changed(self, *_args) -> None:
        self._update_actions()

    def _update_actions(self) -> None:
        self.save_model_action.setEnabled(self.current_model is not None)
        self.export_onnx_action.setEnabled(self.current_model is not None)
        self.export_action.setEnabled(bool(self.prediction_session.predictions()))

    # -- models ----------------------------------------------------------------------------------

    def load_model(self, path: Path, *, quiet: bool = False, remembered: bool = False) -> None:
        """Load in the background (torch is imported there, not before the window shows).

        A failure is a message box, or with ``quiet`` (at start-up) a banner on the Predict tab; a
        ``remembered`` model that fails falls back to the bundled default.
        """
        self._loading = (path, quiet, remembered)  # a superseded load reports nothing
        self.prediction_session.set_model_loading()
        self.statusBar().showMessage(f"Loading {path.name}…")
        self.jobs.start(
            "model",
            load_model_job,
            str(path),
            on_returned=self._on_model_loaded,
            on_errored=self._on_model_errored,
        )

    def _on_model_loaded(self, model: LoadedModel) -> None:
        self.set_model(model)

    def _on_model_errored(self, err: BaseException) -> None:
        if self._loading is not None:
            self._on_model_failed(err, *self._loading)

    def set_model(self, model: LoadedModel) -> None:
        self.current_model = model
        self.prediction_session.set_model(model)
        if model.path is not None:
            self.settings.last_model = str(model.path)
        self.statusBar().showMessage(f"Model: {model.name}", 5000)
        self._update_actions()
        self.model_changed.emit(model)

    def _on_model_failed(self, err: BaseException, path: Path, quiet: bool, remembered: bool) -> None:
        message = describe_error(err)
        self.statusBar().clearMessage()
        if remembered and path != default_model_path() and default_model_path().is_file():
            self.load_model(default_model_path(), quiet=True)  # the remembered model is gone
            return
        # Quiet (at start-up): a banner on the Predict tab; else a message box, and the model in use stays.
        self.prediction_session.set_model_error(message if quiet else None)
        if not quiet:
            show_error(self, "Could not open the model", message)
        self.model_failed.emit(message)

    def _on_open_model(self) -> None:
        self.open_model_dialog()

    def open_model_dialog(self) -> None:
        start = str(Path(self.settings.last_model).parent) if self.settings.last_model else str(Path.home())
        path = ask_open_model(self, start)
        if path is not None:
            self.load_model(path)

    def _on_export_triggered(self) -> None:
        self.predict_tab.export_csv()

    def _on_save_model(self) -> None:
        if self.current_model is not None:
            save_model_dialog(self, self.current_model)

    def _on_export_onnx(self) -> None:
        """Ask where, then export in a worker (a pretrained model takes seconds to trace)."""
        model = self.current_model
        target = ask_onnx_path(self, model) if model is not None else None
        if target is None:
            return
        from trainer.common.errors import FaceComicError
        from trainer.common.outputs import check_outputs

        def check(allow_read_only: bool) -> bool:
            check_outputs({"the ONNX file": target}, inputs=[model.path], allow_read_only=allow_read_only)
            return allow_read_only

        try:  # at once, not after the tracing: never over the model itself; read-only only if agreed
            allowed = write_confirming(self, check)
        except FaceComicError as err:
            show_error(self, "Could not export the model", str(err))
            return
        if allowed is None:
            return
        self.statusBar().showMessage(f"Exporting {model.name} as ONNX…")
        self.jobs.start(
            "onnx",
            export_onnx_job,
            model,
            str(target),
            allowed,
            on_returned=self._on_onnx_exported,
            on_errored=self._on_onnx_failed,
        )

    def _on_onnx_exported(self, path: str) -> None:
        self.statusBar().showMessage(f"Exported {path}", 5000)
        self.onnx_exported.emit(path)

    def _on_onnx_failed(self, err: BaseException) -> None:
        self.statusBar().clearMessage()
        show_error(self, "Could not export the model", describe_error(err))

    def _on_use_trained_model(self, model: LoadedModel) -> None:
        self.set_model(model)
        self.tabs.setCurrentWidget(self.predict_tab)

    def _on_open_run(self, model: LoadedModel) -> None:
        if self.train_tab.show_run(model):
            self.tabs.setCurrentWidget(self.train_tab)
        else:
            self.statusBar().showMessage("A run is in progress: open the saved run when it ends.", 5000)

    def _on_run_finished(self, outcome: TrainingOutcome) -> None:
        self.runs_session.refresh()
        self.statusBar().showMessage(
            f"Training finished: holdout accuracy {outcome.result.holdout.accuracy:.1%}", 10000
        )

    def _on_scan_finished(self, _scan) -> None:
        if self.train_session.dataset_path:
            self.settings.last_dataset = self.train_session.dataset_path

    def _on_open_dataset(self) -> None:
        self.tabs.setCurrentWidget(self.train_tab)
        self.train_tab.choose_dataset()

    # -- about, close --------------------------------------------------------------------------------

    def about_text(self) -> str:
        model = self.current_model
        if model is None:
            model_line = "No model loaded."
        else:
            holdout = f", holdout accuracy {model.holdout.accuracy:.1%}" if model.holdout else ""
            model_line = f"Model in use: {model.name} ({', '.join(model.display_names)}{holdout})."
            if model.path:
                model_line += f"<br><small>{model.path}</small>"
        return (
            f"<h3>FaceComic {__version__}</h3>"
            "<p>Tells real face photos from comic faces with the MLP of Turla (2022).</p>"
            f"<p>PyTorch {_version('torch')} · Qt {qVersion()} · PySide6 {PySide6.__version__}</p>"
            f"<p>{model_line}</p>"
        )

    def _on_about(self) -> None:
        self.show_about()

    def show_about(self) -> None:
        QMessageBox.about(self, "About FaceComic", self.about_text())

    def _on_quit(self) -> None:
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel and join every worker, then remember the window and form; marked images not
        yet added to a data set are lost only once the user agrees."""
        if not self.review.may_close():
            event.ignore()
            return
        self.review.shutdown()
        self.settings.geometry = self.saveGeometry()
        form = self.train_session.form
        if form is not None:
            self.settings.training = (form.config, form.grid)
        self.settings.sync()
        self.prediction_session.shutdown()
        self.train_session.shutdown()
        self.runs_session.shutdown()
        self.thumbnails.shutdown()
        cancel_and_join_all()  # training, scans (superseded ones too), model loads
        event.accept()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
