"""``facecomic-predict --explain DIR``: a ``.why.png`` and a ``.heat.png`` per readable image, each at
the image's own size (EXIF orientation applied), and never a file replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.cli import predict_main
from trainer.common.new_files import create_new


def pictures(folder: Path) -> dict[str, tuple[int, int]]:
    """Files of several shapes and formats, with the size each is shown at."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 256, (90, 30, 4), dtype=np.uint8), "RGBA").save(folder / "tall.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / "turned.jpg", exif=exif)
    return {"wide": (64, 40), "tall": (30, 90), "turned": (50, 70)}


def test_explain_writes_a_why_and_a_heat_png_at_each_images_size(trained, tmp_path: Path, capsys):
    _, model, _ = trained
    sizes = pictures(tmp_path / "in")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "why"
    assert predict_main(["--model", str(model), "--explain", str(out), str(tmp_path / "in")]) == 1
    for stem, size in sizes.items():
        with Image.open(out / f"{stem}.why.png") as why, Image.open(out / f"{stem}.heat.png") as heat:
            assert why.size == heat.size == size
            assert why.mode == "RGB" and heat.mode == "L"
            assert np.asarray(heat).max() == 255
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}.{k}.png" for s in sizes for k in ("why", "heat")
    )  # nothing for the unreadable file, and no temporary file left
    err = capsys.readouterr().err
    assert "3 heat maps written to" in err and "broken.jpg\terror" in err


def test_explain_never_replaces_a_file(trained, tmp_path: Path):
    _, model, _ = trained
    pictures(tmp_path / "a")
    (tmp_path / "b").mkdir()
    Image.new("RGB", (20, 20), "red").save(tmp_path / "b" / "wide.png")  # same stem, another folder
    out = tmp_path / "why"
    out.mkdir()
    mine = out / "wide.heat.png"
    mine.write_bytes(b"the user's own file")
    args = [
        "--model",
        str(model),
        "--explain",
        str(out),
        str(tmp_path / "a" / "wide.png"),
        str(tmp_path / "b"),
    ]
    assert predict_main(args) == 0
    assert predict_main(args) == 0
    assert mine.read_bytes() == b"the user's own file"
    names = sorted(p.name for p in out.iterdir())
    # "wide" was taken (by the user's heat map), so every pair moved on to a free stem of its own.
    assert names == sorted(
        ["wide.heat.png"] + [f"wide ({n}).{k}.png" for n in (2, 3, 4, 5) for k in ("why", "heat")]
    )
    with Image.open(out / "wide (3).why.png") as image:
        assert image.size == (20, 20)  # b/wide.png, explained after a/wide.png


def test_explain_into_a_file_is_refused_in_one_sentence(trained, tmp_path: Path, capsys):
    _, model, root = trained
    target = tmp_path / "file"
    target.write_text("x")
    assert predict_main(["--model", str(model), "--explain", str(target), str(root)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"facecomic-predict: error: {target} is a file; --explain needs a folder."
    )


def test_create_new_refuses_an_existing_name_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "x.png"
    create_new(target, b"first")
    with pytest.raises(FileExistsError):
        create_new(target, b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
