"""Links, loops and duplicates: each real folder and file once, never out of the chosen folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainer.data.dataset import collect_image_paths, scan_dataset
from trainer.data.synthetic import make_dataset
from trainer.data.walk import collect_images, list_images


def reasons(skipped) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in skipped}


def test_links_out_of_a_class_and_loops_are_skipped(tmp_path: Path):
    root = make_dataset(tmp_path / "data", 12)
    faces, comics = root / "faces", root / "comics"
    real = scan_dataset(root)
    (faces / "root").symlink_to("..")  # the data set root, from inside faces/
    (faces / "comics").symlink_to("../comics")  # the other class
    (comics / "self").symlink_to(".")  # a loop
    scan = scan_dataset(root)
    assert scan.counts == real.counts == (12, 12)
    assert scan.files == real.files
    for class_dir, files in zip(scan.class_dirs, scan.files, strict=True):
        assert all(p.parent == class_dir for p in files)  # nothing of the other class
    why = reasons(scan.skipped)
    assert why["root"] == f"link to a folder outside faces/ ({root.resolve()})"
    assert why["comics"] == f"link to a folder outside faces/ ({comics.resolve()})"
    assert why["self"] == f"link to a folder above it, a loop ({comics.resolve()})"


def test_predict_collects_each_file_once_despite_a_loop(tmp_path: Path):
    folder = make_dataset(tmp_path / "d", 5) / "faces"
    (folder / "loop").symlink_to(".")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..")
    found, skipped = collect_images([folder])
    assert sorted(p.name for p in found) == [f"{i}.png" for i in range(5)]
    assert all(p.parent == folder for p in found)
    assert {s.reason.split(" (")[0] for s in skipped} == {"link to a folder above it, a loop"}
    assert len(skipped) == 2


def test_hard_link_and_link_to_a_listed_file_count_once(tmp_path: Path):
    folder = make_dataset(tmp_path / "d", 3) / "faces"
    os.link(folder / "0.png", folder / "copy.png")
    (folder / "alias.png").symlink_to("1.png")
    images, skipped = list_images(folder)
    assert [p.name for p in images] == ["0.png", "1.png", "2.png"]
    assert reasons(skipped) == {
        "copy.png": f"the same file as {folder / '0.png'}",
        "alias.png": f"the same file as {folder / '1.png'}",  # the real name wins over the link
    }


def test_dangling_link_is_skipped_with_a_reason(tmp_path: Path):
    folder = make_dataset(tmp_path / "d", 2) / "faces"
    (folder / "gone.png").symlink_to("nowhere.png")
    (folder / "ring.png").symlink_to("ring.png")
    images, skipped = list_images(folder)
    assert [p.name for p in images] == ["0.png", "1.png"]
    why = reasons(skipped)
    assert why["gone.png"] == "broken link (nothing at nowhere.png)"
    assert why["ring.png"].startswith("unusable link (")


def test_links_inside_the_folder_are_fine_and_real_names_win(tmp_path: Path):
    outside = make_dataset(tmp_path / "elsewhere", 4)
    root = tmp_path / "data"
    root.symlink_to(outside)  # the chosen folder may itself be a link
    (outside / "faces" / "sub").mkdir()
    (outside / "faces" / "3.png").rename(outside / "faces" / "sub" / "3.png")
    (outside / "faces" / "a_shortcut").symlink_to("sub")  # inside faces/: already searched
    scan = scan_dataset(root)
    assert scan.counts == (4, 4)
    assert [p.relative_to(root).as_posix() for p in scan.files[1]] == [
        "faces/0.png", "faces/1.png", "faces/2.png", "faces/sub/3.png",
    ]  # fmt: skip
    assert reasons(scan.skipped) == {
        "a_shortcut": f"link to a folder already searched ({root / 'faces' / 'sub'})"
    }


def test_a_link_to_a_hidden_folder_inside_is_followed(tmp_path: Path):
    folder = make_dataset(tmp_path / "d", 2) / "faces"
    (folder / ".stash").mkdir()
    (folder / "1.png").rename(folder / ".stash" / "1.png")
    (folder / "visible").symlink_to(".stash")
    images, _ = list_images(folder)
    assert [p.relative_to(folder).as_posix() for p in images] == ["0.png", "visible/1.png"]


def test_class_folder_links_out_of_the_chosen_folder_are_not_classes(tmp_path: Path):
    root = make_dataset(tmp_path / "data", 3)
    make_dataset(tmp_path / "other", 3, names=("photos", "drawings"))
    (root / "photos").symlink_to(tmp_path / "other" / "photos")  # would make three classes
    (root / "again").symlink_to("faces")  # the same real folder twice
    (root / "self").symlink_to(".")
    assert scan_dataset(root).class_names == ("comics", "faces")


def test_fifo_with_an_image_name_is_not_opened(tmp_path: Path):
    folder = make_dataset(tmp_path / "d", 2) / "faces"
    os.mkfifo(folder / "pipe.jpg")  # reading it would block forever
    images, skipped = list_images(folder)
    assert [p.name for p in images] == ["0.png", "1.png"]
    assert reasons(skipped) == {"pipe.jpg": "not a regular file"}


def test_explicit_paths_are_deduplicated_across_arguments(tmp_path: Path):
    folder = make_dataset(tmp_path / "d", 3) / "faces"
    one = folder / "1.png"
    found = collect_image_paths([folder, one, folder, tmp_path / "missing.jpg", tmp_path / "missing.jpg"])
    assert [p.name for p in found] == ["0.png", "1.png", "2.png", "missing.jpg"]


@pytest.mark.parametrize("n", [3000])
def test_thousands_of_files_walk_in_natural_order(tmp_path: Path, n: int):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.png").write_bytes(b"x")
    (folder / "loop").symlink_to(".")
    images, skipped = list_images(folder)
    assert [p.name for p in images] == [f"{i}.png" for i in range(n)]
    assert len(skipped) == 1


def test_a_pruned_folder_is_listed_as_skipped_and_never_entered(tmp_path: Path):
    folder = make_dataset(tmp_path / "d", 3) / "faces"
    inside = folder / "sorted"
    (inside / "faces").mkdir(parents=True)
    (inside / "faces" / "x.png").write_bytes((folder / "0.png").read_bytes())
    (folder / "link-to-sorted").symlink_to("sorted")
    st = inside.stat()
    found, skipped = collect_images([folder], prune={(st.st_dev, st.st_ino): "the sort target"})
    assert sorted(p.name for p in found) == ["0.png", "1.png", "2.png"]
    assert reasons(skipped) == {"sorted": "the sort target", "link-to-sorted": "the sort target"}
