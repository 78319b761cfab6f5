"""What the app remembers between launches, in QSettings: last dataset and model, window geometry
and the training form. Tests pass their own INI-backed QSettings."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from trainer.common.configs import GridSpec, TrainConfig
from trainer.common.text import split_numbers

ORGANIZATION = "FaceComic"
APPLICATION = "FaceComic"


def default_runs_dir() -> Path:
    """Where finished runs are saved automatically (``FACECOMIC_DATA_DIR`` overrides)."""
    override = os.environ.get("FACECOMIC_DATA_DIR")
    if override:
        return Path(override) / "runs"
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".local" / "share" / "FaceComic") / "runs"


def _path_setting(key: str) -> property:
    """A remembered path: None until one is set; setting None forgets it."""

    def get(self: AppSettings) -> str | None:
        value = self.q.value(key)
        return str(value) if value not in (None, "") else None

    def set_(self: AppSettings, value: str | None) -> None:
        self.q.setValue(key, value or "")

    return property(get, set_)


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORGANIZATION, APPLICATION)

    last_dataset = _path_setting("paths/last_dataset")
    last_model = _path_setting("paths/last_model")

    @property
    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self.q.setValue("window/geometry", value)

    @property
    def training(self) -> tuple[TrainConfig, GridSpec]:
        """The training settings last used; the defaults when none or when damaged."""
        default_config, default_grid = TrainConfig(), GridSpec()
        q = self.q
        try:
            config = TrainConfig(
                features=str(q.value("train/features", default_config.features)),
                split=str(q.value("train/split", default_config.split)),
                batch_size=int(q.value("train/batch_size", default_config.batch_size)),
                seed=int(q.value("train/seed", default_config.seed)),
                head=str(q.value("train/head", default_config.head)),
                heads=int(q.value("train/heads", default_config.heads)),
            )
            grid = GridSpec(
                learning_rates=_numbers(q.value("train/learning_rates"), float, default_grid.learning_rates),
                epochs=_numbers(q.value("train/epochs"), int, default_grid.epochs),
                l2=_numbers(q.value("train/l2"), float, default_grid.l2),
            )
        except (TypeError, ValueError):
            return default_config, default_grid  # a hand-edited or damaged settings file
        return config, grid

    @training.setter
    def training(self, settings: tuple[TrainConfig, GridSpec]) -> None:
        config, grid = settings
        self.q.setValue("train/features", config.features)
        self.q.setValue("train/split", config.split)
        self.q.setValue("train/batch_size", config.batch_size)
        self.q.setValue("train/seed", config.seed)
        self.q.setValue("train/head", config.head)
        self.q.setValue("train/heads", config.heads)
        # str() of a float is its shortest exact form: 0.001 stays 0.001, nothing is rounded.
        self.q.setValue("train/learning_rates", " ".join(str(v) for v in grid.learning_rates))
        self.q.setValue("train/epochs", " ".join(str(v) for v in grid.epochs))
        self.q.setValue("train/l2", " ".join(str(v) for v in grid.l2))

    def sync(self) -> None:
        self.q.sync()


def _numbers(value: object, kind: type, default: tuple) -> tuple:
    if value in (None, ""):
        return default
    return tuple(kind(v) for v in split_numbers(str(value)))
