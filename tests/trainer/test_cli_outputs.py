"""The commands of issue 18's "Why": an output that is an input, or another output, is refused in
one sentence with exit 2, and whatever is at an output path is written the way it should be. Every
input (the image, the model) is intact afterwards."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trainer.cli import predict_main, train_main
from trainer.common.outputs import DESCRIPTOR, STREAM, inspect_output
from trainer.data.synthetic import make_dataset
from trainer.export.cli import export_main

FAST = ["--features", "pixels", "--lr", "0.05", "--epochs", "1", "-q"]
BIN = Path(sys.executable).parent


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def setup(trained, tmp_path: Path):
    """A copy of the trained model and a folder of two images, with their checksums."""
    _, model, root = trained
    model = Path(shutil.copy(model, tmp_path / "m.safetensors"))
    images = tmp_path / "pimg"
    images.mkdir()
    shutil.copy(root / "faces" / "0.png", images / "a.png")
    shutil.copy(root / "comics" / "0.png", images / "b.png")
    sums = {p: digest(p) for p in (model, images / "a.png", images / "b.png")}
    yield model, images
    for path, value in sums.items():
        assert digest(path) == value, f"{path} was changed"


def one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_predict_refuses_a_csv_that_is_an_image_given(setup, capsys):
    model, images = setup
    a = str(images / "a.png")
    assert predict_main(["--model", str(model), "--csv", a, a, str(images / "b.png")]) == 2
    one_error_line(capsys, f"Cannot write {a}: it is the same file as the input")


def test_predict_refuses_a_csv_that_is_an_image_in_a_folder_given(setup, capsys):
    model, images = setup
    assert predict_main(["--model", str(model), str(images), "--csv", str(images / "b.png")]) == 2
    assert capsys.readouterr().out == ""  # refused before any image was predicted
    assert not (images / "b.png.json").exists()


def test_predict_refuses_a_csv_that_is_the_model(setup, capsys):
    model, images = setup
    assert predict_main(["--model", str(model), str(images), "--csv", str(model)]) == 2
    one_error_line(capsys, "it is the same file as the input")


def test_predict_refuses_a_csv_whose_sidecar_is_the_model(setup, tmp_path: Path, capsys):
    model, images = setup
    (tmp_path / "p.csv.json").symlink_to(model)
    assert predict_main(["--model", str(model), str(images), "--csv", str(tmp_path / "p.csv")]) == 2
    one_error_line(capsys, "same file as the input")
    assert not (tmp_path / "p.csv").exists()


def test_export_refuses_to_write_over_its_model(setup, capsys):
    model, _ = setup
    assert export_main([str(model), str(model)]) == 2
    one_error_line(capsys, "it is the same file as the input")


def test_train_refuses_one_file_for_two_outputs(tmp_path: Path, capsys):
    root = make_dataset(tmp_path / "data", 6)
    out = tmp_path / "x"
    assert train_main([str(root), *FAST, "--out", str(out), "--json", str(out)]) == 2
    one_error_line(capsys, "--out and --json name the same file")
    assert not out.exists()


def test_train_refuses_an_output_that_is_one_of_its_images(tmp_path: Path, capsys):
    root = make_dataset(tmp_path / "data", 6)
    image = root / "faces" / "3.png"
    before = digest(image)
    assert train_main([str(root), *FAST, "--json", str(image)]) == 2
    one_error_line(capsys, "it is the same file as the input")
    assert digest(image) == before


@pytest.mark.parametrize("kind", ["file", "link"])
def test_predict_writes_through_a_symlink_and_keeps_it(setup, tmp_path: Path, kind: str):
    model, images = setup
    target = tmp_path / "target.csv"
    target.write_text("stale\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target.name)
    assert predict_main(["--model", str(model), str(images), "--csv", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == "target.csv"
    assert target.read_text().startswith("path,label,confidence,flag,error\n")


def test_predict_writes_into_a_fifo_for_its_reader(setup, tmp_path: Path, capsys):
    model, images = setup
    fifo = tmp_path / "p.csv"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    assert predict_main(["--model", str(model), str(images), "--csv", str(fifo)]) == 0
    reader.join(30)
    assert got and got[0].startswith("path,label,confidence,flag,error\n") and len(got[0].splitlines()) == 3
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "p.csv", "pimg"]  # no sidecar
    assert "a stream: no sidecar" in capsys.readouterr().err


def test_predict_csv_to_a_process_substitution(setup, tmp_path: Path):
    """``--csv >(cat)``: bash passes /dev/fd/63, a pipe this process inherited."""
    model, images = setup
    script = (
        f'"{BIN / "facecomic-predict"}" --model "{model}" "{images}" --csv >(cat > "{tmp_path / "got.csv"}")'
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no sidecar" in proc.stderr and "No such file" not in proc.stderr
    for _ in range(100):  # the substituted cat may finish just after the command
        if (tmp_path / "got.csv").exists() and len((tmp_path / "got.csv").read_text().splitlines()) == 3:
            break
        threading.Event().wait(0.05)
    assert (tmp_path / "got.csv").read_text().startswith("path,label,confidence,flag,error\n")


def test_predict_csv_to_dev_stdout(setup):
    """/dev/stdout stays the terminal's or pipe's: the CSV follows the rows, no /dev/stdout.json."""
    model, images = setup
    # Guard first: were /dev/stdout taken for a file, writing it as root would replace the link.
    assert inspect_output("/dev/stdout").kind == DESCRIPTOR
    proc = subprocess.run(
        [BIN / "facecomic-predict", "--model", model, images, "--csv", "/dev/stdout"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5 and lines[2] == "path,label,confidence,flag,error"
    assert rows_of(lines[2:])[0]["path"] == str(images / "a.png")
    assert not os.path.exists("/dev/stdout.json") and os.path.islink("/dev/stdout")


def rows_of(lines: list[str]) -> list[dict]:
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def test_a_read_only_csv_is_refused_and_kept(setup, tmp_path: Path, capsys):
    model, images = setup
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    out.chmod(0o444)
    assert predict_main(["--model", str(model), str(images), "--csv", str(out)]) == 2
    one_error_line(capsys, "keep.csv: the file is read-only")
    assert out.read_text() == "precious\n"


def test_a_folder_as_output_is_refused(setup, tmp_path: Path, capsys):
    model, images = setup
    assert predict_main(["--model", str(model), str(images), "--csv", str(tmp_path)]) == 2
    one_error_line(capsys, "is a folder; give a file name")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_an_error_naming_the_file(setup, tmp_path: Path, capsys):
    model, images = setup
    # Guard first: were /dev/full taken for a file, writing it as root would replace the device.
    assert inspect_output("/dev/full").kind == STREAM
    assert predict_main(["--model", str(model), str(images), "--csv", "/dev/full"]) == 2
    one_error_line(capsys, "No space left on device (/dev/full).")
    root = make_dataset(tmp_path / "data", 6)
    assert train_main([str(root), *FAST, "--json", "/dev/full"]) == 2
    err = capsys.readouterr()
    assert "Results written" not in err.out
    assert err.err.strip().endswith("No space left on device (/dev/full).")
    # A copy of /dev/full made with mknod stays a device, and the failure names it.
    copy = tmp_path / "full.json"
    try:
        os.mknod(copy, stat.S_IFCHR | 0o644, os.makedev(1, 7))
    except (PermissionError, OSError):
        return  # no mknod here (not root, or a container without the capability)
    assert train_main([str(root), *FAST, "--json", str(copy)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"No space left on device ({copy}).")
    assert stat.S_ISCHR(os.lstat(copy).st_mode) and not (tmp_path / "full.json.json").exists()


def test_a_fifo_or_device_given_as_an_image_is_not_a_regular_file(setup, tmp_path: Path, capsys):
    model, images = setup
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    args = ["--model", str(model), str(fifo), "/dev/zero", str(images / "a.png")]
    assert predict_main(args) == 1  # and it returns: nothing waits on the FIFO
    err = capsys.readouterr().err
    assert f"{fifo}\terror\tnot a regular file (a named pipe)" in err
    assert "/dev/zero\terror\tnot a regular file (a character device)" in err
    assert "empty" not in err


def test_predict_prints_one_line_per_image_whatever_the_names(trained, tmp_path: Path, capsys):
    """Names with a newline, a tab or an escape sequence: one line each, four tab-separated fields."""
    _, model, root = trained
    folder = tmp_path / "odd"
    folder.mkdir()
    names = ["new\nline.png", "tab\there.png", "esc\x1b[31mred.png", "cr\r.png", "plain.png"]
    for i, name in enumerate(names):
        shutil.copy(root / ("faces" if i % 2 else "comics") / f"{i}.png", folder / name)
    (folder / "bad\nname.png").write_bytes(b"not an image")
    out = tmp_path / "p.csv"
    assert predict_main(["--model", str(model), "--csv", str(out), str(folder)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == len(names)
    assert all(len(line.split("\t")) == 4 for line in lines), lines
    assert "\x1b" not in captured.out and "\r" not in captured.out and "\x1b" not in captured.err
    printed = {line.split("\t")[0] for line in lines}
    assert printed == {
        f"{folder}/new\\nline.png",
        f"{folder}/tab\\there.png",
        f"{folder}/esc\\x1b[31mred.png",
        f"{folder}/cr\\r.png",
        f"{folder}/plain.png",
    }
    assert f"{folder}/bad\\nname.png\terror\tnot a readable image" in captured.err
    # The CSV stays exact: the names come back as they are on disk.
    rows = list(csv.DictReader(out.open(newline="")))
    assert {Path(r["path"]).name for r in rows} == {*names, "bad\nname.png"}


def test_excel_safe_prefixes_formula_cells(trained, tmp_path: Path):
    _, model, root = trained
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("=HYPERLINK(1).png", "+a.png", "-b.png", "@c.png", "plain.png"):
        shutil.copy(root / "faces" / "0.png", folder / name)
    exact, safe = tmp_path / "exact.csv", tmp_path / "safe.csv"
    os.chdir(folder)  # relative paths, so cells start with the names
    try:
        assert predict_main(["--model", str(model), "--csv", str(exact), "."]) == 0
        assert predict_main(["--model", str(model), "--csv", str(safe), "--excel-safe", "."]) == 0
        names = sorted(os.listdir("."))
    finally:
        os.chdir(tmp_path)
    cells = {r["path"] for r in csv.DictReader(safe.open(newline=""))}
    assert cells == {"'=HYPERLINK(1).png", "'+a.png", "'-b.png", "'@c.png", "plain.png"}
    assert {Path(r["path"]).name for r in csv.DictReader(exact.open(newline=""))} == {n for n in names}
    assert '"excel_safe": true' in (tmp_path / "safe.csv.json").read_text()
    assert '"excel_safe": false' in (tmp_path / "exact.csv.json").read_text()
