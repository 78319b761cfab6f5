"""Tiny synthetic images: smooth noisy "photos" vs flat outlined "comics", separable by colour.

Used by the tests and by ``facecomic --self-test``, which must not need any file from outside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def face_like(rng: np.random.Generator, size: int = 48) -> Image.Image:
    _, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.35, 0.75, 3)
    img = base + 0.25 * (x[..., None] - 0.5) * rng.uniform(-1, 1, 3) + rng.normal(0, 0.06, (size, size, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


def comic_like(rng: np.random.Generator, size: int = 48) -> Image.Image:
    img = np.empty((size, size, 3), np.float64)
    img[:] = rng.choice([[1.0, 0.9, 0.1], [0.1, 0.7, 1.0], [1.0, 0.3, 0.5], [0.2, 1.0, 0.4]])
    split = rng.integers(size // 4, 3 * size // 4)
    img[:, split:] = rng.choice([[1.0, 1.0, 1.0], [0.95, 0.2, 0.2]])
    img[:, split - 1 : split + 1] = 0.0
    img[[0, -1], :] = 0.0
    return Image.fromarray((img * 255).astype(np.uint8), "RGB")


def make_dataset(
    root: Path,
    n_per_class: int = 20,
    *,
    names: tuple[str, str] = ("faces", "comics"),
    paired: bool = True,
    seed: int = 0,
    ext: str = ".png",
) -> Path:
    """``root/faces`` and ``root/comics``; with ``paired`` the files share names (one person each)."""
    rng = np.random.default_rng(seed)
    for class_name, draw in zip(names, (face_like, comic_like), strict=True):
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            stem = f"{i}" if paired else f"{class_name}_{i}"
            draw(rng).save(folder / f"{stem}{ext}")
    return root
