"""What the app remembers between launches, in QSettings: last dataset and model, window geometry
and the training form. Tests pass their own INI-backed QSettings."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QByteArray, QSettings

from trainer.configs import GridSpec, TrainConfig

ORGANIZATION = "FaceComic"
APPLICATION = "FaceComic"


@dataclass(frozen=True, slots=True)
class TrainForm:
    """The Train tab's settings as the user typed them."""

    split: str = TrainConfig().split
    learning_rates: tuple[float, ...] = GridSpec().learning_rates
    epochs: tuple[int, ...] = GridSpec().epochs
    batch_size: int = TrainConfig().batch_size
    seed: int = TrainConfig().seed


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORGANIZATION, APPLICATION)

    def _get_str(self, key: str) -> str | None:
        value = self.q.value(key)
        return str(value) if value not in (None, "") else None

    @property
    def last_dataset(self) -> str | None:
        return self._get_str("paths/last_dataset")

    @last_dataset.setter
    def last_dataset(self, value: str | None) -> None:
        self.q.setValue("paths/last_dataset", value or "")

    @property
    def last_model(self) -> str | None:
        return self._get_str("paths/last_model")

    @last_model.setter
    def last_model(self, value: str | None) -> None:
        self.q.setValue("paths/last_model", value or "")

    @property
    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self.q.setValue("window/geometry", value)

    @property
    def train_form(self) -> TrainForm:
        default = TrainForm()
        try:
            return TrainForm(
                split=str(self.q.value("train/split", default.split)),
                learning_rates=_floats(self.q.value("train/learning_rates"), default.learning_rates),
                epochs=tuple(int(v) for v in _floats(self.q.value("train/epochs"), default.epochs)),
                batch_size=int(self.q.value("train/batch_size", default.batch_size)),
                seed=int(self.q.value("train/seed", default.seed)),
            )
        except (TypeError, ValueError):
            return default  # a hand-edited or damaged settings file falls back to the defaults

    @train_form.setter
    def train_form(self, form: TrainForm) -> None:
        self.q.setValue("train/split", form.split)
        self.q.setValue("train/learning_rates", " ".join(f"{v:g}" for v in form.learning_rates))
        self.q.setValue("train/epochs", " ".join(str(v) for v in form.epochs))
        self.q.setValue("train/batch_size", form.batch_size)
        self.q.setValue("train/seed", form.seed)

    def sync(self) -> None:
        self.q.sync()


def _floats(value: object, default: tuple) -> tuple:
    if value in (None, ""):
        return default
    return tuple(float(v) for v in str(value).replace(",", " ").split())
