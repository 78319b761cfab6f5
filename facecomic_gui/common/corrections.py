"""Corrections, in plain Python (no Qt): images the user marked with their true class, in the
Predict tab or in the error gallery, by file path. One session is shared by both, so marks survive
switching tabs and reopening the gallery. *Add to dataset…* copies the marked images into a data
set's class folders in the background (``trainer.data.additions``); marks not yet added are
"unsaved", and closing the window with some asks first."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from facecomic_gui.common.observable import Emitter, JobRunner
from trainer.common.cancel import CancelToken
from trainer.common.errors import describe_error
from trainer.data.dataset import display_name

if TYPE_CHECKING:
    from trainer.data.additions import Addition, AdditionSummary, ImageAdded

# The keys that mark a row: F for the class shown as "Real face", C for the one shown as "Comic".
SHORTCUT_OF_DISPLAY = {"Real face": "F", "Comic": "C"}


@dataclass(frozen=True, slots=True)
class Correction:
    path: str  # absolute
    true_class: str  # the class folder name ("faces")
    predicted: str | None = None  # what the model said when it was marked
    added_to: str | None = None  # the data set it was added to, once it was

    @property
    def wrong(self) -> bool:
        """The mark differs from the model's answer."""
        return self.predicted is not None and self.predicted != self.true_class


def shortcut_classes(class_names: Iterable[str]) -> dict[str, str]:
    """Key -> class name: ``{"F": "faces", "C": "comics"}`` for the usual classes."""
    keys = {}
    for name in class_names:
        key = SHORTCUT_OF_DISPLAY.get(display_name(name))
        if key is not None:
            keys.setdefault(key, name)
    return keys


def path_key(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


class CorrectionsSession:
    def __init__(self, jobs_runner: JobRunner) -> None:
        self.jobs = jobs_runner
        self.marks: dict[str, Correction] = {}
        self.adding = False  # an addition runs; announced with ``changed``, like the marks
        self.last_dataset: str | None = None  # where marks were last added (Retrain trains there)
        self._adding_to = ""
        self.changed = Emitter()  # (paths): marks of these files changed, or ``adding`` did
        self.add_progressed = Emitter()  # (done, total)
        self.added = Emitter()  # (AdditionSummary)
        self.add_failed = Emitter()  # (message)

    # -- marks -----------------------------------------------------------------------------------

    def mark(
        self, paths: Sequence[str | os.PathLike[str]], true_class: str, predicted: Sequence[str | None] = ()
    ) -> None:
        """Mark ``paths`` with their true class; ``predicted``: the model's answers, in order."""
        keys = [path_key(p) for p in paths]
        answers = list(predicted) + [None] * (len(keys) - len(predicted))
        for key, answer in zip(keys, answers, strict=True):
            old = self.marks.get(key)
            if old is None or old.true_class != true_class:
                self.marks[key] = Correction(
                    key, true_class, answer if answer is not None else (old.predicted if old else None)
                )
        if keys:
            self.changed.emit(tuple(keys))

    def toggle(
        self, paths: Sequence[str | os.PathLike[str]], true_class: str, predicted: Sequence[str | None] = ()
    ) -> None:
        """The key of a class: marks the rows, or clears them when all already have that mark."""
        keys = [path_key(p) for p in paths]
        if keys and all(self.true_class(k) == true_class for k in keys):
            self.unmark(keys)
        else:
            self.mark(keys, true_class, predicted)

    def unmark(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        keys = [k for k in map(path_key, paths) if self.marks.pop(k, None) is not None]
        if keys:
            self.changed.emit(tuple(keys))

    def get(self, path: str | os.PathLike[str] | None) -> Correction | None:
        return None if path is None else self.marks.get(path_key(path))

    def true_class(self, path: str | os.PathLike[str] | None) -> str | None:
        correction = self.get(path)
        return correction.true_class if correction is not None else None

    def unsaved(self) -> list[Correction]:
        """Marks not yet added to a data set."""
        return [c for c in self.marks.values() if c.added_to is None]

    def relocate(self, moved: Mapping[str, str]) -> None:
        """Files were moved (sorted into folders, or back): their marks follow them."""
        changed = []
        for old, new in moved.items():
            correction = self.marks.pop(path_key(old), None)
            if correction is not None:
                self.marks[path_key(new)] = replace(correction, path=path_key(new))
                changed += [path_key(old), path_key(new)]
        if changed:
            self.changed.emit(tuple(changed))

    # -- adding to a data set ------------------------------------------------------------------

    def add_to_dataset(self, dataset: str) -> bool:
        """Copy the unsaved marks into ``dataset``'s class folders, in the background; False when
        there is nothing to add or an addition is already running."""
        from trainer.data.additions import Addition

        todo = [Addition(c.path, c.true_class) for c in self.unsaved()]
        if not todo or self.adding:
            return False
        self.adding = True
        self._adding_to = dataset
        self.jobs.start(
            "add-to-dataset", add_job, dataset, todo,
            on_yielded=self._on_added_one, on_returned=self._on_add_returned,
            on_errored=self._on_add_errored, on_finished=self._on_add_finished,
        )  # fmt: skip
        self.changed.emit(tuple(self.marks))
        return True

    def _on_added_one(self, event: ImageAdded) -> None:
        if event.action:
            key = path_key(event.source)
            if key in self.marks:
                self.marks[key] = replace(self.marks[key], added_to=self._adding_to)
            if event.action == "relabelled" and not os.path.lexists(event.source):
                self.relocate({event.source: event.destination})  # the misfiled image itself moved
        self.add_progressed.emit(event.done, event.total)

    def _on_add_returned(self, summary: AdditionSummary) -> None:
        self.adding = False
        self.last_dataset = summary.dataset
        self.changed.emit(tuple(self.marks))
        self.added.emit(summary)

    def _on_add_errored(self, err: BaseException) -> None:
        self.adding = False
        self.changed.emit(tuple(self.marks))
        self.add_failed.emit(describe_error(err))

    def _on_add_finished(self) -> None:
        self.adding = False  # also when it was cancelled (closing the window): nothing to show

    def shutdown(self) -> None:
        self.jobs.cancel("add-to-dataset")


def add_job(
    dataset: str, additions: list[Addition], *, cancel: CancelToken
) -> Generator[ImageAdded, None, AdditionSummary]:
    """A worker's job: the trainer's addition, its events passed on."""
    from trainer.data.additions import add_to_dataset

    return (yield from add_to_dataset(dataset, additions, cancel=cancel))
