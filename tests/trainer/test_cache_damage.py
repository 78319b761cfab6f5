"""A damaged cache is a miss, never a failure: each form of damage below is ignored, said once and
rebuilt, and ``facecomic-train`` succeeds and says so."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from tests.trainer.helpers import collect
from trainer.cli import train_main
from trainer.common.configs import DecodeOptions, PreprocessConfig
from trainer.common.events import CacheDiscarded
from trainer.data.cache_file import CacheMiss, read_arrays
from trainer.data.synthetic import make_dataset
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.cache import FeatureCache
from trainer.features.efficientnet import EMBEDDING_SIZE, backbone_preprocess
from trainer.features.pixels import PixelFeaturizer

FAST = ["--features", "pixels", "--lr", "0.05", "--epochs", "1", "-q"]


def npz_bytes(members: dict[str, bytes]) -> bytes:
    """A zip of raw ``.npy`` members, stored, as ``np.savez`` writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_claiming(shape: tuple[int, ...], dtype: str, data: bytes = b"") -> bytes:
    """A ``.npy`` whose header claims ``shape`` whatever data follows."""
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def decode_cache_of(n: int, pixel_array: np.ndarray | None = None, **members: bytes) -> bytes:
    """A decode cache of ``n`` entries; ``members`` replace its arrays' raw ``.npy`` bytes."""
    keys = np.array([f"k{i}" for i in range(n)])
    arrays = {
        "keys": npy(keys),
        "entries": npy(np.zeros((n, 24, 24, 3), np.uint8) if pixel_array is None else pixel_array),
        "errors": npy(np.array([""] * n)),
    }
    arrays.update(members)
    return npz_bytes(arrays)


def unknown_compression(data: bytes) -> bytes:
    """Every member marked with compression method 99, which zipfile does not know."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (at := patched.find(signature, start)) >= 0:
            patched[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
            start = at + 4
    return bytes(patched)


DAMAGE = {
    "unknown zip compression method": lambda: unknown_compression(decode_cache_of(3)),
    "huge declared shape": lambda: decode_cache_of(
        3, entries=npy_claiming((10**11, 24, 24, 3), "|u1", b"\0" * 100)
    ),
    "float64 pixels": lambda: decode_cache_of(3, np.full((3, 24, 24, 3), 0.5)),
    "int64 pixels": lambda: decode_cache_of(3, np.full((3, 24, 24, 3), 300, np.int64)),
    "wrong pixel shape": lambda: decode_cache_of(3, np.zeros((3, 32, 32, 3), np.uint8)),
    "arrays of different lengths": lambda: decode_cache_of(3, keys=npy(np.array(["a"]))),
    "truncated": lambda: decode_cache_of(3)[:300],
    "not a zip": lambda: b"garbage",
    "a pickled object array": lambda: npz_bytes({"keys": npy(np.array([{}], dtype=object))}),
}


def decode_cache_path(root: Path) -> Path:
    return FeatureCache(DecodeOptions().resolved_cache_dir, root, PixelFeaturizer(PreprocessConfig())).path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", [*DAMAGE, "a FIFO"])
def test_train_rebuilds_a_damaged_decode_cache(tmp_path: Path, capsys, damage: str):
    root = make_dataset(tmp_path / "data", 6)
    cache = decode_cache_path(root)
    cache.parent.mkdir(parents=True, exist_ok=True)
    if damage == "a FIFO":
        os.mkfifo(cache)  # a reader would wait forever for a writer
    else:
        cache.write_bytes(DAMAGE[damage]())
    assert train_main([str(root), *FAST]) == 0
    captured = capsys.readouterr()
    assert f"The cache {cache} could not be used (" in captured.out
    assert "; it was rebuilt." in captured.out
    assert "Traceback" not in captured.err
    assert cache.is_file() and len(FeatureCache(cache.parent, root, PixelFeaturizer()).load()) == 12
    # The rebuilt cache serves the next run, which says nothing about it.
    assert train_main([str(root), *FAST]) == 0
    again = capsys.readouterr().out
    assert "from cache" in again and "could not be used" not in again


def test_a_huge_declared_shape_is_refused_before_allocating(tmp_path: Path):
    path = tmp_path / "c.npz"
    path.write_bytes(npz_bytes({"pixels": npy_claiming((10**11, 24, 24, 3), "|u1")}))
    with pytest.raises(CacheMiss, match="declares 172,800,000,000,000 bytes of data but holds 0"):
        read_arrays(path, ("pixels",), lambda headers: None)


def test_a_missing_cache_is_no_miss(tmp_path: Path):
    assert read_arrays(tmp_path / "none.npz", ("keys",), lambda headers: None) is None


def test_a_cache_that_cannot_be_rewritten_says_so(tmp_path: Path, capsys):
    """A folder at the cache's name cannot be replaced: the run still succeeds, and says why the
    next run will decode again."""
    root = make_dataset(tmp_path / "data", 6)
    cache = decode_cache_path(root)
    (cache / "inside").mkdir(parents=True)
    assert train_main([str(root), *FAST]) == 0
    out = capsys.readouterr().out
    assert "could not be used (not a regular file: a folder); it could not be rewritten" in out


CONFIG = backbone_preprocess(32)  # a small input keeps the network fast; the code path is the same


@pytest.mark.parametrize(
    "damage",
    ["float64 features", "huge declared shape", "unknown zip compression method"],
)
def test_a_damaged_feature_cache_is_rebuilt(tmp_path: Path, damage: str):
    root = make_dataset(tmp_path / "data", 3)
    paths = sorted(root.rglob("*.png"))
    options = DecodeOptions(workers=1, cache_dir=tmp_path / "cache")
    cache = FeatureCache(tmp_path / "cache", root, BackboneFeaturizer(CONFIG)).path
    cache.parent.mkdir()
    members = {
        "keys": npy(np.array(["k"])),
        "entries": npy(np.zeros((1, EMBEDDING_SIZE))),  # float64
        "errors": npy(np.array([""])),
    }
    if damage == "huge declared shape":
        members["entries"] = npy_claiming((10**12, EMBEDDING_SIZE), "<f4")
    data = npz_bytes(members)
    cache.write_bytes(unknown_compression(data) if damage == "unknown zip compression method" else data)
    events, result = collect(BackboneFeaturizer(CONFIG).extract(paths, options=options, root=root))
    assert result.rows.shape == (6, EMBEDDING_SIZE) and result.from_cache == 0
    discarded = [e for e in events if isinstance(e, CacheDiscarded)]
    assert len(discarded) == 1 and discarded[0].rewritten and discarded[0].path == str(cache)
    _, again = collect(BackboneFeaturizer(CONFIG).extract(paths, options=options, root=root))
    assert again.from_cache == 6
