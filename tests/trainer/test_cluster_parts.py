"""The parts of ``--cluster`` that need no cluster: shards, the input list, sorting from a CSV's
checks, and the flags that go (or do not go) with ``--cluster``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.cli import predict_main
from trainer.common.errors import FaceComicError

distributed = pytest.importorskip("distributed")


def test_a_shard_is_written_once_and_read_back_exactly(tmp_path):
    from trainer.cluster.shards import Shards

    shards = Shards(tmp_path / "parts", {"model_sha256": "a"})
    shards.start()
    rows = [{"source": "caf\udce9.jpg", "label": "faces", "confidence": 0.25}, {"source": "b", "error": "x"}]
    assert shards.write(0, rows)
    assert not shards.write(0, [{"source": "other"}])  # a chunk delivered twice is kept once
    assert shards.read(0) == rows
    (tmp_path / "parts" / "shard-000001.jsonl").write_text('{"source": "c"}\n')  # short: 1 of 2 rows
    assert shards.done([2, 2]) == {0}


def test_shards_of_another_job_or_without_resume_are_refused(tmp_path):
    from trainer.cluster.shards import Shards

    Shards(tmp_path / "parts", {"chunk_size": 16}).start()
    with pytest.raises(FaceComicError, match="add --resume"):
        Shards(tmp_path / "parts", {"chunk_size": 16}).check(resume=False)
    with pytest.raises(FaceComicError, match="its chunk_size differ"):
        Shards(tmp_path / "parts", {"chunk_size": 32}).check(resume=True)
    Shards(tmp_path / "parts", {"chunk_size": 16}).check(resume=True)


def test_the_input_list_keeps_names_and_skips_blank_lines(tmp_path):
    from trainer.data.input_list import is_remote, local_path, read_input_list

    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.jpg\r\n\n  \nfile:///x/b.jpg\ns3://bucket/c.jpg\ncaf\xe9.jpg")
    entries = read_input_list(listing)
    assert entries == ["a.jpg", "file:///x/b.jpg", "s3://bucket/c.jpg", "caf\udce9.jpg"]
    assert [is_remote(e) for e in entries] == [False, False, True, False]
    assert local_path("file:///x/b.jpg") == "/x/b.jpg"
    with pytest.raises(FaceComicError, match="does not exist"):
        read_input_list(tmp_path / "missing.txt")


def test_the_local_cli_reads_an_input_list(trained, tmp_path, capsys):
    _, model, root = trained
    images = sorted(root.rglob("*.png"))[:3]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(map(str, images)) + "\n")
    assert predict_main(["--model", str(model), "--input-list", str(listing)]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == list(map(str, images))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--resume", "x.jpg"], "--resume goes with --cluster"),
        (["--cluster", "local", "x.jpg"], "add --csv OUT.csv"),
        (["--cluster", "local", "--csv", "p.csv", "--sort-into", "out", "x.jpg"], "drop --sort-into"),
        (["--from-csv", "p.csv"], "--from-csv goes with --sort-into"),
        (["--sort-into", "out", "--from-csv", "p.csv", "x.jpg"], "drop PATH"),
        (["--cluster", "local", "--chunk-size", "0", "--csv", "p.csv", "x.jpg"], "--chunk-size"),
    ],
)
def test_flags_that_do_not_go_together_are_a_usage_error(args, problem, capsys):
    with pytest.raises(SystemExit) as stop:
        predict_main(args)
    assert stop.value.code == 2
    assert problem in capsys.readouterr().err


def test_from_csv_refuses_what_is_not_a_predictions_csv(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert predict_main(["--sort-into", str(tmp_path / "out"), "--from-csv", str(bad)]) == 2
    assert "is not a predictions CSV" in capsys.readouterr().err
    safe = tmp_path / "safe.csv"
    safe.write_text("path,label,confidence,flag,error\n'=x.jpg,faces,0.9,,\n")
    (tmp_path / "safe.csv.json").write_text(json.dumps({"excel_safe": True}))
    assert predict_main(["--sort-into", str(tmp_path / "out"), "--from-csv", str(safe)]) == 2
    assert "--excel-safe" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert predict_main(["--sort-into", str(tmp_path / "out"), "--from-csv", str(tmp_path / "none.csv")]) == 2
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["bad.csv", "safe.csv", "safe.csv.json"]
