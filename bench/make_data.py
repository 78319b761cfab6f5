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
    part = f"{target}.part"  # renamed when complete, so an interrupted run leaves no bad JPEG
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        part, "JPEG", quality=int(rng.integers(88, 93))
    )
    os.replace(part, target)


def ensure_bench_data(sample: Path, out_root: Path, n_images: int) -> Path:
    """``out_root/n{N}/{faces,comics}/{i}.jpg``, N/2 per class; made once, then reused."""
    root = out_root / f"n{n_images}"
    done = root / ".complete"
    if done.exists():
        return root
    per_class = n_images // 2
    if _link_from_larger(out_root, root, per_class):
        done.write_text("ok\n")
        return root
    jobs = []
    for class_name in ("faces", "comics"):
        sources = sorted((sample / class_name).glob("*.jpg"))
        if not sources:
            raise SystemExit(f"No sample images in {sample / class_name}; is ../shared beside the checkout?")
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            seed = i * 2 + (class_name == "comics")
            if not (folder / f"{i}.jpg").exists():  # left by an interrupted run
                jobs.append((str(sources[i % len(sources)]), str(folder / f"{i}.jpg"), seed))
    print(f"Generating {len(jobs):,} 1024x1024 JPEGs in {root} (once; cached for later runs)…", flush=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_make_one, jobs, chunksize=16))
    done.write_text("ok\n")
    return root


def _link_from_larger(out_root: Path, root: Path, per_class: int) -> bool:
    """File ``i`` of a class has the same seed and source in every set, so a smaller set is the
    first files of a larger complete one: hard-link them (copy across file systems)."""
    import shutil

    larger = sorted(
        (p for p in out_root.glob("n*") if (p / ".complete").exists() and p.name[1:].isdigit()),
        key=lambda p: int(p.name[1:]),
    )
    larger = [p for p in larger if int(p.name[1:]) // 2 >= per_class]
    if not larger:
        return False
    for class_name in ("faces", "comics"):
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            source, target = larger[0] / class_name / f"{i}.jpg", folder / f"{i}.jpg"
            target.unlink(missing_ok=True)  # perhaps half-written by an interrupted generation
            try:
                target.hardlink_to(source)
            except OSError:
                shutil.copy2(source, target)
    return True
