"""Adding marked images to a data set (trainer.data.additions): the right class folders, never
over a file, identical content not copied twice, a wrongly filed image moved to its class."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trainer.helpers import collect
from trainer.data.additions import Addition, AdditionError, add_to_dataset, class_folders
from trainer.data.dataset import scan_dataset
from trainer.data.synthetic import make_dataset


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", 6)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "outside", 4, seed=7)


def test_marked_images_go_to_their_class_folders(data: Path, outside: Path):
    before = scan_dataset(data).counts
    marks = [
        Addition(str(outside / "comics" / "0.png"), "faces"),  # the model said comic; it is a face
        Addition(str(outside / "faces" / "1.png"), "comics"),
        Addition(str(outside / "faces" / "2.png"), "comics"),
    ]
    events, summary = collect(add_to_dataset(data, marks))
    assert [e.action for e in events] == ["added"] * 3
    assert summary.counts == {"comics": 2, "faces": 1} and summary.added == 3
    # 0.png and 1.png exist in the data set with other pictures: never replaced, numbered instead.
    assert [Path(e.destination).relative_to(data).as_posix() for e in events] == [
        "faces/0 (2).png", "comics/1 (2).png", "comics/2 (2).png",
    ]  # fmt: skip
    after = scan_dataset(data).counts
    assert after == (before[0] + 2, before[1] + 1)  # (comics, faces)
    assert summary.describe().startswith(f"Added 3 images to {data} (2 to comics/, 1 to faces/).")


def test_identical_content_is_not_copied_twice_and_a_misfiled_image_moves(data: Path, outside: Path):
    shutil.copy(data / "faces" / "3.png", outside / "same-as-face-3.png")
    misfiled = data / "comics" / "4.png"  # marked in the error gallery as a face
    marks = [Addition(str(outside / "same-as-face-3.png"), "faces"), Addition(str(misfiled), "faces")]
    events, summary = collect(add_to_dataset(data, marks))
    assert [e.action for e in events] == ["already there", "relabelled"]
    assert not misfiled.exists() and (data / "faces" / "4 (2).png").exists()
    assert summary.already_there == 1 and summary.added == 0
    assert summary.relabelled == ((str(misfiled), str(data / "faces" / "4 (2).png")),)


def test_a_new_folder_gets_class_folders_and_a_missing_one_is_one_sentence(tmp_path: Path, outside: Path):
    empty = tmp_path / "new-data"
    empty.mkdir()
    _, summary = collect(add_to_dataset(empty, [Addition(str(outside / "faces" / "0.png"), "faces")]))
    assert (empty / "faces" / "0.png").is_file() and summary.added == 1
    with pytest.raises(AdditionError, match="is not a folder"):
        collect(add_to_dataset(tmp_path / "missing", []))


def test_class_folders_are_found_by_name_or_display_name_even_when_nested(tmp_path: Path):
    root = tmp_path / "kaggle"
    make_dataset(root / "wrapper" / "wrapper", 2)
    (root / "wrapper" / "wrapper" / "faces").rename(root / "wrapper" / "wrapper" / "Face")
    folders = class_folders(root, ["comics", "faces"])
    assert folders == {
        "comics": root / "wrapper" / "wrapper" / "comics",
        "faces": root / "wrapper" / "wrapper" / "Face",
    }


def test_an_unreadable_image_is_reported_and_the_rest_added(data: Path, outside: Path):
    marks = [
        Addition(str(outside / "missing.png"), "faces"),
        Addition(str(outside / "faces" / "0.png"), "faces"),
    ]
    events, summary = collect(add_to_dataset(data, marks))
    assert events[0].action == "" and "No such file" in events[0].reason
    assert summary.added == 1 and summary.failed[0][0].endswith("missing.png")
