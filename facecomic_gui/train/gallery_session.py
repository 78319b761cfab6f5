"""The error gallery's state, in plain Python (no Qt): one run's scored holdout and validation
images, the split shown, the confusion-matrix cell chosen (true class x predicted class), the order
and the selected image. ``ErrorGalleryWidget`` renders it and sends intents back."""

from __future__ import annotations

import os
from dataclasses import dataclass

from facecomic_gui.common.observable import Emitter
from trainer.data.dataset import display_name
from trainer.model.results import EvaluatedImage

SPLITS = ("holdout", "val")
SPLIT_TITLES = {"holdout": "Holdout", "val": "Validation"}


@dataclass(frozen=True, slots=True)
class GallerySource:
    """What a run kept for the gallery (from ``LoadedModel``: saved runs and reopened ones alike)."""

    class_names: tuple[str, ...]
    dataset_root: str
    images: dict[str, tuple[EvaluatedImage, ...]]  # split -> scored images

    @classmethod
    def of_model(cls, model) -> GallerySource:
        return cls(
            tuple(model.class_names),
            model.dataset_root or "",
            {split: model.evaluated_images(split) for split in SPLITS},
        )


class GallerySession:
    def __init__(self, source: GallerySource) -> None:
        self.source = source
        self.split = "holdout"
        self.true_label = 0
        self.predicted_label = 1 if len(source.class_names) > 1 else 0
        self.descending = True  # most confident first: for a wrong cell, the worst mistakes
        self.images: tuple[EvaluatedImage, ...] = ()
        self.selected: int | None = None
        self.changed = Emitter()  # (): images, split or cell changed
        self.selection_changed = Emitter()  # (index or None)
        self._refilter()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.source.class_names

    @property
    def display_names(self) -> tuple[str, ...]:
        return tuple(display_name(c) for c in self.class_names)

    def has_split(self, split: str) -> bool:
        return bool(self.source.images.get(split))

    def confusion_matrix(self, split: str | None = None) -> list[list[int]]:
        """Counts per [true][predicted] of ``split``'s images (the holdout's equals the run's)."""
        n = len(self.class_names)
        matrix = [[0] * n for _ in range(n)]
        for image in self.source.images.get(split or self.split, ()):
            matrix[image.true_label][image.predicted] += 1
        return matrix

    def full_path(self, image: EvaluatedImage) -> str:
        return os.path.join(self.source.dataset_root, image.path)

    def title(self) -> str:
        names = self.display_names
        true, predicted = names[self.true_label], names[self.predicted_label]
        kind = "right" if self.true_label == self.predicted_label else "wrong"
        return (
            f"{SPLIT_TITLES[self.split]}: {true} predicted as {predicted} "
            f"({len(self.images):,} image{'s' if len(self.images) != 1 else ''}, {kind})"
        )

    # -- intents ---------------------------------------------------------------------------------

    def show_cell(self, true_label: int, predicted_label: int, split: str | None = None) -> None:
        n = len(self.class_names)
        if not (0 <= true_label < n and 0 <= predicted_label < n):
            raise ValueError(f"no cell {true_label},{predicted_label} in a {n}-class matrix")
        self.true_label, self.predicted_label = true_label, predicted_label
        if split is not None:
            self._check_split(split)
            self.split = split
        self._refilter()

    def set_split(self, split: str) -> None:
        self._check_split(split)
        if split != self.split:
            self.split = split
            self._refilter()

    def set_descending(self, descending: bool) -> None:
        if descending != self.descending:
            self.descending = descending
            self._refilter()

    def select(self, index: int | None) -> None:
        if index is not None and not 0 <= index < len(self.images):
            index = None
        if index != self.selected:
            self.selected = index
            self.selection_changed.emit(index)

    # -- internals --------------------------------------------------------------------------------

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")

    def _refilter(self) -> None:
        chosen = [
            image
            for image in self.source.images.get(self.split, ())
            if image.true_label == self.true_label and image.predicted == self.predicted_label
        ]
        sign = -1.0 if self.descending else 1.0
        chosen.sort(key=lambda image: (sign * image.confidence, image.path))
        self.images = tuple(chosen)
        self.selected = 0 if chosen else None
        self.changed.emit()
        self.selection_changed.emit(self.selected)
