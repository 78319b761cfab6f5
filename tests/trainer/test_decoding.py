from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.helpers import collect
from trainer.common.cancel import CancelToken
from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.errors import Cancelled
from trainer.common.events import FeaturesProgressed
from trainer.data.dataset import scan_dataset
from trainer.data.preprocess import decode_image, to_model_input
from trainer.data.synthetic import make_dataset
from trainer.features.cache import FeatureCache
from trainer.features.pixels import PixelFeaturizer
from trainer.features.types import Failure

CFG = PreprocessConfig()


def decode_files(paths, config, options, *, root=None, cancel=None):
    """The paper's pixel rows through the one pipeline (cached uint8 pixels, normalised rows)."""
    kwargs = {"cancel": cancel} if cancel is not None else {}
    return PixelFeaturizer(config).extract(paths, root=root, options=options, **kwargs)


def row(path: Path, config: PreprocessConfig = CFG) -> np.ndarray:
    return to_model_input(decode_image(path, config)[None], config).numpy()[0]


def paths_of(root: Path) -> list[Path]:
    return [p for files in scan_dataset(root).files for p in files]


def run(root: Path, cache_dir: Path, **options):
    return collect(
        decode_files(paths_of(root), CFG, DecodeOptions(cache_dir=cache_dir, **options), root=root)
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_decodes_in_order_with_progress(dataset: Path, tmp_path: Path, workers: int):
    events, result = run(dataset, tmp_path / "c", workers=workers)
    paths = paths_of(dataset)
    assert len(result.rows) == len(paths) == 40
    assert np.array_equal(result.rows[7], row(paths[7]))
    assert all(isinstance(e, FeaturesProgressed) for e in events)
    assert events[-1].done == events[-1].total == 40


def test_second_run_comes_from_the_cache(dataset: Path, tmp_path: Path):
    _, first = run(dataset, tmp_path / "c")
    _, second = run(dataset, tmp_path / "c")
    assert first.from_cache == 0 and second.from_cache == 40
    assert np.array_equal(first.rows, second.rows)


def test_changed_file_is_decoded_again(dataset: Path, tmp_path: Path):
    run(dataset, tmp_path / "c")
    target = dataset / "faces" / "3.png"
    target.write_bytes((dataset / "comics" / "0.png").read_bytes())  # new content, size and mtime
    os.utime(target, ns=(1, 1))
    _, result = run(dataset, tmp_path / "c")
    assert result.from_cache == 39
    assert np.array_equal(result.rows[-17], row(target))


def test_cache_is_keyed_by_preprocessing(dataset: Path, tmp_path: Path):
    run(dataset, tmp_path / "c")
    small = PreprocessConfig(size=32)
    options = DecodeOptions(cache_dir=tmp_path / "c")
    _, other = collect(decode_files(paths_of(dataset), small, options, root=dataset))
    assert other.from_cache == 0  # 24-px pixels are not reused for 32 px
    assert other.rows.shape == (40, 3 * 32 * 32)
    assert np.array_equal(other.rows[5], row(paths_of(dataset)[5], small))
    _, again = run(dataset, tmp_path / "c")
    assert again.from_cache == 40 and again.rows.shape == (40, 3 * 24 * 24)  # both kept


def test_no_cache_option_writes_nothing(dataset: Path, tmp_path: Path):
    run(dataset, tmp_path / "c", use_cache=False)
    assert not (tmp_path / "c").exists()


def test_corrupt_cache_is_ignored_and_rewritten(dataset: Path, tmp_path: Path):
    run(dataset, tmp_path / "c")
    cache_file = next((tmp_path / "c").iterdir())
    cache_file.write_bytes(b"garbage")
    _, result = run(dataset, tmp_path / "c")
    assert result.from_cache == 0
    _, again = run(dataset, tmp_path / "c")
    assert again.from_cache == 40


def test_unreadable_files_are_reported_and_remembered(dataset: Path, tmp_path: Path):
    (dataset / "faces" / "broken.jpg").write_bytes(b"not a jpeg")
    _, result = run(dataset, tmp_path / "c")
    paths = paths_of(dataset)
    bad = paths.index(dataset / "faces" / "broken.jpg")
    assert result.errors == {bad: "not a readable image (unknown format or corrupt header)"}
    assert len(result.rows) == 40
    _, again = run(dataset, tmp_path / "c")
    assert again.errors == result.errors and again.from_cache == 41


def test_cancel_keeps_a_valid_cache_and_no_temp_files(tmp_path: Path):
    root = make_dataset(tmp_path / "data", 200)
    token = CancelToken()
    gen = decode_files(
        paths_of(root), CFG, DecodeOptions(workers=2, cache_dir=tmp_path / "c"), root=root, cancel=token
    )
    while next(gen).done == 0:  # some images decoded, most still to go
        pass
    token.cancel()
    with pytest.raises(Cancelled):
        collect(gen)
    files = list((tmp_path / "c").iterdir())
    assert [f.suffix for f in files] == [".npz"], files  # no .part left behind
    cached = FeatureCache(tmp_path / "c", root, PixelFeaturizer(CFG)).load()
    assert 0 < len(cached) < 400  # what was done is kept, atomically
    assert not any(isinstance(entry, Failure) for entry in cached.values())
    _, result = run(root, tmp_path / "c")
    assert result.from_cache == len(cached)
    assert len(result.rows) == 400
    fresh = np.stack([row(p) for p in paths_of(root)])
    assert np.array_equal(result.rows, fresh)  # what came from the cache is what decoding gives


def test_access_problems_are_not_cached(dataset: Path, tmp_path: Path):
    """A file that cannot be opened now may be readable later without changing: not remembered."""
    paths = [*paths_of(dataset), dataset / "faces" / "vanished.png"]
    options = DecodeOptions(cache_dir=tmp_path / "c")
    _, first = collect(decode_files(paths, CFG, options, root=dataset))
    assert first.errors == {40: "the file does not exist"}
    (dataset / "faces" / "vanished.png").write_bytes((dataset / "faces" / "0.png").read_bytes())
    _, second = collect(decode_files(paths, CFG, options, root=dataset))
    assert second.errors == {} and second.from_cache == 40
