"""*Why?* for the full-size viewers, in plain Python (no Qt): which answer a viewer asks about,
the maps already computed (per image and model), and the one job computing a map now.

The map is computed by ``explain_job`` on a worker (``trainer.prediction.explain``: one forward
and one backward pass) and comes back as a small RGBA overlay, at most ``OVERLAY_SIDE`` pixels on
its longest side and in the image's aspect ratio; a viewer scales it over the picture with the
opacity the user chose. Answers that have no map (an unreadable image, "not a face") say why.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from facecomic_gui.common.observable import Emitter, JobRunner
from trainer.common.cancel import CancelToken
from trainer.common.errors import describe_error
from trainer.model.face_likeness import NOT_A_FACE  # numpy only; torch loads in the job

if TYPE_CHECKING:
    import numpy as np

    from trainer.model.model_file import LoadedModel

OVERLAY_SIDE = 512  # a map holds far less detail than this; the viewer scales it smoothly
CACHE_SIZE = 32  # maps kept (about 1 MB each)
Source = Path | Image.Image


@dataclass(frozen=True, slots=True)
class WhyMap:
    overlay: np.ndarray  # (h, w, 4) uint8 RGBA, straight alpha, the image's aspect ratio
    class_index: int
    seconds: float  # in the worker: decode, forward, backward, colours
    flat: bool = False  # no part of the picture raises the answer at the explained layer


@dataclass(frozen=True, slots=True)
class WhyRequest:
    """What a viewer may ask: the map of ``class_index`` for ``source`` under ``model``, or, when
    ``unavailable`` is set, nothing (the sentence says why)."""

    key: str  # the image's identity: a path (with its size and time) or "pasted:N"
    source: Source | None
    model: LoadedModel | None
    class_index: int | None
    answer: str = ""  # "Comic 94%", shown beside the map
    unavailable: str | None = None


def image_key(source: Source, fallback: str) -> str:
    """A file's path with its size and modification time, so an edited file gets a new map."""
    if isinstance(source, Image.Image):
        return fallback
    try:
        stat = os.stat(source)
    except OSError:
        return str(source)
    return f"{source}|{stat.st_size}|{stat.st_mtime_ns}"


def request_for(
    key: str,
    source: Source | None,
    model: LoadedModel | None,
    *,
    label: str | None,
    display_label: str | None = None,
    confidence: float | None = None,
    flag: str = "",
    error: str | None = None,
) -> WhyRequest:
    """The request for one answer, or why it has no map."""
    if error is not None:
        return WhyRequest(key, source, model, None, unavailable=f"No map: the image is unreadable ({error}).")
    if model is None:
        return WhyRequest(key, source, model, None, unavailable="No map: no model is loaded.")
    if label is None:
        return WhyRequest(
            key, source, model, None, unavailable="No map yet: the image is still being predicted."
        )
    if flag == NOT_A_FACE:
        return WhyRequest(
            key, source, model, None,
            unavailable="No map: the model says this is not a face, so there is no face or comic answer to explain.",
        )  # fmt: skip
    if label not in model.class_names:
        return WhyRequest(key, source, model, None, unavailable="No map: the answer came from another model.")
    from trainer.prediction.explain import answer_text

    answer = answer_text(display_label or label, confidence or 0.0, flag)
    return WhyRequest(key, source, model, model.class_names.index(label), answer)


def explain_job(
    model: LoadedModel, source: Source, class_index: int | None, *, cancel: CancelToken
) -> Generator[None, None, WhyMap]:
    """The map as an overlay (torch runs here, in the worker)."""
    import time

    from trainer.prediction.explain import Explainer, overlay_rgba

    start = time.perf_counter()
    cancel.raise_if_cancelled()
    explanation = Explainer(model).explain(source, class_index)
    cancel.raise_if_cancelled()
    width, height = explanation.image_size
    scale = min(1.0, OVERLAY_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    overlay = overlay_rgba(explanation.heat_at(size))
    return WhyMap(overlay, explanation.class_index, time.perf_counter() - start, explanation.flat)
    yield  # a generator, so it runs like every other job


class WhySession:
    """Maps for one family of viewers (the Predict tab's, or a gallery's): one job at a time, the
    latest request wins, and finished maps are kept per (model, image, class)."""

    def __init__(self, jobs: JobRunner, kind: str = "why") -> None:
        self.jobs = jobs
        self.kind = kind
        self._cache: OrderedDict[tuple, tuple[Any, WhyMap]] = OrderedDict()
        self._pending: tuple[tuple, WhyRequest] | None = None  # (cache key, request) being computed
        self.ready = Emitter()  # (request, WhyMap)
        self.failed = Emitter()  # (request, message)
        self.computed = 0  # maps computed by jobs (tests check the cache)

    def _cache_key(self, request: WhyRequest) -> tuple:
        return (id(request.model), request.key, request.class_index)

    def cached(self, request: WhyRequest) -> WhyMap | None:
        entry = self._cache.get(self._cache_key(request))
        if entry is None or entry[0] is not request.model:
            return None
        self._cache.move_to_end(self._cache_key(request))
        return entry[1]

    def request(self, request: WhyRequest) -> WhyMap | None:
        """The cached map at once, or None and a job whose map comes through ``ready``."""
        if request.unavailable is not None or request.source is None:
            return None
        found = self.cached(request)
        if found is not None:
            return found
        key = self._cache_key(request)
        if self._pending is not None and self._pending[0] == key:
            return None  # already computing it
        self._pending = (key, request)
        self.jobs.start(
            self.kind, explain_job, request.model, request.source, request.class_index,
            on_returned=self._on_returned, on_errored=self._on_errored, on_finished=self._on_finished,
        )  # fmt: skip
        return None

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def cancel(self) -> None:
        """The viewer closed or turned *Why?* off: stop computing (what is cached stays)."""
        self._pending = None
        self.jobs.drop(self.kind)

    # Only the kind's latest job reports (``JobRunner``), so these are about ``_pending``.

    def _on_returned(self, result: WhyMap) -> None:
        if self._pending is None:
            return
        key, request = self._pending
        self.computed += 1
        # The cache holds the model itself, so its id cannot be reused while the entry lives.
        self._cache[key] = (request.model, result)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self.ready.emit(request, result)

    def _on_errored(self, err: BaseException) -> None:
        if self._pending is not None:
            self.failed.emit(self._pending[1], f"No map: {describe_error(err)}")

    def _on_finished(self) -> None:
        self._pending = None
