"""trainer.common.outputs: what is at a path decides how it is written, and nothing an output
names as an input or another output is ever destroyed."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from trainer.common import outputs
from trainer.common.new_files import link_new, numbered, rename_new, write_new
from trainer.common.outputs import (
    DESCRIPTOR,
    FILE,
    NEW,
    STREAM,
    OutputError,
    ReadOnlyOutputError,
    check_outputs,
    inspect_output,
    write_bytes,
    write_text,
)


def read_in_thread(path_or_fd) -> tuple[threading.Thread, list[bytes]]:
    """A reader for a FIFO or a pipe, as ``cat`` would be."""
    got: list[bytes] = []

    def read() -> None:
        with open(path_or_fd, "rb") as handle:
            got.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


def test_a_regular_file_is_replaced_atomically_keeping_its_mode(tmp_path: Path):
    target = tmp_path / "out.csv"
    assert inspect_output(target).kind == NEW
    write_text(target, "first\n")
    target.chmod(0o640)
    assert inspect_output(target).kind == FILE
    write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), outputs.open_output(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("killed mid-way")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_symlink_keeps_being_a_link_and_its_target_gets_the_data(tmp_path: Path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.csv"
    target.write_text("stale")
    link = tmp_path / "link.csv"
    link.symlink_to(Path("real") / "target.csv")
    assert inspect_output(link).write_path == target
    write_text(link, "fresh")
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "target.csv")
    assert target.read_text() == "fresh"
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "real" / "new.csv")
    write_text(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "real" / "new.csv").read_text() == "made"


def test_a_link_loop_is_refused(tmp_path: Path):
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(OutputError, match=r"loop\.csv: it is a link that points back to itself"):
        write_text(loop, "x")


def test_a_fifo_is_written_straight_through_and_stays_a_fifo(tmp_path: Path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert inspect_output(fifo).kind == STREAM  # inspecting never opens it, so never blocks
    thread, got = read_in_thread(fifo)
    write_text(fifo, "a,b\n1,2\n")
    thread.join(10)
    assert got == [b"a,b\n1,2\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.csv"]


def test_an_open_descriptor_is_written_through_a_duplicate(tmp_path: Path):
    """``--csv >(cat)`` passes /dev/fd/N: the data goes down that pipe, not to a temp file beside it."""
    read_end, write_end = os.pipe()
    try:
        path = f"/dev/fd/{write_end}"
        assert inspect_output(path).kind == DESCRIPTOR
        thread, got = read_in_thread(os.dup(read_end))
        write_text(path, "through the pipe\n")
        os.close(write_end)  # ours; the duplicate was closed by the write
        write_end = -1
        thread.join(10)
        assert got == [b"through the pipe\n"]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_a_descriptor_that_is_not_open_is_one_sentence():
    closed = os.open(os.devnull, os.O_RDONLY)
    os.close(closed)
    with pytest.raises(OutputError, match=f"/dev/fd/{closed}: descriptor {closed} is not open"):
        inspect_output(f"/dev/fd/{closed}")


def test_dev_null_is_a_stream_and_stays_a_device():
    assert inspect_output(os.devnull).kind == STREAM
    write_bytes(os.devnull, b"discarded")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_names_the_file():
    assert inspect_output("/dev/full").kind == STREAM  # else, as root, the write would replace it
    with pytest.raises(OSError) as info:
        write_text("/dev/full", "x" * 10_000)
    assert info.value.filename == "/dev/full" and "No space left" in str(info.value)


def test_a_failed_atomic_write_names_the_output_not_the_temp_file(tmp_path: Path, monkeypatch):
    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "fsync", full)
    with pytest.raises(OSError) as info:
        write_text(tmp_path / "out.json", "{}")
    assert info.value.filename == str(tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []


def test_folders_sockets_and_missing_folders_are_refused(tmp_path: Path):
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        write_text(tmp_path, "x")
    with pytest.raises(OutputError, match=r"the folder .*nowhere does not exist"):
        write_text(tmp_path / "nowhere" / "out.csv", "x")
    sock_path = tmp_path / "s.csv"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(OutputError, match="it is a socket, not a file"):
            write_text(sock_path, "x")


def test_a_read_only_file_is_refused_unless_allowed(tmp_path: Path):
    target = tmp_path / "keep.csv"
    target.write_text("precious")
    target.chmod(0o444)
    with pytest.raises(ReadOnlyOutputError, match=r"keep\.csv: the file is read-only") as info:
        write_text(target, "x")  # refused even as root: the mode says "keep"
    assert info.value.path == target and target.read_text() == "precious"
    write_text(target, "replaced", allow_read_only=True)
    assert target.read_text() == "replaced" and stat.S_IMODE(target.stat().st_mode) == 0o444


def test_an_output_that_is_an_input_is_refused_by_name_link_or_hard_link(tmp_path: Path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"photo")
    hard = tmp_path / "hard.jpg"
    os.link(image, hard)
    soft = tmp_path / "soft.jpg"
    soft.symlink_to(image)
    for output in (image, hard, soft):
        with pytest.raises(OutputError, match="is the same file as the input"):
            check_outputs({"--csv": output}, inputs=[image])
        with pytest.raises(OutputError, match="is the same file as the input"):
            write_text(output, "csv", inputs=[image])
    assert image.read_bytes() == b"photo"
    check_outputs({"--csv": tmp_path / "new.csv"}, inputs=[image])  # a new file is never an input


def test_two_outputs_naming_one_file_are_refused(tmp_path: Path):
    with pytest.raises(OutputError, match="--out and --json name the same file"):
        check_outputs({"--out": tmp_path / "x", "--json": tmp_path / "x"})
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "alias.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(OutputError, match="--out and --json name the same file"):
        check_outputs({"--out": tmp_path / "alias.json", "--json": tmp_path / "real.json"})
    # A terminal or /dev/null twice loses nothing.
    check_outputs({"--out": os.devnull, "--json": os.devnull})


def test_a_very_long_name_still_gets_a_temp_file(tmp_path: Path):
    target = tmp_path / ("n" * 250 + ".csv")
    write_text(target, "ok")
    assert target.read_text() == "ok"


def test_numbered_names():
    assert [numbered("photo.jpg", n) for n in (1, 2, 3)] == ["photo.jpg", "photo (2).jpg", "photo (3).jpg"]
    assert numbered("README", 2) == "README (2)" and numbered(".hidden", 2) == ".hidden (2)"
    assert numbered("a.tar.gz", 2) == "a.tar (2).gz"


def test_write_new_never_replaces_a_file(tmp_path: Path):
    (tmp_path / "run.safetensors").write_bytes(b"first run")
    made = write_new(tmp_path, "run.safetensors", b"second run")
    assert made == tmp_path / "run (2).safetensors" and made.read_bytes() == b"second run"
    assert (tmp_path / "run.safetensors").read_bytes() == b"first run"
    (tmp_path / "run (3).safetensors").mkdir()  # whatever takes a name, it is skipped
    assert write_new(tmp_path, "run.safetensors", b"third").name == "run (4).safetensors"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(OutputError, match="the folder does not exist"):
        write_new(tmp_path / "missing", "x", b"")
    assert write_new(tmp_path / "made", "x", b"1", make_folders=True).read_bytes() == b"1"


def test_link_new_moves_a_file_to_a_free_name(tmp_path: Path):
    """What sorting images into folders builds on: a free name, then the source removed."""
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "a.jpg").write_bytes(b"already there")
    source = tmp_path / "a.jpg"
    source.write_bytes(b"moved")
    placed = link_new(source, tmp_path / "faces", "a.jpg")
    source.unlink(missing_ok=True)
    assert placed.name == "a (2).jpg" and placed.read_bytes() == b"moved"
    assert (tmp_path / "faces" / "a.jpg").read_bytes() == b"already there"


def test_rename_new_refuses_a_taken_name(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    with pytest.raises(FileExistsError):
        rename_new(a, b)
    assert a.read_text() == "a" and b.read_text() == "b"
    assert rename_new(a, tmp_path / "c") == tmp_path / "c" and not a.exists()


def test_rename_new_without_hard_links(tmp_path: Path, monkeypatch):
    """On a file system without hard links (FAT, some network disks) it still never overwrites."""

    def no_links(*_args, **_kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(outputs.os, "link", no_links)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    with pytest.raises(FileExistsError):
        rename_new(a, b)
    rename_new(a, tmp_path / "c")
    assert (tmp_path / "c").read_text() == "a" and not a.exists() and b.read_text() == "b"


def test_owned_paths_replace_whatever_is_there_without_opening_it(tmp_path: Path):
    """A cache's own name: a FIFO there is replaced by a rename, never opened (which would hang)."""
    fifo = tmp_path / "cache.npz"
    os.mkfifo(fifo)
    write_bytes(fifo, b"cache", owned=True)
    assert fifo.is_file() and fifo.read_bytes() == b"cache"
