"""facecomic-train's smaller promises: SIGTERM unwinds like Ctrl+C and keeps the cache, extra class
folders are named, control characters never reach the terminal, counts are pluralised and no
number prints as -0.0000."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from trainer.cli import train_main
from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.console import EXIT_TERMINATED
from trainer.data.synthetic import make_dataset
from trainer.features import base
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.cache import FeatureCache
from trainer.features.efficientnet import EMBEDDING_SIZE, RECOMMENDED_SIZE, backbone_preprocess
from trainer.features.pixels import PixelFeaturizer
from trainer.model.results import HoldoutMetrics
from trainer.training import report

FAST = ["--features", "pixels", "--lr", "0.05", "--epochs", "1", "-q"]


def sigterm_after(calls: int):
    """A counter that sends this process SIGTERM once it has been called ``calls`` times, from
    whichever thread (as ``kill`` would)."""
    lock = threading.Lock()
    count = [0]

    def tick() -> None:
        with lock:
            count[0] += 1
            if count[0] == calls:
                os.kill(os.getpid(), signal.SIGTERM)

    return tick


def test_sigterm_while_decoding_keeps_the_decoded_images(tmp_path: Path, monkeypatch, capsys):
    root = make_dataset(tmp_path / "data", 150)
    tick = sigterm_after(60)
    real = base.decode_image

    def decode_and_tick(path, config):
        tick()
        return real(path, config)

    monkeypatch.setattr(base, "decode_image", decode_and_tick)
    previous = signal.getsignal(signal.SIGTERM)
    assert train_main([str(root), *FAST, "--workers", "2"]) == EXIT_TERMINATED == 143
    assert signal.getsignal(signal.SIGTERM) is previous  # restored
    err = capsys.readouterr().err.strip()
    assert err == (
        "facecomic-train: stopped by SIGTERM; nothing half-written was left behind, and the images "
        "decoded so far are kept in the cache."
    )
    cache = FeatureCache(DecodeOptions().resolved_cache_dir, root, PixelFeaturizer(PreprocessConfig()))
    kept = cache.load()
    assert 60 <= len(kept) < 300 and cache.problem is None
    monkeypatch.setattr(base, "decode_image", real)
    assert train_main([str(root), *FAST]) == 0
    assert f"{len(kept):,} from cache" in capsys.readouterr().out


def test_sigterm_while_extracting_keeps_the_finished_batches(tmp_path: Path, monkeypatch, capsys):
    root = make_dataset(tmp_path / "data", 40)
    tick = sigterm_after(5)

    def network(_self, pixels, *_args):  # the backbone's place: instant, and it counts batches
        tick()
        return np.zeros((len(pixels), EMBEDDING_SIZE), np.float32)

    monkeypatch.setattr(BackboneFeaturizer, "_run_network", network)
    code = train_main([str(root), "--lr", "0.05", "--epochs", "1", "-q", "--threads", "1"])
    assert code == 143
    assert "stopped by SIGTERM" in capsys.readouterr().err
    cache = FeatureCache(
        DecodeOptions().resolved_cache_dir, root, BackboneFeaturizer(backbone_preprocess(RECOMMENDED_SIZE))
    )
    kept = cache.load()
    assert 4 * 4 <= len(kept) < 80, len(kept)  # at least the four batches finished before the signal


def test_extra_class_folders_are_named(tmp_path: Path, capsys):
    root = make_dataset(tmp_path / "data", 6)
    shutil.copytree(root / "faces", root / "other")
    shutil.copytree(root / "faces", root / "more")
    assert train_main([str(root), *FAST]) == 0
    out = capsys.readouterr().out
    assert "  ignored 2 folders with images: more/, other/ (the classes are comics/ and faces/)\n" in out


def test_a_class_folder_with_a_control_character_is_refused_before_training(tmp_path: Path, capsys):
    root = make_dataset(tmp_path / "data", 6)
    (root / "faces").rename(root / "fa\x1b[2Jces")
    assert train_main([str(root), *FAST]) == 2
    err = capsys.readouterr().err
    assert "The class folder fa\\x1b[2Jces/ has a control character" in err and "\x1b" not in err


def test_names_in_the_training_report_stay_on_one_line(tmp_path: Path, capsys):
    root = make_dataset(tmp_path / "data", 6)
    (root / "faces" / "evil\nname\t.txt").write_text("not an image")
    assert train_main([str(root), *FAST]) == 0
    out = capsys.readouterr().out
    assert f"    {root}/faces/evil\\nname\\t.txt: not an image file (.txt)\n" in out


def test_counts_are_pluralised_and_no_negative_zero():
    metrics = HoldoutMetrics(
        accuracy=1.0, loss=-1e-9, confusion_matrix=((1, 0), (0, 0)), precision=(1.0, -0.0),
        recall=(1.0, 0.0), size=1, ece=-1e-7,
    )  # fmt: skip
    text = report.format_holdout(metrics, ("comics", "faces"))
    assert "loss 0.0000 (1 image)" in text and "-0.0" not in text
    dataset = report.format_dataset("d", ("comics", "faces"), (1, 2), ())
    assert "comics: 1 image\n" in dataset and "faces: 2 images" in dataset


@pytest.mark.parametrize("quiet", [False, True])
def test_one_image_and_one_epoch_read_as_such(tmp_path: Path, capsys, quiet: bool):
    root = make_dataset(tmp_path / "data", 6)
    assert (
        train_main([str(root), "--features", "pixels", "--lr", "0.05", "--epochs", "1", *(["-q"] * quiet)])
        == 0
    )
    out = capsys.readouterr().out
    assert "1 epochs" not in out and "Retraining lr 0.05, 1 epoch on train+val" in out
    assert "-0.0000" not in out and "-0.000" not in out
