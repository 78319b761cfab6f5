"""Turns the event stream into a phase label, a fraction and an ETA, for the CLI and the GUI alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from trainer.common.text import plural
from trainer.training.events import (
    BatchFinished,
    ConfigFinished,
    DatasetScanned,
    Event,
    FeaturesFinished,
    FeaturesProgressed,
    FinalTrainingStarted,
    HoldoutEvaluated,
    LinearFitFinished,
    RunFinished,
    SplitMade,
)

MIN_SECONDS_FOR_ETA = 0.5


@dataclass(frozen=True, slots=True)
class Progress:
    phase: str  # "scan", "features", "split", "grid", "final", "refit", "holdout" or "done"
    text: str
    fraction: float  # 0..1 within the phase
    eta_seconds: float | None  # time left in the phase, once there is enough to estimate it


class ProgressTracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._phase = "scan"
        self._phase_start = clock()
        self._phase_base = 0
        self._settings_done = 0
        self._settings_total = 0
        self.current = Progress("scan", "Scanning the dataset…", 0.0, None)

    def update(self, event: Event) -> Progress:
        now = self._clock()
        match event:
            case DatasetScanned():
                self.current = Progress("scan", f"Found {plural(sum(event.counts), 'image')}", 0.0, None)
            case FeaturesProgressed(done=done, total=total, from_cache=cached):
                self.current = self._per_file("features", "Extracting features", done, total, cached, now)
            case FeaturesFinished():
                self.current = Progress(
                    "features", f"Extracted features of {plural(event.extracted, 'image')}", 1.0, 0.0
                )
            case SplitMade():
                self.current = Progress("split", "Split made", 0.0, None)
            case BatchFinished(phase="grid"):
                if self._phase != "grid":
                    self._enter("grid", now, base=event.step - 1)
                eta = self._eta(event.step - self._phase_base, event.total_steps - event.step, now)
                text = (
                    f"Grid search: lr {event.lr:g}, epoch {event.epoch}, "
                    f"{self._settings_done}/{self._settings_total or '?'} settings scored"
                )
                self.current = Progress("grid", text, _frac(event.step, event.total_steps), eta)
            case BatchFinished(phase="final" | "refit"):
                eta = self._eta(event.step - self._phase_base, event.total_steps - event.step, now)
                on = "train+val" if event.phase == "final" else "every image"
                text = f"Final training on {on}: lr {event.lr:g}, epoch {event.epoch}"
                self.current = Progress(event.phase, text, _frac(event.step, event.total_steps), eta)
            case LinearFitFinished():
                self.current = self._linear_fit(event, now)
            case ConfigFinished():
                self._settings_done, self._settings_total = event.index, event.total
            case FinalTrainingStarted():
                # Keep the grid's pace: the final run continues the same step counter.
                self._phase = "final"
            case HoldoutEvaluated():
                self.current = Progress("holdout", "Holdout evaluated", 1.0, 0.0)
            case RunFinished():
                self.current = Progress("done", "Done", 1.0, 0.0)
        return self.current

    def _linear_fit(self, event: LinearFitFinished, now: float) -> Progress:
        """The linear head counts fits: the grid's, the calibration folds, the final fit."""
        if self._phase not in ("grid", "final"):
            self._enter("grid", now, base=event.step - 1)
        eta = self._eta(event.step - self._phase_base, event.total_steps - event.step, now)
        if event.phase == "grid":
            phase = "grid"
            text = f"Grid search: L2 {event.l2:g}, {self._settings_done}/{self._settings_total or '?'} settings scored"
        elif event.phase == "calibration":
            phase, text = "final", f"Calibrating on train+val folds: L2 {event.l2:g}"
        else:
            phase = event.phase
            on = "train+val" if event.phase == "final" else "every image"
            text = f"Final fit on {on}: L2 {event.l2:g}, {plural(len(event.losses), 'iteration')}"
        return Progress(phase, text, _frac(event.step, event.total_steps), eta)

    def _per_file(self, phase: str, verb: str, done: int, total: int, cached: int, now: float) -> Progress:
        """Decoding and feature extraction: files done of total, cached ones not counted in the pace."""
        if self._phase != phase:
            self._enter(phase, now, base=cached)
        eta = self._eta(done - self._phase_base, total - done, now)
        cache_note = f" ({cached:,} from cache)" if cached else ""
        return Progress(phase, f"{verb} {done:,}/{total:,}{cache_note}", _frac(done, total), eta)

    def _enter(self, phase: str, now: float, base: int) -> None:
        self._phase, self._phase_start, self._phase_base = phase, now, base

    def _eta(self, done_in_phase: int, remaining: int, now: float) -> float | None:
        elapsed = now - self._phase_start
        if done_in_phase <= 0 or elapsed < MIN_SECONDS_FOR_ETA:
            return None
        return remaining * elapsed / done_in_phase


def _frac(done: int, total: int) -> float:
    return min(1.0, done / total) if total else 1.0


def format_duration(seconds: float | None) -> str:
    """``12s``, ``3m 05s``, ``1h 02m``; ``estimating…`` before there is enough to estimate."""
    if seconds is None:
        return "estimating…"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
