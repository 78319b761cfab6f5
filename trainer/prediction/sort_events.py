"""What sorting and undoing report as they go: small frozen events, past facts, then a summary."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SortStarted:
    run: str
    target: str
    move: bool
    total: int
    dry_run: bool = False
    resumed: bool = False  # continues an interrupted run of the same kind
    recovered: int = 0  # steps of a killed run settled first


@dataclass(frozen=True, slots=True)
class ImageSorted:
    done: int  # images handled so far, this one included
    total: int
    source: str
    destination: str
    action: str  # "moved", "copied", "already there", "removed duplicate", "done before";
    # in a dry run "would move", "would copy", "already there", "would remove duplicate"
    folder: str


@dataclass(frozen=True, slots=True)
class ImageLeftInPlace:
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class SortSummary:
    target: str
    move: bool
    run: str
    total: int
    counts: dict[str, int] = field(default_factory=dict)  # folder -> images sorted into it
    actions: dict[str, int] = field(default_factory=dict)  # action -> images
    left: tuple[ImageLeftInPlace, ...] = ()
    dry_run: bool = False
    log: str = ""

    @property
    def sorted(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class UndoStarted:
    target: str
    total: int
    recovered: int = 0


@dataclass(frozen=True, slots=True)
class ImageRestored:
    done: int
    total: int
    source: str  # where the image is again
    destination: str  # where the sort had put it
    action: str  # "moved back", "removed copy", "restored"


@dataclass(frozen=True, slots=True)
class ImageNotRestored:
    source: str
    destination: str
    reason: str


@dataclass(frozen=True, slots=True)
class UndoSummary:
    target: str
    total: int
    actions: dict[str, int] = field(default_factory=dict)
    refused: tuple[ImageNotRestored, ...] = ()
    log: str = ""


SortEvent = SortStarted | ImageSorted | ImageLeftInPlace
UndoEvent = UndoStarted | ImageRestored | ImageNotRestored
