"""Backbone feature extraction: shapes, cache reuse and invalidation, cancel, unreadable files,
determinism, lanes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.helpers import collect
from trainer.common.cancel import CancelToken
from trainer.common.configs import DecodeOptions
from trainer.common.cpu import CpuBudget
from trainer.common.errors import Cancelled
from trainer.common.events import FeaturesProgressed, drain
from trainer.data.preprocess import decode_image
from trainer.data.synthetic import make_dataset
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.cache import FeatureCache
from trainer.features.efficientnet import EMBEDDING_SIZE, backbone_preprocess

CONFIG = backbone_preprocess(32)  # small input keeps the network fast; the code path is the same
FEATURIZER = BackboneFeaturizer(CONFIG)


def extract_features(paths, *, options, root=None, lanes: int = 2, cancel=None):
    kwargs = {"cancel": cancel} if cancel is not None else {}
    budget = CpuBudget(lanes=lanes, decode_workers=2)
    return FEATURIZER.extract(paths, root=root, options=options, budget=budget, **kwargs)


def embed_pixels(pixels, lanes: int = 2):
    return FEATURIZER.rows_from_pixels(pixels, budget=CpuBudget(lanes=lanes, decode_workers=1))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", n_per_class=6)


@pytest.fixture
def network_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = BackboneFeaturizer._run_network

    def counting(self, pixels, *args):
        calls.append(len(pixels))
        return real(self, pixels, *args)

    monkeypatch.setattr(BackboneFeaturizer, "_run_network", counting)
    return calls


def paths_of(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def run(root: Path, cache_dir: Path, paths=None, **kwargs):
    options = DecodeOptions(workers=2, cache_dir=cache_dir)
    return collect(extract_features(paths or paths_of(root), options=options, root=root, **kwargs))


def test_embeds_every_file_in_order(dataset: Path, tmp_path: Path, network_calls: list[int]):
    events, result = run(dataset, tmp_path / "cache")
    assert result.rows.shape == (12, EMBEDDING_SIZE) and result.rows.dtype == np.float32
    assert result.ok_indices.tolist() == list(range(12)) and result.errors == {}
    assert result.from_cache == 0 and network_calls == [4, 4, 4]
    assert all(isinstance(e, FeaturesProgressed) for e in events)
    assert events[-1] == FeaturesProgressed(12, 12, 0)
    single = embed_pixels(decode_image(paths_of(dataset)[5], CONFIG)[None])
    np.testing.assert_allclose(single[0], result.rows[5], atol=1e-4)


def test_second_run_comes_from_the_cache(dataset: Path, tmp_path: Path, network_calls: list[int]):
    _, first = run(dataset, tmp_path / "cache")
    network_calls.clear()
    _, second = run(dataset, tmp_path / "cache")
    assert network_calls == [] and second.from_cache == 12
    np.testing.assert_array_equal(first.rows, second.rows)


def test_changed_file_is_embedded_again(dataset: Path, tmp_path: Path, network_calls: list[int]):
    run(dataset, tmp_path / "cache")
    network_calls.clear()
    changed = paths_of(dataset)[0]
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    _, result = run(dataset, tmp_path / "cache")
    assert result.from_cache == 11 and network_calls == [1]


def test_deterministic(dataset: Path, tmp_path: Path):
    _, first = run(dataset, tmp_path / "a")
    _, second = run(dataset, tmp_path / "b")
    np.testing.assert_array_equal(first.rows, second.rows)
    assert np.abs(first.rows[0] - first.rows[-1]).max() > 1e-3  # distinct images differ


def test_unreadable_file_is_an_error_and_remembered(dataset: Path, tmp_path: Path, network_calls):
    bad = dataset / "faces" / "zz_bad.png"
    bad.write_bytes(b"not an image")
    paths = paths_of(dataset)
    _, result = run(dataset, tmp_path / "cache", paths)
    index = paths.index(bad)
    assert list(result.errors) == [index] and "not a readable image" in result.errors[index]
    assert len(result.ok_indices) == 12 and index not in result.ok_indices.tolist()
    network_calls.clear()
    _, again = run(dataset, tmp_path / "cache", paths)
    assert again.from_cache == 13 and network_calls == [] and again.errors == result.errors


def test_cancel_keeps_what_was_extracted(dataset: Path, tmp_path: Path, network_calls):
    token = CancelToken()
    options = DecodeOptions(workers=2, cache_dir=tmp_path / "cache")
    generator = extract_features(paths_of(dataset), options=options, root=dataset, cancel=token)
    next(generator)  # from the cache: nothing
    assert next(generator).done == 4
    token.cancel()
    with pytest.raises(Cancelled):
        drain(generator)
    assert not list((tmp_path / "cache").glob("*.part"))
    network_calls.clear()
    _, result = run(dataset, tmp_path / "cache")
    assert result.from_cache >= 4 and sum(network_calls) == 12 - result.from_cache


def test_damaged_cache_is_ignored_and_rewritten(dataset: Path, tmp_path: Path):
    _, first = run(dataset, tmp_path / "cache")
    cache_file = FeatureCache(tmp_path / "cache", dataset, FEATURIZER).path
    cache_file.write_bytes(b"garbage")
    _, second = run(dataset, tmp_path / "cache")
    assert second.from_cache == 0
    np.testing.assert_array_equal(first.rows, second.rows)
    _, third = run(dataset, tmp_path / "cache")
    assert third.from_cache == 12


def test_cache_is_keyed_by_input_size(dataset: Path, tmp_path: Path):
    a = FeatureCache(tmp_path, dataset, BackboneFeaturizer(backbone_preprocess(32))).path
    b = FeatureCache(tmp_path, dataset, BackboneFeaturizer(backbone_preprocess(64))).path
    assert a != b and a.name.startswith("pretrained-32-")


def test_no_cache_without_root(dataset: Path, tmp_path: Path):
    options = DecodeOptions(cache_dir=tmp_path / "cache")
    result = drain(extract_features(paths_of(dataset), options=options))
    assert len(result.ok_indices) == 12 and not (tmp_path / "cache").exists()


@pytest.fixture
def torch_threads():
    import torch

    previous = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(previous)


def test_lanes_embed_batches_at_the_same_time(dataset: Path, tmp_path: Path, monkeypatch, torch_threads):
    """A budget of two lanes: two lanes, each in the network at once, each single-threaded."""
    import threading

    import torch

    torch_threads(2)
    both_in = threading.Barrier(2, timeout=30)  # breaks, failing the run, unless two lanes meet
    seen: list[tuple[str, int]] = []
    real = BackboneFeaturizer._run_network

    def meeting(self, pixels, *args):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        if len(seen) <= 2:
            both_in.wait()
        return real(self, pixels, *args)

    monkeypatch.setattr(BackboneFeaturizer, "_run_network", meeting)
    _, result = run(dataset, tmp_path / "cache")
    assert len(result.ok_indices) == 12 and len(seen) == 3
    assert all(name.startswith("facecomic-lane") and threads == 1 for name, threads in seen)
    assert len({name for name, _ in seen[:2]}) == 2
    assert torch.get_num_threads() == 2  # put back for the caller


def test_embeddings_do_not_depend_on_the_number_of_lanes(dataset: Path, tmp_path: Path):
    _, one = run(dataset, tmp_path / "one", lanes=1)
    _, two = run(dataset, tmp_path / "two", lanes=2)
    np.testing.assert_array_equal(one.rows, two.rows)
    pixels = np.stack([decode_image(p, CONFIG) for p in paths_of(dataset)])
    np.testing.assert_array_equal(embed_pixels(pixels), two.rows)


def test_cancel_keeps_batches_other_lanes_finished(dataset: Path, tmp_path: Path, monkeypatch, torch_threads):
    """Batches that finished while an earlier one was still running are cached, not dropped."""
    import threading

    torch_threads(2)
    token = CancelToken()
    second_done, cancelled = threading.Event(), threading.Event()
    token.on_cancel(cancelled.set)
    calls = []
    real = BackboneFeaturizer._run_network

    def ordered(self, pixels, *args):
        first = not calls
        calls.append(len(pixels))
        result = real(self, pixels, *args)
        if first:  # the first batch in order: cancel once the other lane has finished
            assert second_done.wait(30)
            token.cancel()
        else:  # the second batch: finish, and hold this lane until the cancel (no third batch)
            second_done.set()
            assert cancelled.wait(30)
        return result

    monkeypatch.setattr(BackboneFeaturizer, "_run_network", ordered)
    options = DecodeOptions(cache_dir=tmp_path / "cache")
    generator = extract_features(paths_of(dataset), options=options, root=dataset, cancel=token)
    with pytest.raises(Cancelled):
        drain(generator)
    monkeypatch.setattr(BackboneFeaturizer, "_run_network", real)
    _, result = run(dataset, tmp_path / "cache")
    assert calls == [4, 4]  # the third batch never reached the network
    assert result.from_cache == 8  # the first batch and the one the other lane finished
