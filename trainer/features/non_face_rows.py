"""The rows of the synthetic non-faces (``trainer.data.non_faces``) for a featurizer: shipped in
``assets/`` for the default settings, else computed once and cached.

They are the same for every run, so the default settings' ones ship (``make model`` writes them;
a test checks them against a fresh computation): a cold first run would otherwise spend about 3 s
of 2 cores on them. The file is named by everything they depend on (generator, featurizer
identity, preprocessing), so a stale one is never read; a damaged one is a miss, never a failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.common.assets import assets_dir
from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.common.checksum import key_digest
from trainer.common.configs import DecodeOptions
from trainer.common.cpu import CpuBudget
from trainer.data.cache_file import CacheMiss, read_arrays, write_arrays
from trainer.data.non_faces import NEGATIVES, generator_description, non_face_pixels
from trainer.features.cache import store_quietly

if TYPE_CHECKING:
    from trainer.features.base import Featurizer

FORMAT = 1


def non_face_file_name(featurizer: Featurizer) -> str:
    digest = key_digest(
        {
            "generator": generator_description(),
            "features": featurizer.identity,
            "preprocess": featurizer.preprocess.to_dict(),
            "format": FORMAT,
        }
    )
    return f"non-faces-{featurizer.kind}-{featurizer.preprocess.size}-{digest}.npz"


def cached_non_face_rows(
    featurizer: Featurizer,
    *,
    options: DecodeOptions = DecodeOptions(),
    budget: CpuBudget | None = None,
    device: str = "cpu",
    cancel: CancelToken = NEVER_CANCELLED,
) -> tuple[np.ndarray, bool]:
    """The rows, and whether they were read (from ``assets/`` or the cache) rather than computed."""
    name = non_face_file_name(featurizer)
    cached_path = options.resolved_cache_dir / name

    def expected(headers) -> str | None:
        shape, dtype = headers["rows"]
        if dtype != np.float32 or shape != (NEGATIVES, featurizer.row_size):
            return f"rows of dtype {dtype} and shape {shape}"
        return None

    for path in (assets_dir() / name, cached_path if options.use_cache else None):
        if path is None:
            continue
        try:
            found = read_arrays(path, ("rows",), expected)
        except CacheMiss:  # an optimisation, never a failure: computed again below
            continue
        if found is not None:
            return found["rows"], True
    rows = compute_non_face_rows(featurizer, budget or CpuBudget.from_options(options), device, cancel)
    if options.use_cache:
        store_quietly(cached_path, lambda: write_arrays(cached_path, {"rows": rows}))
    return rows, False


def compute_non_face_rows(
    featurizer: Featurizer, budget: CpuBudget, device: str = "cpu", cancel: CancelToken = NEVER_CANCELLED
) -> np.ndarray:
    pixels = non_face_pixels(featurizer.preprocess)
    return featurizer.rows_from_pixels(pixels, budget=budget, device=device, cancel=cancel).astype(np.float32)


def write_non_face_asset(featurizer: Featurizer, directory: Path) -> Path:
    """Compute the rows and write them to ``directory`` under their own name (``make model``
    writes the default featurizer's into ``assets/``)."""
    path = Path(directory) / non_face_file_name(featurizer)
    write_arrays(path, {"rows": compute_non_face_rows(featurizer, CpuBudget.all_cores())})
    return path
