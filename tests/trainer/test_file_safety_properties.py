"""Property tests of the file-safety core: generated trees sorted (copied or moved), then undone;
generated things at a path, then every kind of write to it. What must hold for every example:

- sorting never loses content: over source and destination, the multiset of file hashes stays the
  same for a move (less the duplicates whose content was already in place, which stay there), and
  grows by exactly the copies for a copy;
- after an undo every file is back at its exact path with its exact content (links as links), and
  the destination holds exactly what it held before;
- nothing outside the two trees is touched, a file in the destination before the sort is never
  changed, and a file that reappears at an original path is never overwritten by the undo;
- a write never replaces what is at its path unless the call says it may (``write_bytes`` on a
  regular file); a folder, a FIFO, a device or a symlink is never replaced; no temp file is left.

Examples are kept small (a few files, short contents) so the properties add seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.trainer.helpers import collect
from tests.trainer.sort_helpers import predict_by_name
from trainer.common import new_files, outputs
from trainer.data.walk import collect_images
from trainer.prediction.sort_events import ImageNotRestored, ImageSorted
from trainer.prediction.sort_log import COPIED, LOG_NAME, MOVED, REMOVED_DUPLICATE
from trainer.prediction.sort_plan import check_target, plan_sort
from trainer.prediction.sort_undo import undo_sort
from trainer.prediction.sorting import execute_sort

# `make mutation` runs these against each of about a thousand mutants and sets fewer examples
# (FACECOMIC_PROPERTY_EXAMPLES); every other run uses all 150.
PROPERTY = settings(
    max_examples=int(os.environ.get("FACECOMIC_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples every run, so a failure always replays
    database=None,
)

# Names that collide in every way a user's folders do: the same name in two folders, names that
# differ only in case, unicode in composed and decomposed form, spaces, a name that looks
# numbered already, names near the file-name limit, a hidden file.
NAMES = st.sampled_from(
    [
        "a.jpg",
        "A.jpg",
        "a (2).jpg",
        "my photo.jpg",
        "\u00e9t\u00e9.png",  # été, composed
        "e\u0301te\u0301.png",  # été, decomposed
        "x" * 236 + ".jpg",
        "\u00e9" * 118 + ".jpg",  # 236 bytes of UTF-8
        "b.PNG",
        ".hidden.jpg",
    ]
)
FOLDERS = st.lists(st.sampled_from(["x", "X", "sub dir", "\u00fc"]), max_size=2).map(lambda p: "/".join(p))
# Few contents, so that the same picture often appears twice, and once already in the destination.
CONTENTS = st.sampled_from([b"one", b"two", b"three", b"\x00\xff binary"])
DESTINATION_FOLDERS = st.sampled_from(["faces", "comics", "unsure/low-confidence", "unsure/not-a-face"])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(folder: Path, exclude: Path | None = None) -> dict[str, tuple[str, str]]:
    """Every file and link under ``folder``, by relative path: ``("file", sha)`` or
    ``("link", where it points)``; links are not followed, the sort log is left out."""
    found: dict[str, tuple[str, str]] = {}
    if not folder.exists():
        return found
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if here / d != exclude]
        for name in dirs + files:
            path = here / name
            if path == exclude:
                continue
            relative = str(path.relative_to(folder))
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif name in files and name != LOG_NAME:
                found[relative] = ("file", sha(path.read_bytes()))
    return found


def contents(*snapshots: dict[str, tuple[str, str]]) -> Counter:
    """The multiset of file contents (links aside) over the snapshots."""
    return Counter(value for snap in snapshots for kind, value in snap.values() if kind == "file")


def part_files(root: Path) -> list[str]:
    return [os.path.join(r, n) for r, _d, files in os.walk(root) for n in files if n.endswith(".part")]


@contextmanager
def scratch():
    root = Path(tempfile.mkdtemp(prefix="facecomic-property-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- sorting and undoing ---------------------------------------------------------------------------


@st.composite
def sort_cases(draw):
    files = draw(
        st.lists(
            st.tuples(FOLDERS, NAMES, CONTENTS), min_size=1, max_size=7, unique_by=lambda f: (f[0], f[1])
        )
    )
    existing = draw(
        st.lists(
            st.tuples(DESTINATION_FOLDERS, NAMES, CONTENTS), max_size=4, unique_by=lambda f: (f[0], f[1])
        )
    )
    links = draw(
        st.lists(
            st.tuples(
                FOLDERS, st.sampled_from(["link.jpg", "far link.jpg"]), st.sampled_from(["inside", "outside"])
            ),
            max_size=2,
            unique_by=lambda f: (f[0], f[1]),
        )
    )
    return {
        "files": files,
        "existing": existing,
        "links": links,
        "move": draw(st.booleans()),
        "destination_inside": draw(st.booleans()),
        "reappear": draw(st.booleans()),
    }


def build_sort_case(root: Path, case) -> tuple[Path, Path, Path]:
    source, outside = root / "source", root / "outside"
    destination = source / "sorted" if case["destination_inside"] else root / "destination"
    for folder, name, data in case["files"]:
        path = source / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    outside.mkdir()
    (outside / "elsewhere.jpg").write_bytes(b"a picture outside both trees")
    first = source / case["files"][0][0] / case["files"][0][1]
    for folder, name, where in case["links"]:
        link = source / folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(first if where == "inside" else outside / "elsewhere.jpg")
    for folder, name, data in case["existing"]:
        path = destination / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    destination.mkdir(parents=True, exist_ok=True)
    return source, destination, outside


@PROPERTY
@given(case=sort_cases())
def test_sorting_then_undoing_loses_nothing_and_puts_everything_back(case):
    with scratch() as root:
        source, destination, outside = build_sort_case(root, case)
        source_before = snapshot(source, exclude=destination)
        destination_before = snapshot(destination)
        outside_before = snapshot(outside)

        paths, _ = collect_images([source], prune=check_target(destination, [source]))
        content_of = {str(p): sha(p.read_bytes()) for p in paths}  # what each image is, links followed
        plan = plan_sort([predict_by_name(p) for p in paths], destination, move=case["move"])
        events, _summary = collect(execute_sort(plan))
        sorted_ = [e for e in events if isinstance(e, ImageSorted)]

        source_after = snapshot(source, exclude=destination)
        destination_after = snapshot(destination)
        assert snapshot(outside) == outside_before
        assert part_files(root) == []
        for path, entry in destination_before.items():  # nothing that was there is changed
            assert destination_after[path] == entry
        for event in sorted_:  # each image is whole at its destination
            assert sha(Path(event.destination).read_bytes()) == content_of[event.source]
        if case["move"]:
            gone = Counter(content_of[e.source] for e in sorted_ if e.action == REMOVED_DUPLICATE)
            assert (
                contents(source_after, destination_after)
                == contents(source_before, destination_before) - gone
            )
        else:
            assert source_after == source_before
            copied = Counter(content_of[e.source] for e in sorted_ if e.action == COPIED)
            assert contents(destination_after) == contents(destination_before) + copied

        moved = [e for e in sorted_ if e.action == MOVED]
        reappeared = None
        if case["reappear"] and moved:  # the user puts a new file where a moved one was
            reappeared = Path(moved[0].source)
            reappeared.write_bytes(b"a new file at the old name")

        undo_events, _ = collect(undo_sort(destination))
        assert snapshot(outside) == outside_before
        assert part_files(root) == []
        if reappeared is None:
            assert snapshot(source, exclude=destination) == source_before
            assert snapshot(destination) == destination_before
            assert not any(isinstance(e, ImageNotRestored) for e in undo_events)
        else:
            assert reappeared.read_bytes() == b"a new file at the old name"  # never overwritten
            kept = Path(moved[0].destination)
            assert sha(kept.read_bytes()) == content_of[moved[0].source]  # and the picture is kept
            refused = [e for e in undo_events if isinstance(e, ImageNotRestored)]
            assert [e.source for e in refused] == [moved[0].source]
            expected_source = dict(source_before)
            expected_source[str(reappeared.relative_to(source))] = (
                "file",
                sha(b"a new file at the old name"),
            )
            assert snapshot(source, exclude=destination) == expected_source
            expected_destination = dict(destination_before)
            expected_destination[str(kept.relative_to(destination))] = ("file", content_of[moved[0].source])
            assert snapshot(destination) == expected_destination


# -- writing one path -------------------------------------------------------------------------------

KINDS = [
    "nothing",
    "file",
    "read-only",
    "link to a file",
    "link to nothing",
    "folder",
    "fifo",
    "link to a device",
]
NEW_NAME_CALLS = ["create_new", "rename_new", "copy_file_new", "move_file"]
NUMBERED_CALLS = ["write_new", "link_new"]
REPLACING_CALLS = ["write_bytes", "write_bytes allowing read-only", "write_text"]


def make_thing(path: Path, kind: str, elsewhere: Path) -> None:
    if kind == "file":
        path.write_bytes(b"old content")
    elif kind == "read-only":
        path.write_bytes(b"old content")
        path.chmod(0o444)
    elif kind == "link to a file":
        elsewhere.write_bytes(b"old content elsewhere")
        path.symlink_to(elsewhere)
    elif kind == "link to nothing":
        path.symlink_to(elsewhere)
    elif kind == "folder":
        path.mkdir()
        (path / "inside.jpg").write_bytes(b"inside the folder")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "link to a device":
        path.symlink_to("/dev/null")


def identity(path: Path) -> tuple:
    """What is at ``path``: its kind, inode and content or link, without following a link."""
    if not os.path.lexists(path):
        return ("nothing",)
    st_ = os.lstat(path)
    if stat.S_ISLNK(st_.st_mode):
        return ("link", os.readlink(path), st_.st_ino)
    if stat.S_ISREG(st_.st_mode):
        return ("file", st_.st_ino, stat.S_IMODE(st_.st_mode), path.read_bytes())
    if stat.S_ISDIR(st_.st_mode):
        return ("folder", st_.st_ino, tuple(sorted(os.listdir(path))))
    return ("special", stat.S_IFMT(st_.st_mode), st_.st_ino)


@contextmanager
def fifo_reader(path: Path, active: bool):
    """What is written to the FIFO at ``path``: its read end is opened first (without blocking),
    so a write through it goes into the pipe's buffer at once and no thread is needed."""
    got: list[bytes] = []
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK) if active else None
    try:
        yield got
        if fd is not None:
            try:
                got.append(os.read(fd, 1 << 16))
            except BlockingIOError:  # nothing was written
                got.append(b"")
    finally:
        if fd is not None:
            os.close(fd)


def call(name: str, folder: Path, target: Path, source: Path, data: bytes) -> Path | None:
    if name == "create_new":
        return new_files.create_new(target, data)
    if name == "rename_new":
        return new_files.rename_new(source, target)
    if name == "copy_file_new":
        new_files.copy_file_new(source, target)
        return target
    if name == "move_file":
        new_files.move_file(source, target)
        return target
    if name == "write_new":
        return new_files.write_new(folder, target.name, data)
    if name == "link_new":
        return new_files.link_new(source, folder, target.name)
    if name == "write_text":
        return outputs.write_text(target, data.decode())
    return outputs.write_bytes(target, data, allow_read_only=name.endswith("read-only"))


@PROPERTY
@given(
    kind=st.sampled_from(KINDS),
    name=st.sampled_from(NEW_NAME_CALLS + NUMBERED_CALLS + REPLACING_CALLS),
    target_name=NAMES,
    siblings=st.lists(NAMES, max_size=3, unique=True),
)
def test_a_write_replaces_only_what_the_call_says_it_may(kind, name, target_name, siblings):
    data = b"new content"
    with scratch() as root:
        folder, target, source = root / "out", root / "out" / target_name, root / "source.bin"
        folder.mkdir()
        source.write_bytes(data)
        for sibling in siblings:
            if sibling != target_name:
                (folder / sibling).write_bytes(b"a sibling: " + sibling.encode())
        elsewhere = root / "elsewhere.jpg"
        make_thing(target, kind, elsewhere)
        before, siblings_before = identity(target), snapshot(folder, exclude=target)
        elsewhere_before = identity(elsewhere)
        streaming = name in REPLACING_CALLS and kind == "fifo"

        with fifo_reader(target, streaming) as got:
            try:
                written = call(name, folder, target, source, data)
            except (OSError, outputs.OutputError):
                written = None

        assert part_files(root) == []
        assert snapshot(folder, exclude=target) == {
            **siblings_before,
            **({} if written is None or written == target else {written.name: ("file", sha(data))}),
        }
        if name in NEW_NAME_CALLS:  # a taken name is refused, whatever is there
            if kind == "nothing":
                assert written == target and target.read_bytes() == data
                assert source.exists() == (name not in ("rename_new", "move_file"))
            else:
                assert written is None and identity(target) == before and source.read_bytes() == data
                assert identity(elsewhere) == elsewhere_before
        elif name in NUMBERED_CALLS:  # a taken name gets the next number; nothing is replaced
            assert written is not None and written.read_bytes() == data
            assert (written == target) == (kind == "nothing")
            if kind != "nothing":
                assert identity(target) == before and identity(elsewhere) == elsewhere_before
        else:
            replaced_ok = {"nothing", "file", "link to a file", "link to nothing"}
            if name.endswith("read-only"):
                replaced_ok.add("read-only")
            if kind in replaced_ok:
                assert written == target
                assert Path(os.path.realpath(target)).read_bytes() == data
                if kind.startswith("link"):  # the link stays a link; the file it names is written
                    assert identity(target)[:2] == before[:2]
            elif kind in ("fifo", "link to a device"):  # written through, never replaced
                assert identity(target) == before
                if kind == "fifo":
                    assert got == [data]
            else:  # a folder, or a read-only file the call may not replace
                assert written is None and identity(target) == before


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_thing_is_made_as_the_properties_assume(tmp_path: Path, kind: str):
    """The generators make what their names say (a property over the wrong things proves nothing)."""
    make_thing(tmp_path / "thing", kind, tmp_path / "elsewhere")
    expected = {
        "nothing": "nothing",
        "file": "file",
        "read-only": "file",
        "link to a file": "link",
        "link to nothing": "link",
        "folder": "folder",
        "fifo": "special",
        "link to a device": "link",
    }[kind]
    assert identity(tmp_path / "thing")[0] == expected
