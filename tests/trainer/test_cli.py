from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trainer import __version__
from trainer.cli import predict_main, train_main
from trainer.common.configs import GridSpec
from trainer.data.synthetic import make_dataset
from trainer.model.model_file import load_model
from trainer.prediction.predictor import Predictor

FAST = ["--features", "pixels", "--lr", "0.05", "--epochs", "1", "2"]


def test_train_writes_model_and_json(dataset: Path, tmp_path: Path, capsys):
    out, report = tmp_path / "m.safetensors", tmp_path / "r.json"
    assert train_main([str(dataset), *FAST, "--out", str(out), "--json", str(report)]) == 0
    stdout = capsys.readouterr().out
    assert "Validation acc / loss" in stdout and "lr 0.05" in stdout
    assert "Holdout: accuracy" in stdout and "true \\ predicted" in stdout
    data = json.loads(report.read_text())
    assert set(data) >= {"classes", "counts", "skipped", "split", "grid", "best", "holdout", "seconds"}
    assert data["classes"] == ["comics", "faces"]
    assert [(g["lr"], g["epochs"]) for g in data["grid"]] == [(0.05, 1), (0.05, 2)]
    holdout = data["holdout"]
    matrix = holdout["confusion_matrix"]
    assert sum(map(sum, matrix)) == sum(data["split"]["counts"]["holdout"].values()) == 12
    assert holdout["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 12)
    assert f"Holdout: accuracy {holdout['accuracy']:.4f}, loss {holdout['loss']:.4f} (12 images)" in stdout
    best = max(data["grid"], key=lambda g: (g["val_accuracy"], -g["val_loss"]))
    assert data["best"] == {"lr": best["lr"], "epochs": best["epochs"]}
    assert load_model(out).metadata["best"] == data["best"]
    # The printed tables carry the JSON's numbers.
    assert data["counts"] == {"comics": 20, "faces": 20}
    assert "  comics: 20 images\n  faces: 20 images\n" in stdout
    row = next(line for line in stdout.splitlines() if line.startswith("lr 0.05  "))
    cells = [f"{g['val_accuracy']:.3f} / {g['val_loss']:.3f}" for g in data["grid"]]
    assert row.replace("*", "").split()[2:] == " ".join(cells).split()
    assert f"Best (*): lr 0.05, {data['best']['epochs']} epoch" in stdout


def test_flags_map_to_config_fields(dataset: Path, tmp_path: Path):
    report = tmp_path / "r.json"
    args = [
        str(dataset),
        "--features",
        "pixels",
        "--split",
        "paper",
        "--batch-size",
        "8",
        "--seed",
        "3",
        "--lr",
        "0.02",
        "--epochs",
        "1",
    ]
    assert train_main([*args, "--json", str(report), "--out", str(tmp_path / "m.safetensors")]) == 0
    meta = load_model(tmp_path / "m.safetensors").metadata
    assert meta["train_config"]["split"] == "paper"
    assert meta["train_config"]["features"] == "pixels" and meta["features"] == {"kind": "pixels"}
    assert meta["train_config"]["batch_size"] == 8
    assert meta["seed"] == 3
    assert meta["grid"] == {"learning_rates": [0.02], "epochs": [1], "l2": list(GridSpec().l2)}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("one_class", "only one class folder"),
        ("too_small", "needs at least 5 per class"),
        ("bad_out", "the folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys, setup: str, message: str):
    root = tmp_path / "data"
    args = []
    if setup == "one_class":
        make_dataset(root, 6)
        shutil.rmtree(root / "comics")
    elif setup == "too_small":
        make_dataset(root, 3)
    elif setup == "bad_out":
        make_dataset(root, 6)
        args = ["--out", str(tmp_path / "no" / "such" / "m.safetensors")]
    assert train_main([str(root), *FAST, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "-1"], "Learning rates must be positive"),
        (["--threads", "-1"], "threads must be a whole number from 0 to 1024, not -1"),
        (["--workers", "5000"], "workers must be a whole number from 0 to 1024, not 5000"),
    ],
)
def test_invalid_setting_is_a_usage_error(dataset: Path, capsys, flags: list[str], message: str):
    with pytest.raises(SystemExit) as info:
        train_main([str(dataset), *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_threads_flag_caps_the_lanes_and_leaves_torch_as_it_was(dataset: Path, monkeypatch):
    """``--threads 1``: every lane pool of the run has one lane; and torch's process-wide thread
    count is what it was before the run (it once leaked into later work)."""
    import torch

    from trainer.common import lanes

    sizes: list[int] = []
    real_init = lanes.Lanes.__init__

    def recording(self, count: int) -> None:
        sizes.append(count)
        real_init(self, count)

    monkeypatch.setattr(lanes.Lanes, "__init__", recording)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert train_main([str(dataset), *FAST, "--threads", "1", "-q"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert sizes and set(sizes) == {1}


def test_predict_prints_rows_and_writes_csv(trained, tmp_path: Path, capsys):
    _, model, root = trained
    (root / "faces" / "broken.jpg").write_bytes(b"")
    try:
        out = tmp_path / "p.csv"
        code = predict_main(["--model", str(model), "--csv", str(out), str(root)])
    finally:
        (root / "faces" / "broken.jpg").unlink()
    captured = capsys.readouterr()
    assert code == 1  # one image could not be read
    assert len(captured.out.strip().splitlines()) == 48
    assert "broken.jpg\terror\tthe file is empty" in captured.err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 49
    assert list(rows[0]) == ["path", "label", "confidence", "flag", "error"]
    assert sum(1 for r in rows if r["error"]) == 1
    assert out.read_text().startswith("path,label,")  # plain CSV: header first, no comments
    sidecar = json.loads((tmp_path / "p.csv.json").read_text())
    assert sidecar["model"] == {"file": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    assert sidecar["facecomic_version"] == __version__
    assert sidecar["rows"] == 49 and sidecar["columns"] == list(rows[0])
    created = datetime.fromisoformat(sidecar["created"])
    assert created.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - created) < timedelta(minutes=5)
    assert "p.csv.json" in captured.err


def test_predict_without_a_model_says_so(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("FACECOMIC_DEFAULT_MODEL", str(tmp_path / "none.safetensors"))
    make_dataset(tmp_path / "d", 1)
    out = tmp_path / "p.csv"
    assert predict_main(["--csv", str(out), str(tmp_path / "d" / "faces" / "0.png")]) == 2
    assert "pass --model" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "p.csv.json").exists()


def test_predict_with_a_bad_model_file(tmp_path: Path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk" * 10)
    assert predict_main(["--model", str(bad), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a valid FaceComic model" in err and len(err.strip().splitlines()) == 1


def test_console_scripts_are_installed():
    bin_dir = Path(sys.executable).parent
    for script in ("facecomic-train", "facecomic-predict"):
        proc = subprocess.run([bin_dir / script, "--version"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"{script} {__version__}\n"


def test_predict_survives_a_file_name_that_is_not_utf8(trained, tmp_path: Path, capsys):
    _, model, root = trained
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("0.png", "1.png"):
        shutil.copy(root / "faces" / name, folder / name)
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # Latin-1 bytes: legal on Linux
    shutil.copy(root / "comics" / "0.png", odd)
    with open(os.path.join(os.fsencode(folder), b"bad\xff.png"), "wb") as handle:
        handle.write(b"not an image")
    out = tmp_path / "p.csv"
    assert predict_main(["--model", str(model), "--csv", str(out), str(folder)]) == 1  # one unreadable
    captured = capsys.readouterr()
    expected = {p.source: p.label for p in Predictor.from_file(model).predict([root / "comics" / "0.png"])}
    assert f"{folder}/caf\\xe9.png\t{expected[str(root / 'comics' / '0.png')]}\t" in captured.out
    assert f"{folder}/bad\\xff.png\terror\tnot a readable image" in captured.err
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [Path(r["path"]).name for r in rows] == ["0.png", "1.png", "bad\\xff.png", "caf\\xe9.png"]
    assert rows[3]["label"] == expected[str(root / "comics" / "0.png")]
    assert [bool(r["label"]) for r in rows] == [True, True, False, True]
    assert [bool(r["error"]) for r in rows] == [False, False, True, False]


def test_train_prints_a_file_name_that_is_not_utf8_on_an_ascii_pipe(tmp_path: Path, monkeypatch):
    """A strict ASCII stdout (PYTHONIOENCODING=ascii:strict, a C-locale pipe) gets escapes, not a crash."""
    root = make_dataset(tmp_path / "data", 6)
    with open(os.path.join(os.fsencode(root / "faces"), b"bad\xff.png"), "wb") as handle:
        handle.write(b"not an image")
    (root / "comics" / "caf\u00e9.txt").write_text("not an image either")  # UTF-8, but not ASCII
    out, err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="ascii", errors="strict"))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(err, encoding="ascii", errors="strict"))
    code = train_main([str(root), "--lr", "0.05", "--epochs", "1", "--json", str(tmp_path / "r.json")])
    sys.stdout.flush()
    sys.stderr.flush()
    printed = out.getvalue().decode("ascii")
    assert code == 0, err.getvalue()
    assert f"    {root}/comics/caf\\xe9.txt: not an image file (.txt)\n" in printed
    assert f"  unreadable, skipped 1 file:\n    {root}/faces/bad\\xff.png: not a readable image" in printed
    assert "  comics: 6 images\n  faces: 7 images\n" in printed  # bad\\xff.png is found, then unreadable
    assert f"Results written to {tmp_path / 'r.json'}" in printed


def test_train_on_an_ascii_pipe_in_a_real_process(tmp_path: Path):
    root = make_dataset(tmp_path / "data", 6)
    with open(os.path.join(os.fsencode(root / "faces"), b"bad\xff.png"), "wb") as handle:
        handle.write(b"not an image")
    env = {**os.environ, "PYTHONIOENCODING": "ascii:strict", "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.cli", str(root), *FAST], capture_output=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode("ascii", "replace")
    assert f"{root}/faces/bad\\xff.png: not a readable image".encode() in proc.stdout


def _settings_of(argv: list[str], monkeypatch) -> tuple:
    """The (TrainConfig, GridSpec) that ``facecomic-train argv`` would run with."""
    from trainer.training import experiment

    seen = []

    def recording(data_dir, *, config, grid, **_kwargs):
        seen.append((config, grid))
        raise KeyboardInterrupt  # enough: the settings are what is asked for
        yield

    monkeypatch.setattr(experiment, "run_experiment", recording)
    train_main([*argv, "-q"])
    return seen[0]


def test_recipe_paper_sets_the_paper_s_settings_and_flags_override_it(dataset: Path, monkeypatch):
    from trainer.common.configs import PAPER_GRID

    paper, grid = _settings_of([str(dataset), "--recipe", "paper", "--seed", "3"], monkeypatch)
    assert (paper.features, paper.split, paper.heads, paper.seed, grid) == (
        "pixels",
        "paper",
        1,
        3,
        PAPER_GRID,
    )
    explicit = [str(dataset), "--features", "pixels", "--split", "paper", "--head", "mlp", "--heads", "1"]
    explicit += ["--seed", "3"]
    assert _settings_of([*explicit, "--lr", "0.01", "0.001", "--epochs", "1", "3", "5"], monkeypatch) == (
        paper,
        grid,
    )
    overridden, other = _settings_of(
        [str(dataset), "--recipe", "paper", "--epochs", "20", "--heads", "2"], monkeypatch
    )
    assert (overridden.heads, other.epochs, other.learning_rates) == (2, (20,), (0.01, 0.001))
