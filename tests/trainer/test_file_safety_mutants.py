"""Sharper tests of the file-safety core, written against the mutants that `make mutation` found
alive (docs/development.md, "Mutation testing"): each asserts what a user sees (a file kept, never
replaced; an error naming the file; a log and an undo that say what happened)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.trainer.helpers import collect
from tests.trainer.sort_helpers import make_images
from trainer.common import new_files, outputs
from trainer.common.cancel import CancelToken
from trainer.common.errors import Cancelled
from trainer.common.new_files import ContentMismatchError, copy_file_new, move_file
from trainer.common.outputs import FILE, NEW, OutputError, check_outputs, temp_name_prefix
from trainer.prediction import sort_log, sort_plan, sorting
from trainer.prediction.sort_events import ImageNotRestored, ImageRestored, SortStarted, UndoStarted
from trainer.prediction.sort_log import (
    ALREADY_THERE,
    COLUMNS,
    COPIED,
    COPYING,
    FINISHED,
    LOG_NAME,
    MOVED,
    MOVED_BACK,
    MOVING,
    MOVING_BACK,
    NOT_DONE,
    REMOVED_COPY,
    REMOVED_DUPLICATE,
    REMOVING_COPY,
    REMOVING_DUPLICATE,
    RESTORED,
    RESTORING,
    STARTED_COPY,
    STARTED_MOVE,
    LogRow,
    SortError,
    SortLog,
)
from trainer.prediction.sort_plan import DONE_BEFORE
from trainer.prediction.sort_undo import undo_sort
from trainer.prediction.sorting import execute_sort

HEADER = ",".join(COLUMNS) + "\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_text(target: Path) -> str:
    return (target / LOG_NAME).read_text(encoding="utf-8")


# -- the sort log ---------------------------------------------------------------------------------


def test_a_run_id_is_the_time_and_the_process_and_never_one_the_log_has():
    base = sort_log.new_run_id()
    assert re.fullmatch(rf"\d{{8}}T\d{{6}}Z-{os.getpid()}", base)
    assert sort_log.new_run_id({base}) == f"{base}-2"
    assert sort_log.new_run_id({base, f"{base}-2", f"{base}-3"}) == f"{base}-4"
    assert sort_log.new_run_id({"another"}) == base


def test_a_log_row_is_written_as_its_columns_in_order(tmp_path: Path):
    row = LogRow("s", "d", "faces", "0.9", "low confidence", "ab", MOVING, "r1")
    assert row.cells() == ("s", "d", "faces", "0.9", "low confidence", "ab", MOVING, "r1")
    assert row.key == ("r1", "s", "d")
    assert row.but(MOVED) == LogRow("s", "d", "faces", "0.9", "low confidence", "ab", MOVED, "r1")
    with SortLog.open(tmp_path, create=True) as log:
        log.append(row)
    assert (tmp_path / LOG_NAME).read_bytes() == (
        HEADER + "s,d,faces,0.9,low confidence,ab,moving,r1\n"
    ).encode()
    assert sort_log.read_log(tmp_path) == [row]


def test_parsing_drops_a_line_cut_short_and_rows_of_the_wrong_width(tmp_path: Path):
    path = tmp_path / LOG_NAME
    assert sort_log.parse_log("", path) == []
    whole = "a,b,faces,0.9,,ff,moved,r\n"
    rows = sort_log.parse_log(HEADER + whole + "x,y,faces,0.9,,ff,moving,r", path)  # all 8 columns, cut
    assert rows == [LogRow("a", "b", "faces", "0.9", "", "ff", "moved", "r")]
    assert sort_log.parse_log(HEADER + "too,few\n" + whole + "one,two,three,4,5,6,7,8,9\n", path) == rows
    # A header cut short is still the header's first line missing: refused.
    with pytest.raises(SortError, match=rf"{re.escape(LOG_NAME)} is not a FaceComic sort log"):
        sort_log.parse_log("source,destination\n" + whole, path)


def test_a_file_that_is_not_a_sort_log_is_refused_naming_it(tmp_path: Path):
    (tmp_path / LOG_NAME).write_text("name,size\nx,1\n", encoding="utf-8")
    with pytest.raises(SortError) as err:
        sort_log.read_log(tmp_path)
    assert (
        str(err.value)
        == f"{tmp_path / LOG_NAME} is not a FaceComic sort log (its first line is not the header)."
    )
    with pytest.raises(SortError, match="is not a FaceComic sort log"):
        SortLog.open(tmp_path, create=True)
    assert log_text(tmp_path) == "name,size\nx,1\n"  # refused, and left as it was


def test_a_damaged_log_is_refused_naming_it(tmp_path: Path):
    (tmp_path / LOG_NAME).write_text(HEADER + "a" * 200_000 + ",b\n", encoding="utf-8")  # over csv's limit
    with pytest.raises(SortError) as err:
        sort_log.read_log(tmp_path)
    assert str(err.value) == f"{tmp_path / LOG_NAME} is damaged (not valid CSV); it cannot be used."


def test_reading_a_log_that_cannot_be_read_names_it(tmp_path: Path):
    assert sort_log.read_log(tmp_path) == []  # no log: nothing sorted there
    (tmp_path / LOG_NAME).mkdir()
    with pytest.raises(SortError) as err:
        sort_log.read_log(tmp_path)
    assert str(err.value) == f"Cannot read {tmp_path / LOG_NAME}: Is a directory."


def test_undo_without_a_log_says_nothing_was_sorted_there(tmp_path: Path):
    with pytest.raises(SortError) as err:
        SortLog.open(tmp_path, create=False)
    assert str(err.value) == f"{tmp_path} has no {LOG_NAME}: nothing was sorted there, so nothing to undo."
    assert not (tmp_path / LOG_NAME).exists()
    (tmp_path / LOG_NAME).mkdir()  # a folder by that name is not a log either
    with pytest.raises(SortError, match="nothing was sorted there"):
        SortLog.open(tmp_path, create=False)


def test_a_log_that_cannot_be_opened_for_writing_names_it(tmp_path: Path):
    (tmp_path / LOG_NAME).mkdir()
    with pytest.raises(SortError, match=re.escape(str(tmp_path / LOG_NAME))):
        SortLog.open(tmp_path, create=True)


def test_a_new_log_starts_with_the_header_and_an_open_one_keeps_its_rows(tmp_path: Path):
    with SortLog.open(tmp_path, create=True) as log:
        assert log.rows == []
        assert log.path == tmp_path / LOG_NAME
    assert log_text(tmp_path) == HEADER
    with SortLog.open(tmp_path, create=False) as log:
        run = log.start_run(True, tmp_path)
        log.finish_run(run, tmp_path)
    assert (
        log_text(tmp_path) == HEADER + f",{tmp_path},,,,,started move,{run}\n,{tmp_path},,,,,finished,{run}\n"
    )
    with SortLog.open(tmp_path, create=False) as log:
        assert [row.action for row in log.rows] == [STARTED_MOVE, FINISHED]
        second = log.start_run(False, tmp_path)
        assert second != run and log.rows[-1] == LogRow("", str(tmp_path), action=STARTED_COPY, run=second)


def test_after_a_line_cut_short_the_next_row_starts_on_its_own_line(tmp_path: Path):
    (tmp_path / LOG_NAME).write_text(HEADER + "a,b,faces,0.9,,ff,moved,r\nx,y,fa", encoding="utf-8")
    with SortLog.open(tmp_path, create=True) as log:
        assert len(log.rows) == 1
        log.append(LogRow("c", "d", action=COPIED, run="r"))
    rows = sort_log.read_log(tmp_path)
    assert rows[-1] == LogRow("c", "d", action=COPIED, run="r")
    assert log_text(tmp_path).endswith("\nx,y,fa\nc,d,,,,,copied,r\n")


def test_a_second_sort_in_the_same_folder_is_refused_while_the_first_holds_the_log(tmp_path: Path):
    with SortLog.open(tmp_path, create=True):
        with pytest.raises(SortError) as err:
            SortLog.open(tmp_path, create=True)
        assert (
            str(err.value)
            == f"Another FaceComic sort or undo is working in {tmp_path}; wait for it to finish."
        )
    with SortLog.open(tmp_path, create=True):  # released at close
        pass


def test_a_log_that_cannot_be_written_stops_the_sort_naming_it(tmp_path: Path):
    log = SortLog.open(tmp_path, create=True)
    log._handle.close()
    with open(os.devnull, "w") as devnull:
        log._handle = devnull
        os.close(devnull.fileno())  # every write now fails with EBADF
        with pytest.raises(SortError) as err:
            log.append(LogRow("a", "b", action=MOVING, run="r"))
        with pytest.raises(OSError):
            devnull.close()
    assert str(err.value) == f"Cannot write {tmp_path / LOG_NAME}: Bad file descriptor."
    assert log.rows == []  # a row that was not written is not counted


def test_pending_steps_are_the_announced_ones_never_settled():
    rows = [
        LogRow("a", "A", action=MOVING, run="r"),
        LogRow("a", "A", action=MOVED, run="r"),
        LogRow("b", "B", action=COPYING, run="r"),
        LogRow("b", "B", action=NOT_DONE, run="r"),
        LogRow("c", "C", action=REMOVING_DUPLICATE, run="r"),
        LogRow("c", "C", action=MOVING, run="r2"),  # another run: another key
        LogRow("d", "D", action=FINISHED, run="r"),
    ]
    assert sort_log.pending_steps(rows) == [rows[4], rows[5]]
    undone = [LogRow("a", "A", action=a, run="r") for a in (MOVED_BACK, REMOVED_COPY, RESTORED, MOVED)]
    assert sort_log.undone_keys(undone) == {("r", "a", "A")}
    assert sort_log.undone_keys(undone[3:]) == set()


def test_the_last_run_is_the_newest_start_and_whether_it_finished():
    assert sort_log.last_run([]) is None
    first = LogRow("", "t", action=STARTED_COPY, run="r1")
    second = LogRow("", "t", action=STARTED_MOVE, run="r2")
    assert sort_log.last_run([first, LogRow("", "t", action=FINISHED, run="r1")]) == (first, True)
    assert sort_log.last_run([first, LogRow("", "t", action=FINISHED, run="r1"), second]) == (second, False)
    assert sort_log.last_run([first, second, LogRow("", "t", action=FINISHED, run="r2")]) == (second, True)


def test_holds_means_a_regular_file_with_that_content(tmp_path: Path):
    data = b"photo"
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "link").symlink_to(tmp_path / "f")
    assert sort_log.holds(tmp_path / "f", sha(data))
    assert not sort_log.holds(tmp_path / "f", sha(b"other"))
    assert not sort_log.holds(tmp_path / "link", sha(data))
    assert sort_log.holds(tmp_path / "link", sha(data), follow_links=True)
    assert not sort_log.holds(tmp_path, sha(data), follow_links=True)
    assert not sort_log.holds(tmp_path / "missing", sha(data))


def test_a_second_name_is_dropped_only_when_it_is_the_same_file_or_content(tmp_path: Path):
    new = tmp_path / "new.jpg"
    new.write_bytes(b"photo")
    same = tmp_path / "same.jpg"
    same.write_bytes(b"photo")
    other = tmp_path / "other.jpg"
    other.write_bytes(b"changed")
    hard = tmp_path / "hard.jpg"
    os.link(new, hard)
    for old in (same, other, hard):
        sort_log.drop_second_name(old, new, sha(b"photo"))
    assert not same.exists() and not hard.exists()
    assert other.read_bytes() == b"changed" and new.read_bytes() == b"photo"
    sort_log.drop_second_name(tmp_path / "gone.jpg", new, sha(b"photo"))  # nothing there: nothing to do
    assert new.read_bytes() == b"photo"


def recovered(target: Path, rows: list[LogRow]) -> list[LogRow]:
    with SortLog.open(target, create=True) as log:
        for row in rows:
            log.append(row)
    with SortLog.open(target, create=False) as log:
        count = sort_log.recover(log)
        settled = log.rows[len(rows) :]
    assert count == len(settled)
    assert sort_log.read_log(target)[len(rows) :] == settled  # written, not only counted
    return settled


def test_recovery_completes_a_move_whose_file_is_whole_at_its_destination(tmp_path: Path):
    src, dst = tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg"
    for p in (src, dst):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"photo")
    step = LogRow(str(src), str(dst), sha256=sha(b"photo"), action=MOVING, run="r")
    assert recovered(tmp_path / "out", [step]) == [step.but(MOVED)]
    assert not src.exists() and dst.read_bytes() == b"photo"  # the second name is removed


def test_recovery_of_a_copy_keeps_the_original(tmp_path: Path):
    src, dst = tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg"
    for p in (src, dst):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"photo")
    step = LogRow(str(src), str(dst), sha256=sha(b"photo"), action=COPYING, run="r")
    assert recovered(tmp_path / "out", [step]) == [step.but(COPIED)]
    assert src.read_bytes() == b"photo" and dst.read_bytes() == b"photo"


def test_recovery_marks_a_move_not_done_and_removes_its_temp_when_the_file_is_not_whole(tmp_path: Path):
    src, dst = tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg"
    src.parent.mkdir()
    dst.parent.mkdir()
    src.write_bytes(b"photo")
    temps = [dst.parent / f"{temp_name_prefix(dst)}{n}.part" for n in ("123", "abc")]
    for temp in temps:
        temp.write_bytes(b"pho")
    unrelated = dst.parent / ".b.jpg.123.part"
    unrelated.write_bytes(b"another file's temp")
    step = LogRow(str(src), str(dst), sha256=sha(b"photo"), action=MOVING, run="r")
    assert recovered(tmp_path / "out", [step]) == [step.but(NOT_DONE)]
    assert src.read_bytes() == b"photo" and not dst.exists()
    assert all(not t.exists() for t in temps) and unrelated.exists()


def test_recovery_of_a_move_back_removes_the_sorted_name_once_the_original_is_whole(tmp_path: Path):
    src, dst = tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg"
    for p in (src, dst):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"photo")
    step = LogRow(str(src), str(dst), sha256=sha(b"photo"), action=MOVING_BACK, run="r")
    assert recovered(tmp_path / "out", [step]) == [step.but(MOVED_BACK)]
    assert src.read_bytes() == b"photo" and not dst.exists()


def test_recovery_of_a_restore_keeps_the_sorted_copy(tmp_path: Path):
    src, dst = tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg"
    for p in (src, dst):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"photo")
    step = LogRow(str(src), str(dst), sha256=sha(b"photo"), action=RESTORING, run="r")
    assert recovered(tmp_path / "out", [step]) == [step.but(RESTORED)]
    assert src.read_bytes() == b"photo" and dst.read_bytes() == b"photo"


def test_recovery_of_a_move_back_not_whole_keeps_the_sorted_file(tmp_path: Path):
    src, dst = tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg"
    src.parent.mkdir()
    dst.parent.mkdir()
    dst.write_bytes(b"photo")
    temp = src.parent / f"{temp_name_prefix(src)}x1.part"
    temp.write_bytes(b"ph")
    step = LogRow(str(src), str(dst), sha256=sha(b"photo"), action=MOVING_BACK, run="r")
    assert recovered(tmp_path / "out", [step]) == [step.but(NOT_DONE)]
    assert dst.read_bytes() == b"photo" and not src.exists() and not temp.exists()


def test_recovery_of_removals_looks_at_whether_the_file_is_gone(tmp_path: Path):
    target = tmp_path / "out"
    target.mkdir()
    kept = tmp_path / "kept.jpg"
    kept.write_bytes(b"x")
    rows = [
        LogRow(str(tmp_path / "gone.jpg"), str(kept), action=REMOVING_DUPLICATE, run="r"),
        LogRow(str(kept), str(kept), action=REMOVING_DUPLICATE, run="r2"),
        LogRow(str(kept), str(tmp_path / "gone-copy.jpg"), action=REMOVING_COPY, run="r"),
        LogRow(str(kept), str(kept), action=REMOVING_COPY, run="r3"),
    ]
    assert recovered(target, rows) == [
        rows[0].but(REMOVED_DUPLICATE),
        rows[1].but(NOT_DONE),
        rows[2].but(REMOVED_COPY),
        rows[3].but(NOT_DONE),
    ]
    assert kept.read_bytes() == b"x"


# -- outputs: what is at a path, and the sentence that names it -----------------------------------


def test_what_a_path_that_is_not_a_file_is_called(tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert outputs.describe_kind(tmp_path) == "a folder"
    assert outputs.describe_kind(fifo) == "a named pipe"
    assert outputs.describe_kind(os.devnull) == "a character device"
    assert outputs.describe_kind(tmp_path / "missing") == "not a regular file"
    (tmp_path / "f").write_bytes(b"")  # it was not a regular file a moment ago, and is now
    assert outputs.describe_kind(tmp_path / "f") == "not a regular file"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s"))
        assert outputs.describe_kind(tmp_path / "s") == "a socket"
    block = tmp_path / "block"
    try:
        os.mknod(block, 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    except PermissionError:
        pytest.skip("making a block device needs root")
    assert outputs.describe_kind(block) == "a block device"
    with pytest.raises(OutputError) as err:
        outputs.write_text(block, "x")
    assert str(err.value) == f"Cannot write {block}: it is a block device, not a file."


def test_a_name_too_long_or_a_link_loop_is_one_sentence_naming_it(tmp_path: Path):
    long = tmp_path / ("n" * 300)
    with pytest.raises(OutputError) as err:
        outputs.write_text(long, "x")
    assert str(err.value) == f"Cannot write {outputs.shown(long)}: file name too long."
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(OutputError) as err:
        outputs.write_text(loop, "x")
    assert str(err.value) == f"Cannot write {loop}: it is a link that points back to itself."
    with pytest.raises(OutputError) as err:
        outputs.write_text(tmp_path / "a\0b", "x")
    assert str(err.value).endswith(": the name is not a valid file name.")


def test_why_an_os_error_is_shown_as_it_is():
    assert outputs._reason(OSError(errno.EACCES, "Permission denied.")) == "permission denied"
    assert outputs._reason(OSError(errno.ELOOP, "Too many levels of symbolic links")) == (
        "it is a link that points back to itself"
    )
    assert outputs._reason(OSError("No errno.")) == "No errno."  # not an OS sentence: kept as it is


def test_two_outputs_are_compared_by_name_and_by_file_and_none_is_skipped(tmp_path: Path):
    real = tmp_path / "real.csv"
    real.write_text("x")
    hard = tmp_path / "hard.csv"
    os.link(real, hard)
    with pytest.raises(OutputError) as err:
        check_outputs({"--csv": real, "--json": None, "the sidecar": hard})
    assert str(err.value) == f"--csv and the sidecar name the same file ({real}); give each its own name."
    with pytest.raises(OutputError) as err:
        check_outputs(
            {"--a": tmp_path / "new.csv", "--b": tmp_path / "other.csv", "--c": tmp_path / "new.csv"}
        )
    assert str(err.value).startswith("--a and --c name the same file (")
    targets = check_outputs({"--a": tmp_path / "new.csv", "--json": None, "--b": real})
    assert [t.path for t in targets] == [tmp_path / "new.csv", real]
    assert [t.kind for t in targets] == [NEW, FILE]
    # A device and a file are never the same, nor two new files at different names.
    check_outputs({"--a": os.devnull, "--b": real})
    check_outputs({"--a": real, "--b": os.devnull})
    check_outputs({"--a": tmp_path / "x1", "--b": tmp_path / "x2"})


def test_checking_outputs_refuses_a_read_only_file_unless_the_call_allows_it(tmp_path: Path):
    kept = tmp_path / "kept.csv"
    kept.write_text("precious")
    kept.chmod(0o444)
    with pytest.raises(outputs.ReadOnlyOutputError, match="the file is read-only"):
        check_outputs({"--csv": kept})
    assert [t.path for t in check_outputs({"--csv": kept}, allow_read_only=True)] == [kept]
    assert kept.read_text() == "precious"


def test_an_output_that_is_an_input_names_both_when_they_differ(tmp_path: Path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"photo")
    hard = tmp_path / "hard.jpg"
    os.link(image, hard)
    with pytest.raises(OutputError) as err:
        check_outputs({"--csv": hard}, inputs=[None, image])
    assert str(err.value) == (
        f"Cannot write {hard}: it is the same file as the input {image}, which would be destroyed; "
        "choose another name for the output."
    )
    with pytest.raises(OutputError) as err:
        check_outputs({"--csv": image}, inputs=[image])
    assert "the same file as the input, which" in str(err.value)
    assert image.read_bytes() == b"photo"


# -- new files: never over another, errors naming the file ----------------------------------------


def test_a_folder_to_write_into_must_exist_be_a_folder_and_be_writable(tmp_path: Path):
    assert new_files.check_folder(tmp_path) == tmp_path
    with pytest.raises(OutputError) as err:
        new_files.check_folder(tmp_path / "missing")
    assert str(err.value) == f"Cannot write into {tmp_path / 'missing'}: the folder does not exist."
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OutputError) as err:
        new_files.write_new(tmp_path / "file", "a.jpg", b"data")
    assert str(err.value) == f"Cannot write into {tmp_path / 'file'}: the folder is not a folder."
    assert (tmp_path / "file").read_bytes() == b"x"


def test_a_read_only_folder_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(
        new_files.os,
        "access",
        lambda p, mode: False if Path(p) == tmp_path and mode & os.W_OK else real_access(p, mode),
    )
    with pytest.raises(OutputError) as err:
        new_files.write_new(tmp_path, "a.jpg", b"data")
    assert str(err.value) == f"Cannot write into {tmp_path}: the folder is not writable."
    assert list(tmp_path.iterdir()) == []


def test_write_new_with_its_own_naming_and_made_folders(tmp_path: Path):
    folder = tmp_path / "deep" / "er"
    first = new_files.write_new(folder, "x.txt", b"1", make_folders=True)
    second = new_files.write_new(
        folder, "x.txt", b"2", naming=lambda name, n: name if n == 1 else f"{n}-{name}"
    )
    assert (first, second) == (folder / "x.txt", folder / "2-x.txt")
    assert first.read_bytes() == b"1" and second.read_bytes() == b"2"
    assert sorted(p.name for p in folder.iterdir()) == ["2-x.txt", "x.txt"]  # no temp file left
    # make_folders on a folder that is already there just writes into it.
    assert new_files.write_new(folder, "y.txt", b"3", make_folders=True).read_bytes() == b"3"


def test_create_new_makes_the_file_whole_or_refuses_a_taken_name(tmp_path: Path):
    target = tmp_path / "model.safetensors"
    assert new_files.create_new(target, b"weights") == target
    assert target.read_bytes() == b"weights"
    with pytest.raises(FileExistsError):
        new_files.create_new(target, b"other")
    assert target.read_bytes() == b"weights"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_free_names_skip_what_is_taken_even_a_dangling_link(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "a (2).jpg").symlink_to(tmp_path / "nowhere")
    names = new_files.free_names(tmp_path, "a.jpg")
    assert [next(names), next(names)] == [tmp_path / "a (3).jpg", tmp_path / "a (4).jpg"]
    assert len(list(new_files.free_names(tmp_path, "b"))) == new_files.MAX_NUMBERED == 10_000


def test_when_every_numbered_name_is_taken_nothing_is_replaced(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(new_files, "MAX_NUMBERED", 3)
    for n in (1, 2, 3):
        (tmp_path / new_files.numbered("a.jpg", n)).write_bytes(b"kept")
    source = tmp_path / "src"
    source.write_bytes(b"new")
    with pytest.raises(OutputError) as err:
        new_files.link_new(source, tmp_path, "a.jpg")
    assert str(err.value) == f"Cannot write {tmp_path / 'a.jpg'}: 3 numbered names are taken."
    assert all((tmp_path / new_files.numbered("a.jpg", n)).read_bytes() == b"kept" for n in (1, 2, 3))
    assert new_files.link_new(source, tmp_path, "b.jpg") == tmp_path / "b.jpg"
    (tmp_path / new_files.numbered("a.jpg", 3)).unlink()  # the last numbered name is tried too
    assert new_files.link_new(source, tmp_path, "a.jpg") == tmp_path / "a (3).jpg"


def test_link_new_names_the_place_it_could_not_write(tmp_path: Path):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"x")
    with pytest.raises(OSError) as err:
        new_files.link_new(source, tmp_path / "missing", "a.jpg")
    assert err.value.filename == str(tmp_path / "missing" / "a.jpg")
    assert source.read_bytes() == b"x"


def test_renaming_a_file_onto_its_own_other_name_is_a_plain_rename(tmp_path: Path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "b.jpg")
    assert new_files.rename_new(a, tmp_path / "b.jpg") == tmp_path / "b.jpg"  # not FileExistsError
    assert (tmp_path / "b.jpg").read_bytes() == b"x"


def test_without_hard_links_a_failed_rename_leaves_no_placeholder(tmp_path: Path, monkeypatch):
    def no_links(*_args, **_kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(new_files.os, "link", no_links)
    with pytest.raises(FileNotFoundError):
        new_files.rename_new(tmp_path / "missing", tmp_path / "b")
    assert list(tmp_path.iterdir()) == []
    a = tmp_path / "a"
    a.write_bytes(b"x")
    new_files.create_new(tmp_path / "c", b"made")
    assert (tmp_path / "c").read_bytes() == b"made"


def test_a_hard_link_that_fails_otherwise_is_not_retried_another_way(tmp_path: Path, monkeypatch):
    def denied(*_args, **_kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(new_files.os, "link", denied)
    a = tmp_path / "a"
    a.write_bytes(b"x")
    with pytest.raises(PermissionError):
        new_files.link_new(a, tmp_path, "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_a_missing_source_is_what_a_failed_move_names(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as err:
        move_file(tmp_path / "gone.jpg", tmp_path / "b.jpg")
    assert err.value.filename == str(tmp_path / "gone.jpg")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(OSError) as err:
        move_file(tmp_path / "a.jpg", tmp_path / "missing" / "b.jpg")
    assert err.value.filename == str(tmp_path / "missing" / "b.jpg")
    assert (tmp_path / "a.jpg").read_bytes() == b"x"


def test_a_move_out_of_a_folder_that_may_not_change_names_the_source(tmp_path: Path):
    source = tmp_path / "in" / "a.jpg"
    source.parent.mkdir()
    source.write_bytes(b"x")
    err = OSError(errno.EACCES, "Permission denied")
    assert new_files._blamed(err, source, tmp_path / "b.jpg") == tmp_path / "b.jpg"
    source.parent.chmod(0o555)
    try:
        if os.access(source.parent, os.W_OK):  # root: the bits are not enforced, fake the check
            real = os.access
            checked = []

            def access(path, mode):
                checked.append(mode)
                return False if Path(path) == source.parent else real(path, mode)

            new_files.os.access, saved = access, new_files.os.access
            try:
                assert new_files._blamed(err, source, tmp_path / "b.jpg") == source
                assert checked == [os.W_OK | os.X_OK]
            finally:
                new_files.os.access = saved
        else:
            assert new_files._blamed(err, source, tmp_path / "b.jpg") == source
        for code in (errno.EPERM, errno.EROFS):
            assert new_files._blamed(OSError(code, "x"), source, tmp_path / "b.jpg") == source or os.access(
                source.parent, os.W_OK
            )
    finally:
        source.parent.chmod(0o755)
    assert (
        new_files._blamed(OSError(errno.ENOENT, "x"), tmp_path / "gone", tmp_path / "b") == tmp_path / "gone"
    )
    assert new_files._blamed(OSError(errno.ENOENT, "x"), source, tmp_path / "b") == tmp_path / "b"


def test_a_copy_whose_source_cannot_be_read_names_the_source(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as err:
        copy_file_new(tmp_path / "gone.jpg", tmp_path / "b.jpg")
    assert err.value.filename == str(tmp_path / "gone.jpg")
    with pytest.raises(IsADirectoryError) as err:
        copy_file_new(tmp_path, tmp_path / "b.jpg")
    assert err.value.filename == str(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temp file, no target


def test_a_copy_that_changed_says_which_file_and_writes_nothing(tmp_path: Path):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"changed")
    with pytest.raises(ContentMismatchError) as err:
        copy_file_new(source, tmp_path / "b.jpg", expected_sha256=sha(b"original"))
    assert (
        str(err.value)
        == f"{source} changed while it was being copied; nothing was written to {tmp_path / 'b.jpg'}."
    )
    assert copy_file_new(source, tmp_path / "b.jpg", expected_sha256=sha(b"changed")) == sha(b"changed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg"]


def test_a_copy_keeps_the_permission_bits_and_times_and_reads_back(tmp_path: Path, monkeypatch):
    from trainer.common import checksum

    source = tmp_path / "a.jpg"
    source.write_bytes(b"x" * ((1 << 20) + 5))  # two read blocks
    source.chmod(0o640)
    os.utime(source, (1_000_000, 1_000_000))
    assert copy_file_new(source, tmp_path / "b.jpg") == sha(b"x" * ((1 << 20) + 5))
    copy = tmp_path / "b.jpg"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o640 and copy.stat().st_mtime == 1_000_000
    monkeypatch.setattr(checksum, "file_sha256", lambda _p: "0" * 64)
    with pytest.raises(ContentMismatchError) as err:
        copy_file_new(source, tmp_path / "c.jpg")
    assert str(err.value) == f"The copy {tmp_path / 'c.jpg'} differs from {source}; it was removed."
    assert not (tmp_path / "c.jpg").exists()


def test_a_move_within_one_file_system_keeps_the_file_itself(tmp_path: Path):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"x")
    inode = source.stat().st_ino
    assert move_file(source, tmp_path / "b.jpg") is None
    assert (tmp_path / "b.jpg").stat().st_ino == inode and not source.exists()
    (tmp_path / "c.jpg").write_bytes(b"c")
    with pytest.raises(FileExistsError):
        move_file(tmp_path / "b.jpg", tmp_path / "c.jpg")
    assert (tmp_path / "c.jpg").read_bytes() == b"c" and (tmp_path / "b.jpg").read_bytes() == b"x"


# -- the sort plan: where each image goes, and what is refused before anything moves -------------


@dataclass(frozen=True)
class Answer:
    source: str
    label: str | None = "faces"
    confidence: float | None = 0.9
    flag: str = ""
    error: str | None = None


def test_each_answer_goes_to_its_class_or_its_reason(tmp_path: Path):
    assert sort_plan.folder_of("faces", "") == "faces"
    assert sort_plan.folder_of("faces", "not a face") == "unsure/not-a-face"
    assert sort_plan.folder_of("faces", "unlike training images") == "unsure/unlike-training-images"
    assert sort_plan.folder_of("comics", "low confidence") == "unsure/low-confidence"
    assert sort_plan.folder_of("comics", "some new reason") == "unsure/some-new-reason"


def test_the_plan_counts_every_folder_in_order_even_empty_ones(tmp_path: Path):
    images = [tmp_path / f"{n}.jpg" for n in range(4)]
    for image in images:
        image.write_bytes(image.name.encode())
    answers = [
        Answer(str(images[0]), "faces"),
        Answer(str(images[1]), "faces", flag="low confidence"),
        Answer(str(images[2]), "faces"),
        Answer(str(images[3]), "comics", confidence=None),
    ]
    plan = sort_plan.plan_sort(answers, tmp_path / "out", move=False, class_names=("comics", "faces"))
    assert list(plan.counts().items()) == [
        ("comics", 1),
        ("faces", 2),
        ("unsure/not-a-face", 0),
        ("unsure/unlike-training-images", 0),
        ("unsure/low-confidence", 1),
    ]
    assert plan.items[3].confidence == 0.0 and plan.items[0].confidence == 0.9
    assert plan.target == tmp_path / "out" and not plan.move
    # Without the model's classes, the labels in the order first seen.
    assert sort_plan.plan_sort(answers, tmp_path / "out", move=False).class_names == ("faces", "comics")


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a\\b", "a\x00b", "unsure", "Unsure"])
def test_a_class_that_cannot_be_a_folder_name_is_refused(tmp_path: Path, name: str):
    with pytest.raises(SortError) as err:
        sort_plan.check_class_names(["faces", name])
    assert str(err.value) == (
        f"The model's class {outputs.shown(name)!r} cannot be a folder name beside unsure/; "
        "sort with a model whose classes are plain folder names."
    )
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    with pytest.raises(SortError, match="cannot be a folder name"):
        sort_plan.plan_sort([Answer(str(image), name)], tmp_path / "out", move=False)
    sort_plan.check_class_names(["faces", "comics", "unsure-ish", "a.b"])


def test_what_the_plan_leaves_where_it_is_and_why(tmp_path: Path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    link = tmp_path / "link.jpg"
    link.symlink_to(image)
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    answers = [
        Answer(str(tmp_path / "bad.jpg"), error="not a readable image"),
        Answer(str(tmp_path / "none.jpg"), label=None),
        Answer("<pasted image 1>"),
        Answer(str(link)),
        Answer(str(fifo)),
        Answer("a\x00b"),
        Answer(str(image)),
    ]
    moving = sort_plan.plan_sort(answers, tmp_path / "out", move=True)
    assert [(s.path, s.reason) for s in moving.left_out] == [
        (str(tmp_path / "bad.jpg"), "unreadable (not a readable image)"),
        (str(tmp_path / "none.jpg"), "unreadable (no answer)"),
        ("<pasted image 1>", "not a file (a pasted image, or it is gone)"),
        (str(link), "a link: moving it would move the link, not the picture"),
        (str(fifo), "not a regular file"),
        ("a\x00b", "not a file (a pasted image, or it is gone)"),
    ]
    assert [i.source for i in moving.items] == [image]
    copying = sort_plan.plan_sort(answers, tmp_path / "out", move=False)
    assert [i.source for i in copying.items] == [link, image]  # a copy of a link copies the picture


def test_a_target_that_is_a_file_or_read_only_is_one_sentence(tmp_path: Path, monkeypatch):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(SortError) as err:
        sort_plan.check_target(tmp_path / "file", [])
    assert str(err.value) == (
        f"{tmp_path / 'file'} is not a folder; --sort-into needs a folder (it is created if missing)."
    )
    real_access = os.access
    monkeypatch.setattr(
        sort_plan.os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode)
    )
    with pytest.raises(SortError) as err:
        sort_plan.check_target(tmp_path / "new" / "out", [])
    assert (
        str(err.value) == f"Cannot sort into {tmp_path / 'new' / 'out'}: the folder {tmp_path} is read-only."
    )
    monkeypatch.setattr(sort_plan.os, "access", real_access)
    assert sort_plan.check_target(tmp_path / "new" / "out", [tmp_path / "file"]) == {}  # nothing to prune yet


def test_an_input_inside_the_target_is_named(tmp_path: Path):
    (tmp_path / "in").mkdir()
    with pytest.raises(SortError) as err:
        sort_plan.check_target(tmp_path, [tmp_path / "other", tmp_path / "in"])
    assert str(err.value).startswith(
        f"{tmp_path / 'other'} is inside the target folder {tmp_path}; sort into"
    )
    assert str(err.value).endswith("sort into a folder outside the images, or inside one of their folders.")
    st = (tmp_path / "in").stat()
    assert sort_plan.check_target(tmp_path / "in", [tmp_path / "elsewhere"]) == {
        (st.st_dev, st.st_ino): "the sort's target folder, not an input"
    }


def test_a_move_out_of_read_only_folders_counts_the_images_and_the_folders(tmp_path: Path, monkeypatch):
    folders = [tmp_path / name for name in ("a", "b", "c")]
    images = []
    for folder in folders:
        folder.mkdir()
        for n in range(2):
            images.append(folder / f"{n}.jpg")
            images[-1].write_bytes(b"x")
    real_access = os.access
    read_only = {folders[1], folders[2]}
    monkeypatch.setattr(
        sort_plan.os, "access", lambda p, mode: False if Path(p) in read_only else real_access(p, mode)
    )
    with pytest.raises(SortError) as err:
        sort_plan.check_movable(images)
    assert str(err.value) == (
        f"Cannot move 4 images: the folder {folders[1]} (and 1 other folder) is read-only, so nothing was "
        "moved; make it writable, or sort without --move to copy them."
    )
    read_only.discard(folders[2])
    with pytest.raises(SortError) as err:
        sort_plan.check_movable(images)
    assert str(err.value).startswith(f"Cannot move 2 images: the folder {folders[1]} is read-only, so")
    read_only.clear()
    sort_plan.check_movable(images)


# -- sorting: the events, the log and the summary say what happened -------------------------------


def sort_them(paths, target: Path, *, move: bool, labels=None, flags=None, dry_run=False, **kw):
    labels = labels or ["faces"] * len(paths)
    flags = flags or [""] * len(paths)
    answers = [Answer(str(p), label, 0.25, flag) for p, label, flag in zip(paths, labels, flags, strict=True)]
    plan = sort_plan.plan_sort(answers, target, move=move, class_names=("comics", "faces"))
    return collect(execute_sort(plan, dry_run=dry_run, **kw))


def actions_in_log(target: Path) -> list[tuple[str, str, str]]:
    return [
        (Path(r.source).name, Path(r.destination).name, r.action)
        for r in sort_log.read_log(target)
        if r.source
    ]


def test_every_image_is_an_event_numbered_in_order_and_the_summary_adds_them_up(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b", "c.jpg": b"c"})
    out = tmp_path / "out"
    events, summary = sort_them(
        pile, out, move=False, labels=["faces", "comics", "faces"], flags=["", "", "low confidence"]
    )
    started = events[0]
    assert isinstance(started, SortStarted)
    assert (started.target, started.move, started.total, started.dry_run, started.resumed, started.recovered) == (
        str(out), False, 3, False, False, 0,
    )  # fmt: skip
    assert [
        (e.done, e.total, Path(e.source).name, e.destination, e.action, e.folder) for e in events[1:]
    ] == [
        (1, 3, "a.jpg", str(out / "faces" / "a.jpg"), COPIED, "faces"),
        (2, 3, "b.jpg", str(out / "comics" / "b.jpg"), COPIED, "comics"),
        (3, 3, "c.jpg", str(out / "unsure" / "low-confidence" / "c.jpg"), COPIED, "unsure/low-confidence"),
    ]
    assert summary.target == str(out) and not summary.move and summary.run == started.run
    assert summary.total == 3 and summary.sorted == 3 and not summary.dry_run
    assert summary.counts == {"faces": 1, "comics": 1, "unsure/low-confidence": 1}
    assert summary.actions == {COPIED: 3} and summary.left == ()
    assert summary.log == str(out / LOG_NAME)
    rows = sort_log.read_log(out)
    assert [r.action for r in rows] == [
        STARTED_COPY,
        COPYING,
        COPIED,
        COPYING,
        COPIED,
        COPYING,
        COPIED,
        FINISHED,
    ]
    assert all(r.run == started.run for r in rows)
    copied = rows[2]
    assert (copied.label, copied.confidence, copied.flag, copied.sha256) == (
        "faces",
        "0.250000",
        "",
        sha(b"a"),
    )
    assert rows[6].flag == "low confidence"


def test_a_dry_run_gives_each_image_its_own_name_and_writes_nothing(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"1", "sub/a.jpg": b"2", "b.jpg": b"3"})
    out = tmp_path / "out"
    make_images(out / "faces", {"b.jpg": b"3"})  # already there
    for move, verb, dup in (
        (True, "would move", "would remove duplicate"),
        (False, "would copy", ALREADY_THERE),
    ):
        events, summary = sort_them(pile, out, move=move, dry_run=True)
        assert events[0].run == "(dry run)" and events[0].dry_run and summary.dry_run
        assert [(e.destination, e.action) for e in events[1:]] == [
            (str(out / "faces" / "a.jpg"), verb),
            (str(out / "faces" / "a (2).jpg"), verb),
            (str(out / "faces" / "b.jpg"), dup),
        ]
        assert summary.log == str(out / LOG_NAME)
    assert sorted(p.name for p in out.rglob("*")) == ["b.jpg", "faces"]  # no log, nothing placed
    assert all(p.exists() for p in pile)


def test_copying_what_is_already_there_writes_nothing_and_logs_it(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"same", "b.jpg": b"diff"})
    out = tmp_path / "out"
    make_images(out / "faces", {"old.jpg": b"same", "other.jpg": b"diff!", ".hidden.jpg": b"diff"})
    events, summary = sort_them(pile, out, move=False)
    assert [(e.destination, e.action) for e in events[1:]] == [
        (str(out / "faces" / "old.jpg"), ALREADY_THERE),
        (str(out / "faces" / "b.jpg"), COPIED),  # same size as other.jpg, other content; hidden files ignored
    ]
    assert summary.actions == {ALREADY_THERE: 1, COPIED: 1}
    assert actions_in_log(out) == [
        ("a.jpg", "old.jpg", ALREADY_THERE),
        ("b.jpg", "b.jpg", COPYING),
        ("b.jpg", "b.jpg", COPIED),
    ]
    _, undone = collect(undo_sort(out))
    assert undone.actions == {REMOVED_COPY: 1}
    assert (out / "faces" / "old.jpg").read_bytes() == b"same" and not (out / "faces" / "b.jpg").exists()


def test_moving_a_duplicate_removes_it_and_undo_brings_it_back(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"same"})
    out = tmp_path / "out"
    make_images(out / "faces", {"old.jpg": b"same"})
    events, _summary = sort_them(pile, out, move=True)
    assert (events[1].destination, events[1].action) == (str(out / "faces" / "old.jpg"), REMOVED_DUPLICATE)
    assert not pile[0].exists()
    assert actions_in_log(out) == [
        ("a.jpg", "old.jpg", REMOVING_DUPLICATE),
        ("a.jpg", "old.jpg", REMOVED_DUPLICATE),
    ]
    events, undone = collect(undo_sort(out))
    assert undone.actions == {RESTORED: 1} and pile[0].read_bytes() == b"same"
    assert (out / "faces" / "old.jpg").read_bytes() == b"same"  # it was there before: it stays


def test_a_duplicate_that_cannot_be_removed_stays_and_says_why(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"same"})
    out = tmp_path / "out"
    make_images(out / "faces", {"old.jpg": b"same"})
    real_unlink = Path.unlink

    def refused(self, missing_ok=False):
        if self == pile[0]:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    _events, summary = sort_them(pile, out, move=True)
    assert [(e.source, e.reason) for e in summary.left] == [
        (str(pile[0]), "cannot remove it (Permission denied)")
    ]
    assert actions_in_log(out)[-1] == ("a.jpg", "old.jpg", NOT_DONE) and pile[0].exists()


def test_a_file_placed_by_this_run_is_not_mistaken_for_one_already_there(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"same", "b.jpg": b"same"})
    out = tmp_path / "out"
    token = CancelToken()
    generator = execute_sort(
        sort_plan.plan_sort([Answer(str(p)) for p in pile], out, move=False, class_names=("faces",)),
        cancel=token,
    )
    next(generator), next(generator)
    token.cancel()
    with pytest.raises(Cancelled):
        next(generator)
    events, _summary = sort_them(pile, out, move=False)  # resumes: a.jpg was copied by this very run
    assert events[0].resumed
    assert [(Path(e.destination).name, e.action) for e in events[1:]] == [
        ("a.jpg", DONE_BEFORE),
        ("b.jpg", COPIED),
    ]
    assert sorted(p.name for p in (out / "faces").iterdir()) == ["a.jpg", "b.jpg"]


def test_a_run_of_the_other_kind_is_not_resumed(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b"})
    out = tmp_path / "out"
    token = CancelToken()
    plan = sort_plan.plan_sort([Answer(str(p)) for p in pile], out, move=False, class_names=("faces",))
    generator = execute_sort(plan, cancel=token)
    next(generator), next(generator)
    token.cancel()
    with pytest.raises(Cancelled):
        next(generator)
    first_run = sort_log.read_log(out)[0].run
    events, summary = sort_them(pile, out, move=True)
    assert not events[0].resumed and summary.run != first_run
    assert summary.actions == {REMOVED_DUPLICATE: 1, MOVED: 1}  # a.jpg's copy was already there
    events, summary = sort_them(pile, out, move=True, dry_run=True)
    assert not events[0].resumed


def test_an_image_that_changed_since_it_was_sorted_is_sorted_again(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"first"})
    out = tmp_path / "out"
    token = CancelToken()
    plan = sort_plan.plan_sort(
        [Answer(str(pile[0])), Answer(str(pile[0]))], out, move=False, class_names=("faces",)
    )
    generator = execute_sort(plan, cancel=token)
    next(generator), next(generator)
    token.cancel()
    with pytest.raises(Cancelled):
        next(generator)
    pile[0].write_bytes(b"second")
    events, _ = sort_them(pile, out, move=False)
    assert [(Path(e.destination).name, e.action) for e in events[1:]] == [("a (2).jpg", COPIED)]
    assert (out / "faces" / "a.jpg").read_bytes() == b"first"


def test_an_image_gone_or_turned_into_a_link_is_left_where_it_is(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b", "c.jpg": b"c"})
    plan = sort_plan.plan_sort(
        [Answer(str(p)) for p in pile], tmp_path / "out", move=True, class_names=("faces",)
    )
    pile[0].unlink()
    pile[1].unlink()
    pile[1].symlink_to(pile[2])
    events, summary = collect(execute_sort(plan))
    assert [(Path(e.source).name, e.reason) for e in summary.left] == [
        ("a.jpg", "cannot read it (No such file or directory)"),
        ("b.jpg", "it became a link; links are not moved"),
    ]
    assert summary.actions == {MOVED: 1} and summary.counts == {"faces": 1} and summary.total == 3
    assert [type(e).__name__ for e in events[1:]] == ["ImageLeftInPlace", "ImageLeftInPlace", "ImageSorted"]
    assert (events[3].done, events[3].total) == (3, 3)  # the images left count as handled
    assert pile[1].is_symlink()


def test_a_target_that_cannot_be_made_is_one_sentence(tmp_path: Path):
    (tmp_path / "file").write_bytes(b"x")
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    plan = sort_plan.plan_sort([Answer(str(pile[0]))], tmp_path / "file" / "out", move=False)
    with pytest.raises(SortError) as err:
        collect(execute_sort(plan))
    assert str(err.value) == f"Cannot create {tmp_path / 'file' / 'out'}: Not a directory."


def test_a_class_folder_that_cannot_be_made_stops_the_sort(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "faces").write_bytes(b"a file where the folder goes")
    with pytest.raises(SortError) as err:
        sort_them(pile, out, move=True)
    assert str(err.value) == (
        f"File exists ({out / 'faces'}); 0 images of 2 sorted, the others left where they were: fix this "
        "and run the same sort again to finish, or undo it."
    )
    assert all(p.exists() for p in pile)


def test_a_copy_that_changed_mid_way_is_left_and_logged_not_done(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})

    def changed(source, target, **kw):
        raise new_files.ContentMismatchError(
            f"{source} changed while it was being copied; nothing was written to disk X."
        )

    monkeypatch.setattr(sorting, "copy_file_new", changed)
    _, summary = sort_them(pile, tmp_path / "out", move=False)
    assert [(e.source, e.reason) for e in summary.left] == [
        (str(pile[0]), f"{pile[0]} changed while it was being copied; nothing was written to disk X")
    ]
    assert actions_in_log(tmp_path / "out")[-1] == ("a.jpg", "a.jpg", NOT_DONE)
    assert summary.counts == {}


def test_a_name_taken_meanwhile_goes_to_the_next_free_name(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"mine"})
    out = tmp_path / "out"
    real = sorting.copy_file_new

    def raced(source, target, **kw):
        if Path(target).name == "a.jpg":
            Path(target).write_bytes(b"another program's")
            raise FileExistsError(errno.EEXIST, "File exists", str(target))
        return real(source, target, **kw)

    monkeypatch.setattr(sorting, "copy_file_new", raced)
    events, summary = sort_them(pile, out, move=False)
    assert events[1].destination == str(out / "faces" / "a (2).jpg") and summary.actions == {COPIED: 1}
    assert (out / "faces" / "a.jpg").read_bytes() == b"another program's"
    assert [a for _, _, a in actions_in_log(out)] == [COPYING, NOT_DONE, COPYING, COPIED]


@pytest.mark.parametrize(
    ("code", "where", "stops"),
    [
        (errno.EACCES, "target", True),
        (errno.EPERM, "target", True),
        (errno.EACCES, "source", False),
        (errno.EIO, "source", True),
        (errno.EROFS, "source", True),
        (errno.EDQUOT, "target", True),
        (errno.ENOENT, "target", False),
        (errno.EACCES, None, False),
    ],
)
def test_what_stops_a_sort_and_what_concerns_one_image(tmp_path: Path, monkeypatch, code, where, stops):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b"})
    out = tmp_path / "out"

    def failing(source, target, **kw):
        name = {"target": str(target), "source": str(source), None: None}[where]
        raise OSError(code, os.strerror(code), name)

    monkeypatch.setattr(sorting, "copy_file_new", failing)
    if stops:
        with pytest.raises(SortError) as err:
            sort_them(pile, out, move=False)
        shown_at = out / "faces" / "a.jpg" if where == "target" else pile[0]
        assert str(err.value).startswith(f"{os.strerror(code)} ({shown_at}); 0 images of 2 sorted")
    else:
        _, summary = sort_them(pile, out, move=False)
        assert [e.reason for e in summary.left] == [os.strerror(code)] * 2
    assert actions_in_log(out)[-1][2] == NOT_DONE
    assert all(p.exists() for p in pile)


def test_a_stop_without_a_file_name_names_the_destination(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})

    def full(source, target, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sorting, "copy_file_new", full)
    with pytest.raises(SortError) as err:
        sort_them(pile, tmp_path / "out", move=False)
    assert str(err.value).startswith(
        f"No space left on device ({tmp_path / 'out' / 'faces' / 'a.jpg'}); 0 images of 1"
    )


def test_is_under_compares_absolute_paths(tmp_path: Path):
    assert sorting._is_under(str(tmp_path / "out" / "x"), tmp_path / "out")
    assert sorting._is_under(os.fsencode(tmp_path / "out" / "x"), tmp_path / "out")
    assert not sorting._is_under(str(tmp_path / "outside"), tmp_path / "out")
    assert not sorting._is_under(None, tmp_path / "out")


# -- undo: newest first, only what can be verified, and every refusal names the file -------------


def test_undo_goes_newest_first_counts_and_removes_only_the_folders_it_emptied(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b", "c.jpg": b"c"})
    out = tmp_path / "out"
    make_images(out / "comics", {"kept.jpg": b"someone else's"})
    (out / "empty-before").mkdir()
    sort_them(pile, out, move=True, labels=["faces", "comics", "faces"], flags=["", "", "not a face"])
    events, undone = collect(undo_sort(out))
    started = events[0]
    assert isinstance(started, UndoStarted)
    assert (started.target, started.total, started.recovered) == (str(out), 3, 0)
    restored = events[1:]
    assert all(isinstance(e, ImageRestored) for e in restored)
    assert [(e.done, e.total, Path(e.source).name, e.action) for e in restored] == [
        (1, 3, "c.jpg", MOVED_BACK),
        (2, 3, "b.jpg", MOVED_BACK),
        (3, 3, "a.jpg", MOVED_BACK),
    ]
    assert restored[0].destination == str(out / "unsure" / "not-a-face" / "c.jpg")
    assert (undone.target, undone.total, undone.actions, undone.refused) == (str(out), 3, {MOVED_BACK: 3}, ())
    assert undone.log == str(out / LOG_NAME)
    assert [p.read_bytes() for p in pile] == [b"a", b"b", b"c"]
    assert sorted(p.name for p in out.iterdir()) == ["comics", "empty-before", LOG_NAME]
    assert [p.name for p in (out / "comics").iterdir()] == ["kept.jpg"]
    # Done once: a second undo has nothing left to do.
    events, again = collect(undo_sort(out))
    assert again.total == 0 and again.actions == {} and len(events) == 1


def test_undo_of_chosen_runs_only(tmp_path: Path):
    out = tmp_path / "out"
    first = make_images(tmp_path / "in", {"a.jpg": b"a"})
    _, one = sort_them(first, out, move=True)
    second = make_images(tmp_path / "in", {"b.jpg": b"b"})
    _, two = sort_them(second, out, move=True)
    assert one.run != two.run
    _, undone = collect(undo_sort(out, runs={one.run}))
    assert undone.actions == {MOVED_BACK: 1} and first[0].exists() and not second[0].exists()
    _, undone = collect(undo_sort(out, runs=[]))
    assert undone.total == 0
    _, undone = collect(undo_sort(out))
    assert undone.actions == {MOVED_BACK: 1} and second[0].exists()


def test_undo_of_a_target_that_is_not_a_folder_names_it(tmp_path: Path):
    with pytest.raises(SortError) as err:
        collect(undo_sort(tmp_path / "missing"))
    assert str(err.value) == (
        f"{tmp_path / 'missing'} is not a folder; --undo-sort needs the folder a sort wrote to."
    )


def test_every_refusal_of_an_undo_names_the_files(tmp_path: Path):
    pile = make_images(
        tmp_path / "in", {"gone.jpg": b"1", "edited.jpg": b"2", "taken.jpg": b"3", "copy-gone.jpg": b"4"}
    )
    out = tmp_path / "out"
    sort_them(pile[:3], out, move=True)
    sort_them(pile[3:], out, move=False)
    faces = out / "faces"
    (faces / "gone.jpg").unlink()
    (faces / "edited.jpg").write_bytes(b"edited")
    pile[2].write_bytes(b"a new file at the old place")
    pile[3].unlink()
    events, undone = collect(undo_sort(out))
    reasons = {Path(e.source).name: e.reason for e in events if isinstance(e, ImageNotRestored)}
    assert reasons == {
        "gone.jpg": f"{faces / 'gone.jpg'} is gone, so it cannot go back",
        "edited.jpg": f"{faces / 'edited.jpg'} changed since it was sorted (its SHA-256 differs); it stays",
        "taken.jpg": f"something is at {pile[2]} again, so {faces / 'taken.jpg'} stays",
        "copy-gone.jpg": f"the original {pile[3]} is gone or changed, so the copy {faces / 'copy-gone.jpg'} stays (it may be the only one)",
    }
    assert undone.refused == tuple(e for e in events if isinstance(e, ImageNotRestored))
    assert all(e.destination.startswith(str(faces)) for e in undone.refused)
    assert undone.actions == {} and undone.total == 4
    assert (faces / "edited.jpg").read_bytes() == b"edited" and (faces / "taken.jpg").read_bytes() == b"3"
    assert pile[2].read_bytes() == b"a new file at the old place"
    assert (faces / "copy-gone.jpg").read_bytes() == b"4"
    assert faces.is_dir()  # it still holds files


def test_a_copy_that_cannot_be_deleted_stays_and_is_logged_not_done(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    out = tmp_path / "out"
    sort_them(pile, out, move=False)
    copy = out / "faces" / "a.jpg"
    real_unlink = Path.unlink

    def refused(self, missing_ok=False):
        if self == copy:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    _, undone = collect(undo_sort(out))
    assert [e.reason for e in undone.refused] == ["cannot delete the copy (Permission denied)"]
    assert copy.exists() and actions_in_log(out)[-2:] == [
        ("a.jpg", "a.jpg", REMOVING_COPY),
        ("a.jpg", "a.jpg", NOT_DONE),
    ]
    monkeypatch.setattr(Path, "unlink", real_unlink)
    _, undone = collect(undo_sort(out))
    assert undone.actions == {REMOVED_COPY: 1} and not copy.exists() and pile[0].exists()
    assert actions_in_log(out)[-2:] == [("a.jpg", "a.jpg", REMOVING_COPY), ("a.jpg", "a.jpg", REMOVED_COPY)]


def test_an_original_folder_that_cannot_be_made_again_is_named(tmp_path: Path):
    pile = make_images(tmp_path / "in" / "sub", {"a.jpg": b"a"})
    out = tmp_path / "out"
    sort_them(pile, out, move=True)
    (tmp_path / "in" / "sub").rmdir()
    (tmp_path / "in" / "sub").write_bytes(b"a file where the folder was")
    _, undone = collect(undo_sort(out))
    [refused] = undone.refused
    assert refused.reason == f"cannot recreate the folder {tmp_path / 'in' / 'sub'} (File exists)"
    (tmp_path / "in" / "sub").unlink()
    (tmp_path / "in").rmdir()
    (tmp_path / "in").write_bytes(b"a file where the parent was")
    _, undone = collect(undo_sort(out))
    [refused] = undone.refused
    assert refused.reason == f"cannot recreate the folder {tmp_path / 'in' / 'sub'} (Not a directory)"
    assert (out / "faces" / "a.jpg").read_bytes() == b"a"
    (tmp_path / "in").unlink()
    _, undone = collect(undo_sort(out))  # the folders are made again
    assert undone.actions == {MOVED_BACK: 1} and pile[0].read_bytes() == b"a"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_an_undo_that_cannot_write_stops_or_skips_the_image(tmp_path: Path, monkeypatch, code):
    from trainer.prediction import sort_undo

    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b"})
    out = tmp_path / "out"
    sort_them(pile, out, move=True)

    def failing(source, target, **kw):
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(sort_undo, "move_file", failing)
    if code == errno.ENOSPC:
        with pytest.raises(SortError) as err:
            collect(undo_sort(out))
        assert str(err.value) == (
            f"No space left on device ({pile[1]}); the images not yet restored are still sorted: fix this and undo again."
        )
    else:
        _, undone = collect(undo_sort(out))
        assert [e.reason for e in undone.refused] == ["Permission denied"] * 2
    assert actions_in_log(out)[-1][2] == NOT_DONE
    assert sorted(p.name for p in (out / "faces").iterdir()) == ["a.jpg", "b.jpg"]
    monkeypatch.undo()
    _, undone = collect(undo_sort(out))
    assert undone.actions == {MOVED_BACK: 2}


def test_a_restore_whose_copy_changed_mid_way_is_refused_with_the_reason(tmp_path: Path, monkeypatch):
    from trainer.prediction import sort_undo

    pile = make_images(tmp_path / "in", {"a.jpg": b"same"})
    out = tmp_path / "out"
    make_images(out / "faces", {"old.jpg": b"same"})
    sort_them(pile, out, move=True)  # a duplicate: removed, restored by a copy on undo

    def changed(source, target, **kw):
        raise new_files.ContentMismatchError("it changed while it was being copied.")

    monkeypatch.setattr(sort_undo, "copy_file_new", changed)
    _, undone = collect(undo_sort(out))
    assert [e.reason for e in undone.refused] == ["it changed while it was being copied"]
    assert actions_in_log(out)[-2:] == [("a.jpg", "old.jpg", RESTORING), ("a.jpg", "old.jpg", NOT_DONE)]
    assert not pile[0].exists() and (out / "faces" / "old.jpg").read_bytes() == b"same"


def test_undo_settles_a_killed_step_first_and_says_so(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    out = tmp_path / "out"
    sort_them(pile, out, move=True)
    with SortLog.open(out, create=False) as log:
        row = next(r for r in log.rows if r.action == MOVED)
        log.append(row.but(MOVING_BACK))  # killed before the move back
    events, undone = collect(undo_sort(out))
    assert events[0].recovered == 1 and undone.actions == {MOVED_BACK: 1}
    assert pile[0].read_bytes() == b"a"


def test_a_link_given_a_new_name_stays_a_link(tmp_path: Path):
    picture = tmp_path / "picture.jpg"
    picture.write_bytes(b"x")
    link = tmp_path / "link.jpg"
    link.symlink_to(picture)
    (tmp_path / "out").mkdir()
    placed = new_files.link_new(link, tmp_path / "out", "link.jpg")
    assert placed.is_symlink() and os.readlink(placed) == str(picture)
    assert picture.stat().st_nlink == 1  # the picture itself got no second name


def test_without_hard_links_a_claim_that_fails_leaves_no_placeholder(tmp_path: Path, monkeypatch):
    def no_links(*_args, **_kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(new_files.os, "link", no_links)
    (tmp_path / "out").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        new_files.link_new(tmp_path / "gone.jpg", tmp_path / "out", "a.jpg")
    assert err.value.filename == str(tmp_path / "out" / "a.jpg")
    assert list((tmp_path / "out").iterdir()) == []
    source = tmp_path / "a.jpg"
    source.write_bytes(b"x")
    (tmp_path / "out" / "a.jpg").write_bytes(b"taken")
    assert new_files.link_new(source, tmp_path / "out", "a.jpg") == tmp_path / "out" / "a (2).jpg"
    assert (tmp_path / "out" / "a.jpg").read_bytes() == b"taken"


def test_the_umask_is_read_without_changing_it():
    mask = os.umask(0o027)
    try:
        assert outputs._read_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(mask)


def test_an_error_without_a_number_keeps_its_text_and_names_the_file(tmp_path: Path):
    named = outputs.named_error(OSError("the disk went away"), tmp_path / "x.csv")
    assert str(named) == f"the disk went away ({tmp_path / 'x.csv'})"
    named = outputs.named_error(OSError(errno.EIO, ""), tmp_path / "x.csv")
    assert named.errno == errno.EIO and named.filename == str(tmp_path / "x.csv")
    assert named.strerror == str(OSError(errno.EIO, ""))
    assert outputs._reason(OSError(errno.EIO, "Lost disk X.")) == "lost disk x"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_a_replaced_file_keeps_its_owner(tmp_path: Path, monkeypatch):
    target = tmp_path / "shared.csv"
    target.write_text("old")
    os.chown(target, 1234, 5678)
    outputs.write_text(target, "new")
    st = target.stat()
    assert (st.st_uid, st.st_gid, target.read_text()) == (1234, 5678, "new")

    def not_allowed(*_args):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(outputs.os, "chown", not_allowed)  # as anyone but root
    outputs.write_text(target, "newer")
    assert target.read_text() == "newer"


def test_the_plan_counts_a_folder_the_model_did_not_name(tmp_path: Path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    answers = [Answer(str(image), "comics"), Answer(str(image), "faces", flag="a new reason")]
    plan = sort_plan.plan_sort(answers, tmp_path / "out", move=False, class_names=("faces",))
    counts = plan.counts()
    assert (counts["faces"], counts["comics"], counts["unsure/a-new-reason"]) == (0, 1, 1)


def test_the_log_keeps_names_that_are_not_utf8_or_hold_a_return_exactly(tmp_path: Path):
    odd = os.fsdecode(b"caf\xe9\r\n.jpg")
    row = LogRow(str(tmp_path / odd), str(tmp_path / "out" / odd), "faces", "0.9", "", "ff", COPIED, "r")
    with SortLog.open(tmp_path, create=True) as log:
        log.append(row)
    assert sort_log.read_log(tmp_path) == [row]
    with SortLog.open(tmp_path, create=True) as log:
        assert log.rows == [row]


def test_a_leftover_temp_that_cannot_be_removed_does_not_stop_recovery(tmp_path: Path):
    src, dst = tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg"
    src.parent.mkdir()
    dst.parent.mkdir()
    src.write_bytes(b"photo")
    stuck = dst.parent / f"{temp_name_prefix(dst)}x.part"
    stuck.mkdir()  # unlink fails on a folder
    step = LogRow(str(src), str(dst), sha256=sha(b"photo"), action=COPYING, run="r")
    assert recovered(tmp_path / "out", [step]) == [step.but(NOT_DONE)]
    assert src.read_bytes() == b"photo"


def test_a_source_that_fails_mid_read_is_what_the_error_names(tmp_path: Path, monkeypatch):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")
    real_open = open

    class FailingReader:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, _size):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(new_files, "open", lambda p, mode: FailingReader(real_open(p, mode)), raising=False)
    with pytest.raises(OSError) as err:
        copy_file_new(source, tmp_path / "b.jpg")
    assert (err.value.errno, err.value.filename) == (errno.EIO, str(source))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]


def test_times_that_cannot_be_copied_do_not_stop_a_copy(tmp_path: Path, monkeypatch):
    import shutil

    def refused(*_args, **_kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(shutil, "copystat", refused)
    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")
    assert copy_file_new(source, tmp_path / "b.jpg") == sha(b"picture")
    assert (tmp_path / "b.jpg").read_bytes() == b"picture"


def test_a_bad_copy_that_cannot_be_removed_is_still_reported(tmp_path: Path, monkeypatch):
    from trainer.common import checksum

    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")
    copy = tmp_path / "b.jpg"
    real_unlink = Path.unlink

    def stuck(self, missing_ok=False):
        if self == copy:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(checksum, "file_sha256", lambda _p: "0" * 64)
    monkeypatch.setattr(Path, "unlink", stuck)
    with pytest.raises(ContentMismatchError, match="differs"):
        copy_file_new(source, copy)
    assert source.read_bytes() == b"picture"


def test_undoing_copies_reports_each_and_logs_each_removal(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b"})
    out = tmp_path / "out"
    sort_them(pile, out, move=False)
    events, _ = collect(undo_sort(out))
    assert [(e.done, e.total, e.source, e.destination, e.action) for e in events[1:]] == [
        (1, 2, str(pile[1]), str(out / "faces" / "b.jpg"), REMOVED_COPY),
        (2, 2, str(pile[0]), str(out / "faces" / "a.jpg"), REMOVED_COPY),
    ]
    assert actions_in_log(out)[-4:] == [
        ("b.jpg", "b.jpg", REMOVING_COPY),
        ("b.jpg", "b.jpg", REMOVED_COPY),
        ("a.jpg", "a.jpg", REMOVING_COPY),
        ("a.jpg", "a.jpg", REMOVED_COPY),
    ]
    assert sorted(p.name for p in out.iterdir()) == [LOG_NAME]


def test_an_undo_leaves_a_log_with_nothing_to_settle(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"same"})
    out = tmp_path / "out"
    make_images(out / "comics", {"old.jpg": b"same"})
    sort_them(pile, out, move=True, labels=["faces", "comics"])
    collect(undo_sort(out))
    assert actions_in_log(out)[-4:] == [
        ("b.jpg", "old.jpg", RESTORING),
        ("b.jpg", "old.jpg", RESTORED),
        ("a.jpg", "a.jpg", MOVING_BACK),
        ("a.jpg", "a.jpg", MOVED_BACK),
    ]
    events, again = collect(undo_sort(out))
    assert events[0].recovered == 0 and again.total == 0
    events, _ = sort_them(pile, out, move=True)
    assert events[0].recovered == 0


def test_undo_never_removes_a_folder_outside_the_target(tmp_path: Path):
    """A log edited by hand may name a destination outside the target: its file may go back, but
    the folder it leaves empty is not the undo's to remove."""
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere" / "deeper"
    picture = make_images(elsewhere, {"a.jpg": b"a"})[0]
    out.mkdir()
    with SortLog.open(out, create=True) as log:
        log.append(LogRow("", str(out), action=STARTED_MOVE, run="r"))
        log.append(
            LogRow(str(tmp_path / "in" / "a.jpg"), str(picture), sha256=sha(b"a"), action=MOVED, run="r")
        )
        log.append(LogRow("", str(out), action=FINISHED, run="r"))
    _, undone = collect(undo_sort(out))
    assert undone.actions == {MOVED_BACK: 1} and (tmp_path / "in" / "a.jpg").read_bytes() == b"a"
    assert elsewhere.is_dir() and out.is_dir()


def test_a_restore_checks_the_content_again_while_copying(tmp_path: Path, monkeypatch):
    from trainer.prediction import sort_undo

    pile = make_images(tmp_path / "in", {"a.jpg": b"same"})
    out = tmp_path / "out"
    make_images(out / "faces", {"old.jpg": b"same"})
    sort_them(pile, out, move=True)
    kept = out / "faces" / "old.jpg"
    kept.write_bytes(b"edited after the check")  # changed between the check and the copy
    monkeypatch.setattr(sort_undo, "holds", lambda path, sha256, **kw: True)
    _, undone = collect(undo_sort(out))
    assert [e.reason for e in undone.refused] == [
        f"{kept} changed while it was being copied; nothing was written to {pile[0]}"
    ]
    assert not pile[0].exists() and kept.read_bytes() == b"edited after the check"


def test_a_move_back_across_file_systems_checks_the_content_again(tmp_path: Path, monkeypatch):
    from tests.trainer.test_outputs_move import other_file_system
    from trainer.prediction import sort_undo

    elsewhere = other_file_system(tmp_path)
    if elsewhere is None:
        pytest.skip("no second file system here (/dev/shm)")
    try:
        pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
        sort_them(pile, elsewhere, move=True)
        moved = elsewhere / "faces" / "a.jpg"
        moved.write_bytes(b"edited after the check")
        monkeypatch.setattr(sort_undo, "holds", lambda path, sha256, **kw: True)
        _, undone = collect(undo_sort(elsewhere))
        assert [e.reason for e in undone.refused] == [
            f"{moved} changed while it was being copied; nothing was written to {pile[0]}"
        ]
        assert not pile[0].exists() and moved.read_bytes() == b"edited after the check"
    finally:
        import shutil

        shutil.rmtree(elsewhere, ignore_errors=True)


def test_a_full_disk_that_refuses_the_log_row_too_still_stops_with_one_sentence(tmp_path: Path, monkeypatch):
    from trainer.prediction import sort_undo

    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    out = tmp_path / "out"
    real_append = SortLog.append

    def full_log(self, row):
        if row.action == NOT_DONE:
            raise SortError(f"Cannot write {self.path}: No space left on device.")
        return real_append(self, row)

    def full(source, target, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SortLog, "append", full_log)
    monkeypatch.setattr(sorting, "move_file", full)
    with pytest.raises(SortError) as err:
        sort_them(pile, out, move=True)
    assert str(err.value).startswith(
        f"No space left on device ({out / 'faces' / 'a.jpg'}); 0 images of 1 sorted"
    )
    monkeypatch.setattr(sorting, "move_file", new_files.move_file)
    monkeypatch.setattr(SortLog, "append", real_append)
    sort_them(pile, out, move=True)
    monkeypatch.setattr(SortLog, "append", full_log)
    monkeypatch.setattr(sort_undo, "move_file", full)
    with pytest.raises(SortError) as err:
        collect(undo_sort(out))
    assert str(err.value) == (
        f"No space left on device ({pile[0]}); the images not yet restored are still sorted: fix this and undo again."
    )


def test_an_undo_error_without_a_reason_or_a_file_still_says_what_and_where(tmp_path: Path, monkeypatch):
    from trainer.prediction import sort_undo

    pile = make_images(tmp_path / "in", {"a.jpg": b"a", "b.jpg": b"b"})
    out = tmp_path / "out"
    sort_them(pile, out, move=True)

    def odd(source, target, **kw):
        if Path(target).name == "b.jpg":
            raise OSError(errno.EIO, "Input/output error")  # no file name
        raise OSError("the disk went to sleep X.")  # no errno, no strerror

    monkeypatch.setattr(sort_undo, "move_file", odd)
    with pytest.raises(SortError) as err:
        collect(undo_sort(out))
    assert str(err.value).startswith(f"Input/output error ({pile[1]}); the images not yet restored")
    monkeypatch.setattr(
        sort_undo, "move_file", lambda s, t, **kw: (_ for _ in ()).throw(OSError("the disk went to sleep X."))
    )
    _, undone = collect(undo_sort(out))
    assert [e.reason for e in undone.refused] == ["the disk went to sleep X"] * 2


def test_a_move_is_logged_as_a_move(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    out = tmp_path / "out"
    _, summary = sort_them(pile, out, move=True)
    rows = sort_log.read_log(out)
    assert [r.action for r in rows] == [STARTED_MOVE, MOVING, MOVED, FINISHED]
    assert rows[0].destination == rows[-1].destination == str(out)
    assert summary.move is True


@pytest.fixture
def second_file_system(tmp_path: Path):
    from tests.trainer.test_outputs_move import other_file_system

    elsewhere = other_file_system(tmp_path)
    if elsewhere is None:
        pytest.skip("no second file system here (/dev/shm)")
    yield elsewhere
    import shutil

    shutil.rmtree(elsewhere, ignore_errors=True)


def test_a_move_across_file_systems_checks_the_content_it_hashed(
    tmp_path: Path, second_file_system: Path, monkeypatch
):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    monkeypatch.setattr(sorting, "file_sha256", lambda _p: sha(b"what it held when it was hashed"))
    _, summary = sort_them(pile, second_file_system, move=True)
    [left] = summary.left
    assert left.reason.startswith(f"{pile[0]} changed while it was being copied; nothing was written to ")
    assert pile[0].read_bytes() == b"a" and not (second_file_system / "faces" / "a.jpg").exists()


def test_a_move_across_file_systems_whose_copy_cannot_be_taken_back_still_names_the_source(
    tmp_path: Path, second_file_system: Path, monkeypatch
):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")
    target = second_file_system / "a.jpg"
    real_unlink = Path.unlink

    def stuck(self, missing_ok=False):
        if self in (source, target):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", stuck)
    with pytest.raises(PermissionError) as err:
        move_file(source, target)
    assert err.value.filename == str(source)
    assert source.read_bytes() == b"picture" and target.read_bytes() == b"picture"  # whole at both


def test_a_run_id_is_utc_whatever_the_time_zone(monkeypatch):
    import time
    from datetime import UTC, datetime

    monkeypatch.setenv("TZ", "XYZ-14")  # POSIX for UTC+14 (no tz data needed): never the same hour as UTC
    time.tzset()
    try:
        before = datetime.now(UTC).strftime("%Y%m%dT%H")
        run = sort_log.new_run_id()
        after = datetime.now(UTC).strftime("%Y%m%dT%H")
        assert run[:11] in (before, after)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_file_in_the_destination_that_changed_since_it_was_hashed_is_no_duplicate(tmp_path: Path):
    """Moving: an image whose content was in the folder is removed as a duplicate, so that content
    must still be there, not merely have been there when an earlier image of that size came."""
    pile = make_images(tmp_path / "in", {"a.jpg": b"aaaa", "b.jpg": b"bbbb"})
    out = tmp_path / "out"
    existing = make_images(out / "faces", {"x.jpg": b"bbbb"})[0]
    plan = sort_plan.plan_sort([Answer(str(p)) for p in pile], out, move=True, class_names=("faces",))
    generator = execute_sort(plan)
    next(generator)
    assert next(generator).action == MOVED  # a.jpg: x.jpg has its size, so it was hashed now
    existing.write_bytes(b"cccc")  # then changed
    events, _summary = collect(generator)
    assert (events[0].action, events[0].destination) == (MOVED, str(out / "faces" / "b.jpg"))
    assert (out / "faces" / "b.jpg").read_bytes() == b"bbbb"


def test_a_link_in_the_destination_is_no_duplicate_even_of_the_file_it_names(tmp_path: Path):
    source = tmp_path / "in" / "a.jpg"
    # As long as the link's own text, so that the link and the picture have one size.
    pile = make_images(tmp_path / "in", {"a.jpg": b"x" * len(os.fsencode(source))})
    out = tmp_path / "out"
    (out / "faces").mkdir(parents=True)
    (out / "faces" / "link.jpg").symlink_to(pile[0])
    assert (out / "faces" / "link.jpg").lstat().st_size == pile[0].stat().st_size
    _events, summary = sort_them(pile, out, move=True)
    assert summary.actions == {MOVED: 1}
    assert (out / "faces" / "a.jpg").read_bytes() == b"x" * len(os.fsencode(source))


def test_hidden_files_in_the_destination_do_not_hide_a_duplicate(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"same"})
    out = tmp_path / "out"
    make_images(out / "faces", {f".hidden-{n}.jpg": b"same" for n in range(200)} | {"old.jpg": b"same"})
    _, summary = sort_them(pile, out, move=False)
    assert summary.actions == {ALREADY_THERE: 1}


def test_a_file_in_the_destination_that_cannot_be_read_is_no_duplicate(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"same"})
    out = tmp_path / "out"
    unreadable = make_images(out / "faces", {"old.jpg": b"same"})[0]
    real = sorting.file_sha256

    def refused(path):
        if Path(path) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(sorting, "file_sha256", refused)
    _, summary = sort_them(pile, out, move=False)
    assert summary.actions == {COPIED: 1} and (out / "faces" / "a.jpg").read_bytes() == b"same"


def test_a_run_after_a_kill_says_how_many_steps_it_settled_dry_or_not(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    out = tmp_path / "out"
    out.mkdir()
    with SortLog.open(out, create=True) as log:
        run = log.start_run(False, out)
        log.append(
            LogRow(str(pile[0]), str(out / "faces" / "a.jpg"), sha256=sha(b"a"), action=COPYING, run=run)
        )
    events, _ = sort_them(pile, out, move=False, dry_run=True)
    assert (events[0].recovered, events[0].resumed) == (1, True)
    events, summary = sort_them(pile, out, move=False)
    assert (events[0].recovered, events[0].resumed, summary.run) == (1, True, run)
    finished = sort_log.read_log(out)[-1]
    assert (finished.action, finished.destination, finished.run) == (FINISHED, str(out), run)


def test_a_copy_checks_the_content_it_hashed(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    monkeypatch.setattr(sorting, "file_sha256", lambda _p: sha(b"what it held when it was hashed"))
    _, summary = sort_them(pile, tmp_path / "out", move=False)
    [left] = summary.left
    assert left.source == str(pile[0])
    assert left.reason == (
        f"{pile[0]} changed while it was being copied; nothing was written to {tmp_path / 'out' / 'faces' / 'a.jpg'}"
    )
    assert not (tmp_path / "out" / "faces" / "a.jpg").exists()


def test_a_file_that_vanishes_while_the_destination_is_listed_is_skipped(tmp_path: Path, monkeypatch):
    pile = make_images(tmp_path / "in", {"a.jpg": b"same"})
    out = tmp_path / "out"
    make_images(out / "faces", {"old.jpg": b"same"})
    real_scandir = os.scandir

    class Vanished:
        name = path = str(out / "faces" / "vanished.jpg")

        def is_file(self, **_kw):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", self.path)

    def scandir(folder):
        return [Vanished(), *real_scandir(folder)]

    monkeypatch.setattr(sorting.os, "scandir", scandir)
    _, summary = sort_them(pile, out, move=False)
    assert summary.actions == {ALREADY_THERE: 1}


def test_a_log_that_cannot_be_opened_names_it_and_why(tmp_path: Path, monkeypatch):
    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(sort_log, "open_append", denied)
    with pytest.raises(SortError) as err:
        SortLog.open(tmp_path, create=True)
    assert str(err.value) == f"Cannot write {tmp_path / LOG_NAME}: Permission denied."


def test_a_new_log_gets_the_usual_permissions(tmp_path: Path):
    with SortLog.open(tmp_path, create=True):
        pass
    assert stat.S_IMODE((tmp_path / LOG_NAME).stat().st_mode) == 0o666 & ~outputs._read_umask()


def test_a_file_without_write_bits_is_read_only_even_if_executable(tmp_path: Path):
    script = tmp_path / "keep.sh"
    script.write_text("precious")
    script.chmod(0o555)
    with pytest.raises(outputs.ReadOnlyOutputError):
        outputs.write_text(script, "x")
    assert script.read_text() == "precious"


def test_a_class_may_hold_any_letter(tmp_path: Path):
    sort_plan.check_class_names(["X-rays", "XX", "faces"])


def test_a_target_whose_parents_are_missing_is_made(tmp_path: Path):
    pile = make_images(tmp_path / "in", {"a.jpg": b"a"})
    _, summary = sort_them(pile, tmp_path / "new" / "deeper" / "out", move=False)
    assert summary.actions == {COPIED: 1}
    assert (tmp_path / "new" / "deeper" / "out" / "faces" / "a.jpg").read_bytes() == b"a"


def test_an_image_with_no_free_name_left_stays_where_it_is(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(new_files, "MAX_NUMBERED", 2)
    pile = make_images(tmp_path / "in", {"a.jpg": b"mine"})
    out = tmp_path / "out"
    make_images(out / "faces", {"a.jpg": b"one", "a (2).jpg": b"two"})
    _, summary = sort_them(pile, out, move=True)
    assert [(e.source, e.reason) for e in summary.left] == [
        (str(pile[0]), f"no free name for it in {out / 'faces'}")
    ]
    assert pile[0].read_bytes() == b"mine"
