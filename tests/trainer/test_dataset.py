from __future__ import annotations

from pathlib import Path

import pytest

from trainer.common.errors import DatasetError
from trainer.data.dataset import natural_key, scan_dataset
from trainer.data.synthetic import make_dataset


def test_natural_sort_puts_2_before_10():
    names = ["10.jpg", "2.jpg", "1.jpg", "v1_100.jpg", "v1_20.jpg"]
    assert sorted(names, key=natural_key) == ["1.jpg", "2.jpg", "10.jpg", "v1_20.jpg", "v1_100.jpg"]


def test_direct_children_found_in_label_order(dataset: Path):
    scan = scan_dataset(dataset)
    assert scan.class_names == ("comics", "faces")
    assert scan.counts == (20, 20)
    assert [p.name for p in scan.files[0][:3]] == ["0.png", "1.png", "2.png"]
    assert scan.files[0][10].name == "10.png"


def test_kaggle_nesting_is_descended(tmp_path: Path):
    nested = tmp_path / "archive" / "face2comics_v2.0.0_by_Sxela" / "face2comics_v2.0.0_by_Sxela"
    make_dataset(nested, 6)
    scan = scan_dataset(tmp_path / "archive")
    assert scan.class_names == ("comics", "faces")
    assert scan.root == tmp_path / "archive"
    assert all(d.parent == nested for d in scan.class_dirs)


def test_any_two_image_folders(tmp_path: Path):
    make_dataset(tmp_path, 5, names=("photos", "drawings"))
    assert scan_dataset(tmp_path).class_names == ("drawings", "photos")


def test_faces_and_comics_win_over_extra_folders(tmp_path: Path):
    make_dataset(tmp_path, 5)
    make_dataset(tmp_path / "extra", 5)  # extra/ holds images deeper down
    assert scan_dataset(tmp_path).class_names == ("comics", "faces")


def test_skipped_files_are_reported_with_reasons(dataset: Path):
    (dataset / "faces" / ".DS_Store").write_bytes(b"junk")
    (dataset / "faces" / "notes.txt").write_text("hi")
    (dataset / "comics" / ".hidden").mkdir()
    (dataset / "comics" / ".hidden" / "x.png").write_bytes(b"")
    (dataset / "comics" / "UPPER.PNG").write_bytes((dataset / "comics" / "0.png").read_bytes())
    scan = scan_dataset(dataset)
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert reasons == {
        ".DS_Store": "hidden file",
        "notes.txt": "not an image file (.txt)",
        ".hidden": "hidden folder",
    }
    assert scan.counts == (21, 20)  # the upper-case extension counts


@pytest.mark.parametrize("ext", [".jpg", ".JPEG", ".webp", ".bmp", ".tif", ".gif", ".png"])
def test_accepted_extensions(tmp_path: Path, ext: str):
    make_dataset(tmp_path, 3, ext=ext)
    assert scan_dataset(tmp_path).counts == (3, 3)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")


def test_one_class_only(tmp_path: Path):
    make_dataset(tmp_path, 3)
    for f in (tmp_path / "comics").iterdir():
        f.unlink()
    with pytest.raises(
        DatasetError, match=r"only one class folder with images, faces/ \(the folder comics/ has no images\)"
    ):
        scan_dataset(tmp_path)


def test_no_classes(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="no class folders with images"):
        scan_dataset(tmp_path)


def test_three_classes_refused(tmp_path: Path):
    make_dataset(tmp_path, 3, names=("a", "b"))
    make_dataset(tmp_path, 3, names=("c", "b"))
    with pytest.raises(DatasetError, match=r"3 image folders \(a, b, c\)"):
        scan_dataset(tmp_path)


def test_a_file_is_not_a_dataset(tmp_path: Path):
    f = tmp_path / "x.jpg"
    f.write_bytes(b"")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        scan_dataset(f)
