"""Realistic large JPEGs for the benchmark, made from the real sample: upscaled to 1024x1024,
jittered (crop, brightness, contrast, noise) and saved at quality about 90. Cached on disk."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

SIDE = 1024


def _make_one(args: tuple[str, str, int]) -> None:
    source, target, seed = args
    rng = np.random.default_rng(seed)
    with Image.open(source) as im:
        image = im.convert("RGB")
    w, h = image.size
    scale = rng.uniform(0.85, 1.0)
    cw, ch = int(w * scale), int(h * scale)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image.crop((left, top, left + cw, top + ch)).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.9, 1.1))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 3.0, (SIDE, SIDE, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        target, "JPEG", quality=int(rng.integers(88, 93))
    )


def ensure_bench_data(sample: Path, out_root: Path, n_images: int) -> Path:
    """``out_root/n{N}/{faces,comics}/{i}.jpg``, N/2 per class; made once, then reused."""
    root = out_root / f"n{n_images}"
    done = root / ".complete"
    if done.exists():
        return root
    per_class = n_images // 2
    jobs = []
    for class_name in ("faces", "comics"):
        sources = sorted((sample / class_name).glob("*.jpg"))
        if not sources:
            raise SystemExit(f"No sample images in {sample / class_name}; is ../shared beside the checkout?")
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            seed = i * 2 + (class_name == "comics")
            jobs.append((str(sources[i % len(sources)]), str(folder / f"{i}.jpg"), seed))
    print(f"Generating {len(jobs):,} 1024x1024 JPEGs in {root} (once; cached for later runs)…", flush=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_make_one, jobs, chunksize=16))
    done.write_text("ok\n")
    return root
