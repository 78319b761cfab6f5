"""Sorting images into folders and undoing it (trainer.prediction.sorting): nothing overwritten,
nothing duplicated that was there before, nothing lost, and every step in the log."""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path

import pytest

from tests.trainer.helpers import collect
from tests.trainer.sort_helpers import FakePrediction, hashes, make_images, temp_files, tree
from trainer.common.cancel import CancelToken
from trainer.common.errors import Cancelled
from trainer.common.events import drain
from trainer.prediction import sort_log, sorting
from trainer.prediction.sort_events import ImageLeftInPlace, ImageNotRestored, ImageSorted
from trainer.prediction.sort_log import LOG_NAME, SortError, SortLog
from trainer.prediction.sort_plan import check_target, plan_sort
from trainer.prediction.sort_undo import undo_sort
from trainer.prediction.sorting import execute_sort

CLASSES = ("comics", "faces")


def predictions(paths, labels, flags=None) -> list[FakePrediction]:
    flags = flags or [""] * len(paths)
    return [
        FakePrediction(str(p), label, 0.9 if not flag else 0.55, flag)
        for p, label, flag in zip(paths, labels, flags, strict=True)
    ]


def sort(preds, target, *, move, **kw):
    plan = plan_sort(preds, target, move=move, class_names=CLASSES)
    return collect(execute_sort(plan, **kw))


def log_rows(target: Path) -> list[dict[str, str]]:
    with open(target / LOG_NAME, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def pile(tmp_path: Path) -> list[Path]:
    return make_images(
        tmp_path / "in",
        {
            "a.jpg": b"face a",
            "b.jpg": b"comic b",
            "sub/a.jpg": b"another a",  # the same name as a.jpg: gets "a (2).jpg"
            "c.jpg": b"unsure c",
            "d.jpg": b"chart d",
        },
    )


def test_copy_sorts_by_class_and_reason_and_logs_every_file(tmp_path: Path, pile):
    preds = predictions(
        pile, ["faces", "comics", "faces", "faces", "comics"], ["", "", "", "low confidence", "not a face"]
    )
    preds.append(FakePrediction(str(tmp_path / "in" / "broken.jpg"), error="not a readable image"))
    events, summary = sort(preds, tmp_path / "out", move=False)
    out = tmp_path / "out"
    assert tree(out).keys() == {
        "faces/a.jpg", "faces/a (2).jpg", "comics/b.jpg", "unsure/low-confidence/c.jpg",
        "unsure/not-a-face/d.jpg", LOG_NAME,
    }  # fmt: skip
    assert all(p.exists() for p in pile)  # a copy leaves the originals
    assert summary.counts == {"faces": 2, "comics": 1, "unsure/low-confidence": 1, "unsure/not-a-face": 1}
    assert summary.actions == {"copied": 5}
    assert [e.source for e in events if isinstance(e, ImageSorted)] == [str(p) for p in pile]
    rows = log_rows(out)
    assert list(rows[0]) == list(sort_log.COLUMNS)
    done = [r for r in rows if r["action"] == "copied"]
    assert len(done) == 5 and {r["run"] for r in rows} == {summary.run}
    by_source = {r["source"]: r for r in done}
    assert by_source[str(pile[2])]["destination"] == str(out / "faces" / "a (2).jpg")
    assert by_source[str(pile[3])]["flag"] == "low confidence"
    assert by_source[str(pile[0])]["sha256"] == tree(out)["faces/a.jpg"]
    assert [r["action"] for r in rows].count("copying") == 5  # each announced before it was done
    assert rows[-1]["action"] == "finished"


def test_copying_again_duplicates_nothing(tmp_path: Path, pile):
    preds = predictions(pile, ["faces"] * 5)
    sort(preds, tmp_path / "out", move=False)
    before = tree(tmp_path / "out")
    _, summary = sort(preds, tmp_path / "out", move=False)
    assert summary.actions == {"already there": 5}
    after = tree(tmp_path / "out")
    del before[LOG_NAME], after[LOG_NAME]
    assert after == before


def test_a_move_empties_the_pile_and_undo_restores_it_exactly(tmp_path: Path, pile):
    original = tree(tmp_path / "in")
    preds = predictions(
        pile, ["faces", "comics", "faces", "faces", "comics"], ["", "", "", "unlike training images", ""]
    )
    _, summary = sort(preds, tmp_path / "out", move=True)
    assert summary.actions == {"moved": 5}
    assert tree(tmp_path / "in") == {}
    assert hashes(tmp_path / "out") == hashes_of(original)
    _, undone = collect(undo_sort(tmp_path / "out"))
    assert undone.actions == {"moved back": 5} and not undone.refused
    assert tree(tmp_path / "in") == original
    assert tree(tmp_path / "out") == {LOG_NAME: tree(tmp_path / "out")[LOG_NAME]}  # empty folders removed
    _, again = collect(undo_sort(tmp_path / "out"))  # nothing left to undo
    assert again.total == 0


def hashes_of(tree_: dict[str, str]):
    from collections import Counter

    return Counter(tree_.values())


def test_identical_inputs_each_get_a_file_and_content_already_there_is_not_moved_twice(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"x.jpg": b"same", "y.jpg": b"same", "z.jpg": b"other"})
    (tmp_path / "out" / "faces").mkdir(parents=True)
    (tmp_path / "out" / "faces" / "old.jpg").write_bytes(b"other")  # sorted some time before
    original = hashes(tmp_path / "in")
    _, summary = sort(predictions(pile, ["faces"] * 3), tmp_path / "out", move=True)
    assert summary.actions == {"moved": 2, "removed duplicate": 1}
    assert sorted(tree(tmp_path / "out" / "faces")) == ["old.jpg", "x.jpg", "y.jpg"]
    assert not (tmp_path / "in" / "z.jpg").exists()
    _, undone = collect(undo_sort(tmp_path / "out"))
    assert undone.actions == {"moved back": 2, "restored": 1}
    assert hashes(tmp_path / "in") == original
    assert (tmp_path / "out" / "faces" / "old.jpg").read_bytes() == b"other"  # it was there before: stays


def test_a_dry_run_touches_nothing(tmp_path: Path, pile):
    preds = predictions(pile, ["faces"] * 5)
    events, summary = sort(preds, tmp_path / "out", move=True, dry_run=True)
    assert not (tmp_path / "out").exists()
    assert all(p.exists() for p in pile)
    sorted_events = [e for e in events if isinstance(e, ImageSorted)]
    assert {e.action for e in sorted_events} == {"would move"}
    assert [Path(e.destination).name for e in sorted_events] == [
        "a.jpg",
        "b.jpg",
        "a (2).jpg",
        "c.jpg",
        "d.jpg",
    ]
    assert summary.dry_run and summary.counts == {"faces": 5}


def test_a_target_holding_an_input_is_refused_and_one_inside_an_input_is_pruned(tmp_path: Path, pile):
    with pytest.raises(SortError, match="is inside the target folder"):
        check_target(tmp_path, [tmp_path / "in"])
    with pytest.raises(SortError, match="is inside the target folder"):
        check_target(tmp_path / "in", [tmp_path / "in"])
    (tmp_path / "in" / "sorted").mkdir()
    prune = check_target(tmp_path / "in" / "sorted", [tmp_path / "in"])
    assert list(prune.values()) == ["the sort's target folder, not an input"]
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SortError, match="is not a folder"):
        check_target(tmp_path / "file", [tmp_path / "in"])


def as_user_without_write_access(monkeypatch, folder: Path) -> None:
    """What a folder without write bits is to anyone but root (the tests may run as root, who
    may write anywhere), or any folder on a read-only mount."""
    real_access = os.access

    def access(path, mode, **kw):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)

    monkeypatch.setattr(sorting.os, "access", access)


def test_a_read_only_source_folder_refuses_the_move_and_moves_nothing(tmp_path: Path, pile, monkeypatch):
    as_user_without_write_access(monkeypatch, tmp_path / "in" / "sub")
    with pytest.raises(SortError, match=r"Cannot move 1 image: the folder .*sub is read-only"):
        plan_sort(predictions(pile, ["faces"] * 5), tmp_path / "out", move=True)
    plan_sort(predictions(pile, ["faces"] * 5), tmp_path / "out", move=False)  # copying is fine
    assert not (tmp_path / "out").exists()


def test_a_folder_that_turns_read_only_mid_move_leaves_its_images_in_place(tmp_path: Path, pile, monkeypatch):
    from trainer.common import new_files

    real = new_files.rename_no_replace

    def refused(source, target):
        if Path(source).parent == tmp_path / "in" / "sub":
            raise PermissionError(errno.EACCES, "Permission denied", str(target))
        return real(source, target)

    plan = plan_sort(predictions(pile, ["faces"] * 5), tmp_path / "out", move=True)
    monkeypatch.setattr(new_files, "rename_no_replace", refused)
    as_user_without_write_access(monkeypatch, tmp_path / "in" / "sub")
    events, summary = collect(execute_sort(plan))
    left = [e for e in events if isinstance(e, ImageLeftInPlace)]
    assert [(Path(e.source).parent.name, e.reason) for e in left] == [("sub", "Permission denied")]
    assert pile[2].read_bytes() == b"another a" and summary.actions == {"moved": 4}


def test_a_full_disk_stops_with_one_sentence_and_the_same_sort_finishes_later(
    tmp_path: Path, pile, monkeypatch
):
    original = hashes(tmp_path / "in")
    real_move = sorting.move_file
    calls = []

    def full_after_two(source, target, **kw):
        calls.append(source)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_move(source, target, **kw)

    monkeypatch.setattr(sorting, "move_file", full_after_two)
    preds = predictions(pile, ["faces"] * 5)
    with pytest.raises(SortError) as caught:
        sort(preds, tmp_path / "out", move=True)
    message = str(caught.value)
    assert message.startswith("No space left on device (") and "2 images of 5 sorted" in message
    assert "\n" not in message
    assert hashes(tmp_path / "in", tmp_path / "out") == original  # consistent: each file once
    assert log_rows(tmp_path / "out")[-1]["action"] == "not done"
    monkeypatch.setattr(sorting, "move_file", real_move)
    remaining = [p for p in preds if Path(p.source).exists()]
    events, summary = sort(remaining, tmp_path / "out", move=True)
    assert events[0].resumed and summary.run == log_rows(tmp_path / "out")[1]["run"]
    assert tree(tmp_path / "in") == {} and hashes(tmp_path / "out") == original
    _, undone = collect(undo_sort(tmp_path / "out"))
    assert undone.actions == {"moved back": 5}


def test_cancel_stops_between_files_and_a_copy_run_resumes_where_it_stopped(tmp_path: Path, pile):
    token = CancelToken()
    preds = predictions(pile, ["faces"] * 5)
    plan = plan_sort(preds, tmp_path / "out", move=False, class_names=CLASSES)
    generator = execute_sort(plan, cancel=token)
    seen = []
    with pytest.raises(Cancelled):
        for event in generator:
            seen.append(event)
            if len(seen) == 3:
                token.cancel()
    assert len(tree(tmp_path / "out" / "faces")) == 2
    events, summary = collect(execute_sort(plan))
    assert events[0].resumed
    assert summary.actions == {"done before": 2, "copied": 3}
    assert len(tree(tmp_path / "out" / "faces")) == 5


def test_undo_refuses_what_it_cannot_verify(tmp_path: Path, pile):
    preds = predictions(pile[:3], ["faces", "comics", "faces"])
    sort(preds, tmp_path / "out", move=True)
    (tmp_path / "out" / "faces" / "a.jpg").write_bytes(b"edited since")  # changed
    (tmp_path / "in" / "b.jpg").write_bytes(b"a new b")  # its old path taken again
    _, undone = collect(undo_sort(tmp_path / "out"))
    reasons = {Path(r.source).name: r.reason for r in undone.refused}
    assert "changed since it was sorted" in reasons["a.jpg"]
    assert "something is at" in reasons["b.jpg"]
    assert undone.actions == {"moved back": 1}
    assert (tmp_path / "out" / "faces" / "a.jpg").read_bytes() == b"edited since"
    assert (tmp_path / "out" / "comics" / "b.jpg").read_bytes() == b"comic b"


def test_undo_keeps_a_copy_whose_original_is_gone(tmp_path: Path, pile):
    sort(predictions(pile[:2], ["faces", "comics"]), tmp_path / "out", move=False)
    pile[0].unlink()
    events, undone = collect(undo_sort(tmp_path / "out"))
    assert undone.actions == {"removed copy": 1}
    assert next(e for e in events if isinstance(e, ImageNotRestored)).reason.startswith("the original")
    assert (tmp_path / "out" / "faces" / "a.jpg").read_bytes() == b"face a"


def test_unreadable_pasted_and_linked_images_are_left_where_they_are(tmp_path: Path, pile):
    link = tmp_path / "in" / "link.jpg"
    link.symlink_to(pile[0])
    preds = [
        *predictions([pile[1], link], ["comics", "faces"]),
        FakePrediction("<pasted image 1>", "faces", 0.9),
        FakePrediction(str(pile[2]), error="not a readable image"),
    ]
    plan = plan_sort(preds, tmp_path / "out", move=True)
    assert [i.source for i in plan.items] == [pile[1]]
    assert [s.reason.split(":")[0].split(" (")[0] for s in plan.left_out] == [
        "a link",
        "not a file",
        "unreadable",
    ]


def test_a_kill_mid_step_is_settled_by_the_next_run(tmp_path: Path, pile):
    """The states a kill can leave, made by hand: each is completed or marked not done."""
    out = tmp_path / "out"
    (out / "faces").mkdir(parents=True)
    from trainer.common.checksum import file_sha256

    a, b, c = pile[0], pile[1], pile[3]
    rows = [
        sort_log.LogRow(str(p), str(out / "faces" / p.name), "faces", "0.9", "", file_sha256(p), "", "r1")
        for p in (a, b, c)
    ]
    with SortLog.open(out, create=True) as log:
        log.append(sort_log.LogRow("", str(out), action="started move", run="r1"))
        log.append(rows[0].but("moving"))  # killed after the cross-FS copy, before deleting a
        (out / "faces" / "a.jpg").write_bytes(a.read_bytes())
        log.append(rows[1].but("moving"))  # killed while copying b: only a temp file
        (out / "faces" / ".b.jpg.k1ll3d.part").write_bytes(b"com")
    with SortLog.open(out, create=False) as log:
        assert sort_log.recover(log) == 2
        settled = {Path(r.source).name: r.action for r in log.rows[-2:]}
    assert settled == {"a.jpg": "moved", "b.jpg": "not done"}
    assert not a.exists() and b.exists() and temp_files(out) == []
    _, summary = sort(predictions([b, c], ["faces", "faces"]), out, move=True)  # continues run r1
    assert summary.run == "r1" and summary.actions == {"moved": 2}
    _, undone = collect(undo_sort(out))
    assert undone.actions == {"moved back": 3}
    assert a.read_bytes() == b"face a" and b.read_bytes() == b"comic b"


def test_two_sorts_cannot_write_one_log_at_once(tmp_path: Path):
    with SortLog.open(tmp_path, create=True), pytest.raises(SortError, match="Another FaceComic sort"):
        SortLog.open(tmp_path, create=True)


def test_undo_needs_a_log_that_is_a_sort_log(tmp_path: Path):
    with pytest.raises(SortError, match=r"has no facecomic-sort-log\.csv"):
        drain(undo_sort(tmp_path))
    (tmp_path / LOG_NAME).write_text("name,size\nx,1\n")
    with pytest.raises(SortError, match="is not a FaceComic sort log"):
        drain(undo_sort(tmp_path))


def test_names_that_are_not_utf8_or_hold_a_newline_go_and_come_back_exactly(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    odd = [folder / os.fsdecode(b"caf\xe9.jpg"), folder / "new\nline.jpg"]
    for i, p in enumerate(odd):
        p.write_bytes(b"odd %d" % i)
    original = tree(folder)
    sort(predictions(odd, ["faces", "comics"]), tmp_path / "out", move=True)
    assert tree(folder) == {}
    _, undone = collect(undo_sort(tmp_path / "out"))
    assert undone.actions == {"moved back": 2}
    assert tree(folder) == original


def test_left_in_place_is_reported_per_image(tmp_path: Path, pile, monkeypatch):
    real = sorting.copy_file_new

    def unreadable(source, target, **kw):
        if Path(source).name == "b.jpg":
            raise PermissionError(errno.EACCES, "Permission denied", str(source))
        return real(source, target, **kw)

    monkeypatch.setattr(sorting, "copy_file_new", unreadable)
    events, summary = sort(predictions(pile, ["faces"] * 5), tmp_path / "out", move=False)
    left = [e for e in events if isinstance(e, ImageLeftInPlace)]
    assert [(Path(e.source).name, e.reason) for e in left] == [("b.jpg", "Permission denied")]
    assert summary.actions == {"copied": 4}


def test_undoing_a_copied_link_removes_the_copy_and_keeps_the_link(tmp_path: Path):
    """Found by the property tests: the original of a copied link is the file it names, so the
    undo may remove the copy; a link that now names the copy itself keeps it."""
    picture = make_images(tmp_path / "in", {".kept.jpg": b"the picture"})[0]
    link = tmp_path / "in" / "link.jpg"
    link.symlink_to(picture)
    _, summary = sort(predictions([link], ["faces"]), tmp_path / "out", move=False)
    assert summary.actions == {"copied": 1}
    _, undone = collect(undo_sort(tmp_path / "out"))
    assert undone.actions == {"removed copy": 1} and undone.refused == ()
    assert link.is_symlink() and link.read_bytes() == b"the picture"

    sort(predictions([link], ["faces"]), tmp_path / "out", move=False)
    copy = tmp_path / "out" / "faces" / "link.jpg"
    link.unlink()
    link.symlink_to(copy)  # now the copy is the only picture the link leads to
    _, undone = collect(undo_sort(tmp_path / "out"))
    assert undone.actions == {} and len(undone.refused) == 1
    assert copy.read_bytes() == b"the picture"


def test_a_sort_undone_and_made_again_in_one_second_can_be_undone_again(tmp_path: Path, pile, monkeypatch):
    """Found by the property tests: run ids were the second and the process, so a second run in
    the same second shared the undone run's keys and its undo skipped every file."""
    monkeypatch.setattr(sort_log, "datetime", FrozenClock)
    original = tree(tmp_path / "in")
    for _ in range(3):
        _, summary = sort(predictions(pile, ["faces"] * 5), tmp_path / "out", move=True)
        assert summary.actions == {"moved": 5}
        _, undone = collect(undo_sort(tmp_path / "out"))
        assert undone.actions == {"moved back": 5}
        assert tree(tmp_path / "in") == original
    runs = {row["run"] for row in log_rows(tmp_path / "out")}
    assert len(runs) == 3


class FrozenClock:
    """``datetime`` at one instant: every run starts in the same second."""

    @staticmethod
    def now(tz=None):
        import datetime

        return datetime.datetime(2026, 1, 30, 10, 15, tzinfo=tz)


def test_a_move_and_its_undo_flush_every_step_to_disk(tmp_path: Path, pile, monkeypatch):
    """A killed process loses nothing it wrote (the SIGKILL test's child skips fsync for speed);
    a power cut does: so each step's log row and both folders of each rename reach the disk."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    log = str(tmp_path / "out" / LOG_NAME)
    sort(predictions(pile, ["faces", "comics", "faces", "faces", "comics"]), tmp_path / "out", move=True)
    moved = [p for p in (tmp_path / "out").rglob("*.jpg")]
    assert synced.count(log) >= len(pile)  # a row before each step and its outcome
    assert {str(p.parent) for p in pile} | {str(p.parent) for p in moved} <= set(synced)
    synced.clear()
    collect(undo_sort(tmp_path / "out"))
    assert synced.count(log) >= len(pile)
    assert {str(p.parent) for p in pile} <= set(synced)
