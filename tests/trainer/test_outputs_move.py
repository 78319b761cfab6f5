"""Moving and copying people's files (trainer.common.outputs): never over another file, never
half-written, and across file systems copy, fsync, rename, verify, and only then delete."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from trainer.common import new_files, outputs
from trainer.common.new_files import ContentMismatchError, copy_file_new, move_file, rename_no_replace
from trainer.common.outputs import OutputError, open_append, stale_temps


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def other_file_system(tmp_path: Path) -> Path | None:
    """A folder on another file system than ``tmp_path`` (/dev/shm is a tmpfs), if there is one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        import tempfile

        return Path(tempfile.mkdtemp(dir=shm, prefix="facecomic-test-"))
    return None


@pytest.fixture
def across(tmp_path: Path, monkeypatch):
    """A target folder on another file system: a real one when the machine has it, else renames
    fail with EXDEV as they would there."""
    real = other_file_system(tmp_path)
    if real is not None:
        yield real
        import shutil

        shutil.rmtree(real, ignore_errors=True)
        return
    target = tmp_path / "other-fs"
    target.mkdir()
    plain = new_files.rename_no_replace

    def exdev(source, dest):
        if Path(dest).parent == target and not Path(source).name.endswith(".part"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return plain(source, dest)

    monkeypatch.setattr(new_files, "rename_no_replace", exdev)
    yield target


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_rename_no_replace_refuses_a_taken_name_and_changes_nothing(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "b.jpg").write_bytes(b"b")
    with pytest.raises(FileExistsError):
        rename_no_replace(tmp_path / "a.jpg", tmp_path / "b.jpg")
    assert (tmp_path / "a.jpg").read_bytes() == b"a" and (tmp_path / "b.jpg").read_bytes() == b"b"
    rename_no_replace(tmp_path / "a.jpg", tmp_path / "c.jpg")
    assert listing(tmp_path) == ["b.jpg", "c.jpg"]


def test_rename_no_replace_without_the_kernel_flag(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(new_files, "_renameat2", False)  # as on a system without renameat2
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "b.jpg").write_bytes(b"b")
    with pytest.raises(FileExistsError):
        rename_no_replace(tmp_path / "a.jpg", tmp_path / "b.jpg")
    rename_no_replace(tmp_path / "a.jpg", tmp_path / "c.jpg")
    assert listing(tmp_path) == ["b.jpg", "c.jpg"]
    assert (tmp_path / "c.jpg").read_bytes() == b"a"


def test_a_move_within_one_file_system_is_a_rename(tmp_path: Path):
    source = tmp_path / "in" / "a.jpg"
    source.parent.mkdir()
    source.write_bytes(b"picture")
    inode = source.stat().st_ino
    (tmp_path / "out").mkdir()
    assert move_file(source, tmp_path / "out" / "a.jpg") is None
    assert not source.exists()
    assert (tmp_path / "out" / "a.jpg").stat().st_ino == inode  # the same file, renamed


def test_a_move_never_replaces_a_file(tmp_path: Path, across: Path):
    for folder in (tmp_path / "out", across):
        folder.mkdir(exist_ok=True)
        source = tmp_path / "a.jpg"
        source.write_bytes(b"new")
        (folder / "a.jpg").write_bytes(b"old")
        with pytest.raises(FileExistsError):
            move_file(source, folder / "a.jpg")
        assert source.read_bytes() == b"new" and (folder / "a.jpg").read_bytes() == b"old"
        assert listing(folder) == ["a.jpg"]  # no temp file left


def test_a_move_across_file_systems_copies_verifies_then_deletes(tmp_path: Path, across: Path):
    source = tmp_path / "a.jpg"
    data = os.urandom(3 << 20)  # over one read block
    source.write_bytes(data)
    os.utime(source, (1_000_000, 1_000_000))
    digest = move_file(source, across / "a.jpg", expected_sha256=sha(data))
    assert digest == sha(data)
    assert not source.exists()
    assert (across / "a.jpg").read_bytes() == data
    assert (across / "a.jpg").stat().st_mtime == 1_000_000  # times kept, as mv keeps them
    assert listing(across) == ["a.jpg"]


def test_a_move_across_file_systems_keeps_the_source_when_it_cannot_be_deleted(
    tmp_path: Path, across: Path, monkeypatch
):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")
    real_unlink = Path.unlink

    def read_only_folder(self, missing_ok=False):
        if self == source:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only_folder)
    with pytest.raises(PermissionError) as caught:
        move_file(source, across / "a.jpg")
    assert caught.value.filename == str(source)
    assert source.read_bytes() == b"picture"
    assert listing(across) == []  # the verified copy was taken back


def test_a_full_disk_leaves_the_source_and_nothing_half_written(tmp_path: Path, across: Path, monkeypatch):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        move_file(source, across / "a.jpg")
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(across / "a.jpg")  # names the target, not a temp file
    assert source.read_bytes() == b"picture"
    assert listing(across) == []


def test_a_source_that_changed_since_it_was_hashed_is_not_copied(tmp_path: Path, across: Path):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"changed")
    with pytest.raises(ContentMismatchError, match="changed while it was being copied"):
        move_file(source, across / "a.jpg", expected_sha256=sha(b"original"))
    assert source.read_bytes() == b"changed"
    assert listing(across) == []


def test_a_copy_that_reads_back_different_is_removed(tmp_path: Path, monkeypatch):
    from trainer.common import checksum

    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")
    monkeypatch.setattr(checksum, "file_sha256", lambda _p: "0" * 64)  # as if the disk lied
    with pytest.raises(ContentMismatchError, match="differs"):
        copy_file_new(source, tmp_path / "b.jpg")
    assert listing(tmp_path) == ["a.jpg"]


def test_copy_file_new_copies_and_never_replaces(tmp_path: Path):
    source = tmp_path / "a.jpg"
    source.write_bytes(b"picture")
    assert copy_file_new(source, tmp_path / "b.jpg") == sha(b"picture")
    assert (tmp_path / "b.jpg").read_bytes() == b"picture" and source.exists()
    with pytest.raises(FileExistsError):
        copy_file_new(source, tmp_path / "b.jpg")
    assert listing(tmp_path) == ["a.jpg", "b.jpg"]


def test_stale_temps_are_the_temp_names_of_one_target(tmp_path: Path):
    (tmp_path / ".a.jpg.x1y2.part").write_bytes(b"half")
    (tmp_path / ".ab.jpg.x1y2.part").write_bytes(b"other")
    (tmp_path / "a.jpg").write_bytes(b"whole")
    assert stale_temps(tmp_path / "a.jpg") == [tmp_path / ".a.jpg.x1y2.part"]


def test_open_append_appends_and_refuses_what_is_not_a_file(tmp_path: Path):
    log = tmp_path / "log.csv"
    for text in ("one\n", "two\n"):
        with open_append(log) as handle:
            handle.write(text)
    assert log.read_text() == "one\ntwo\n"
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        open_append(tmp_path / "folder")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OutputError, match="not a regular file"):
        open_append(tmp_path / "fifo")
    log.chmod(0o444)
    with pytest.raises(OutputError, match="read-only"):
        open_append(log)
