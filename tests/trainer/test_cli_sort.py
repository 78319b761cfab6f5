"""``facecomic-predict --sort-into OUT [--move] [--dry-run]`` and ``--undo-sort OUT``."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.trainer.sort_helpers import hashes, tree
from trainer.cli import predict_main
from trainer.prediction.sort_plan import folder_of


@pytest.fixture
def pile(trained, tmp_path: Path) -> Path:
    """A copy of the trained model's images, with an unreadable one and a note."""
    _, _, root = trained
    pile = tmp_path / "in"
    shutil.copytree(root, pile)
    (pile / "faces" / "broken.jpg").write_bytes(b"")
    (pile / "notes.txt").write_text("not an image")
    return pile


def model_of(trained) -> str:
    return str(trained[1])


def test_move_sorts_as_the_csv_says_and_undo_restores_everything(trained, pile: Path, tmp_path: Path, capsys):
    original = tree(pile)
    out = tmp_path / "out"
    assert predict_main(["--model", model_of(trained), "--csv", str(tmp_path / "p.csv"), str(pile)]) == 1
    capsys.readouterr()
    code = predict_main(["--model", model_of(trained), "--sort-into", str(out), "--move", str(pile)])
    captured = capsys.readouterr()
    assert code == 1  # the unreadable image stays where it is
    lines = captured.out.splitlines()
    assert len(lines) == 48 and all(len(line.split("\t")) == 3 for line in lines)
    assert {line.split("\t")[2] for line in lines} == {"moved"}
    assert "broken.jpg\tleft in place\tunreadable (the file is empty (0 bytes))" in captured.err
    assert f"Moved 48 images into {out}: " in captured.err
    assert f"undo with facecomic-predict --undo-sort {out}" in captured.err
    assert sorted(tree(pile)) == ["faces/broken.jpg", "notes.txt"]
    rows = [r for r in csv.DictReader((tmp_path / "p.csv").open()) if not r["error"]]
    expected = Counter(folder_of(r["label"], r["flag"]) for r in rows)
    got = Counter(str(Path(rel).parent) for rel in tree(out) if "/" in rel)
    assert got == expected
    assert hashes(pile, out) == Counter(original.values())

    assert predict_main(["--undo-sort", str(out)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 48
    assert f"Undid the sort into {out}: 48 moved back" in captured.err
    assert tree(pile) == original


def test_a_dry_run_prints_the_plan_and_touches_nothing(trained, pile: Path, tmp_path: Path, capsys):
    original = tree(pile)
    out = tmp_path / "out"
    code = predict_main(
        ["--model", model_of(trained), "--sort-into", str(out), "--move", "--dry-run", str(pile)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert {line.split("\t")[2] for line in captured.out.splitlines()} == {"would move"}
    assert "Would move 48 images into" in captured.err and "a dry run: nothing was touched" in captured.err
    assert not out.exists() and tree(pile) == original


def test_copying_twice_copies_once_and_a_target_inside_the_input_is_not_walked(trained, pile: Path, capsys):
    (pile / "faces" / "broken.jpg").unlink()
    out = pile / "sorted"
    for _ in range(2):
        assert predict_main(["--model", model_of(trained), "--sort-into", str(out), str(pile)]) == 0
    captured = capsys.readouterr()
    assert "sorted\tskipped\tthe sort's target folder, not an input" in captured.err
    assert "Copied 48 images into" in captured.err and "(48 already there)" in captured.err
    assert len([rel for rel in tree(out) if "/" in rel]) == 48


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--move", "PILE"], "--move and --dry-run go with --sort-into OUT"),
        (["--undo-sort", "OUT", "PILE"], "--undo-sort takes only the folder; drop PATH"),
        ([], "the following arguments are required: PATH"),
    ],
)
def test_flags_that_do_not_go_together(flags, message, tmp_path: Path, capsys):
    flags = [str(tmp_path) if f in ("PILE", "OUT") else f for f in flags]
    with pytest.raises(SystemExit) as exit_:
        predict_main(flags)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_target_holding_the_input_or_a_read_only_source_is_one_sentence(
    trained, pile: Path, capsys, monkeypatch
):
    code = predict_main(["--model", model_of(trained), "--sort-into", str(pile.parent), "--move", str(pile)])
    err = capsys.readouterr().err
    assert code == 2 and f"{pile} is inside the target folder" in err
    assert len(err.strip().splitlines()) == 1  # checked before the model loads or anything moves

    import os

    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, **k: False if Path(p) == pile / "faces" else real(p, m, **k)
    )
    code = predict_main(
        ["--model", model_of(trained), "--sort-into", str(pile.parent / "out"), "--move", str(pile)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "Cannot move 25 images: the folder" in err and "is read-only, so nothing was moved" in err
    assert "predicted" not in err  # said before the model predicts anything
    assert not (pile.parent / "out").exists()


def test_undo_of_a_folder_without_a_log(tmp_path: Path, capsys):
    assert predict_main(["--undo-sort", str(tmp_path)]) == 2
    assert "has no facecomic-sort-log.csv: nothing was sorted there" in capsys.readouterr().err


def test_sigterm_stops_a_move_between_two_images_and_the_same_command_finishes_it(
    trained, tmp_path: Path, capsys
):
    import signal
    import subprocess
    import sys

    from trainer.data.synthetic import make_dataset
    from trainer.prediction.sort_log import pending_steps, read_log

    pile = make_dataset(tmp_path / "in", 300)
    original = hashes(pile)
    out = tmp_path / "out"
    command = [
        sys.executable, "-c", "import sys; from trainer.cli import predict_main; sys.exit(predict_main(sys.argv[1:]))",
        "--model", model_of(trained), "--sort-into", str(out), "--move", str(pile),
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.readline()  # the first image is sorted
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    assert "stopped by SIGTERM between two images" in err and "Run the same command to finish" in err
    assert pending_steps(read_log(out)) == []  # it stopped between steps, not in one
    assert hashes(pile, out) == original
    capsys.readouterr()
    assert predict_main(command[3:]) == 0  # the same command again (in this process: its start is 2-3 s)
    assert "Continuing the interrupted move" in capsys.readouterr().err
    assert tree(pile) == {} and hashes(out) == original
