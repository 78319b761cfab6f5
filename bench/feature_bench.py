"""Pretrained-feature mode: extraction speed and cross-source accuracy per backbone input size.

``PYTHONPATH=. python -m bench.feature_bench [--sizes 128 160 192 224] [--quick]`` prints:
1. cold (decode + network) and warm (cached) extraction throughput over both sample sets, with the
   decode (summed over threads) / network split;
2. network-only throughput at 224 px by memory format, batch size and torch thread count;
3. accuracy of the paper's head shape (1280-128-128-2, plain SGD, batch 64) trained on one source
   and scored on the other, and within face2comics-sample (random 70/30, stratified), per lr x epochs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainer.common.configs import DecodeOptions
from trainer.common.cpu import CpuBudget
from trainer.common.events import drain
from trainer.data.preprocess import decode_image
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.efficientnet import backbone_preprocess, load_backbone
from trainer.model.mlp import build_model, paper_architecture

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SOURCES = ("face2comics-sample", "diverse-sample")
CLASSES = ("faces", "comics")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def files_of(name: str) -> tuple[Path, list[Path], np.ndarray]:
    root = (DATA / name).resolve()
    paths, labels = [], []
    for label, cls in enumerate(CLASSES):
        found = sorted(p for p in (root / cls).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += found
        labels += [label] * len(found)
    return root, paths, np.array(labels)


def extract_all(size: int, cache_dir: Path) -> tuple[dict, dict]:
    """Cold then warm extraction of both sources; embeddings and labels per source."""
    featurizer = BackboneFeaturizer(backbone_preprocess(size))
    options = DecodeOptions(cache_dir=cache_dir)
    data, stats = {}, {"n": 0, "cold": 0.0, "warm": 0.0, "decode": 0.0, "network": 0.0}
    for name in SOURCES:
        root, paths, labels = files_of(name)
        cold = drain(featurizer.extract(paths, options=options, root=root))
        warm = drain(featurizer.extract(paths, options=options, root=root))
        assert warm.from_cache == len(paths) and np.array_equal(cold.rows, warm.rows)
        data[name] = (cold.rows, labels[cold.ok_indices])
        stats["n"] += len(paths)
        stats["cold"] += cold.seconds
        stats["warm"] += warm.seconds
        stats["decode"] += cold.decode_seconds
        stats["network"] += cold.network_seconds
    return data, stats


def network_variants(count: int) -> None:
    config = backbone_preprocess(224)
    _, paths, _ = files_of(SOURCES[0])
    pixels = np.stack([decode_image(p, config) for p in paths[:count]])
    load_backbone()
    print(f"\nnetwork only, 224 px, {count} images (images/s)")
    print("threads  batch  contiguous  channels_last")
    default_threads = torch.get_num_threads()
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        budget = CpuBudget(lanes=1, decode_workers=1)  # one stream with ``threads`` torch threads
        for batch in (8, 32, 64):
            row = []
            for channels_last in (False, True):
                featurizer = BackboneFeaturizer(config, runtime="torch", channels_last=channels_last)
                featurizer.rows_from_pixels(pixels[:batch], budget=budget, batch_size=batch)
                start = time.perf_counter()
                featurizer.rows_from_pixels(pixels, budget=budget, batch_size=batch)
                row.append(count / (time.perf_counter() - start))
            print(f"{threads:7d}  {batch:5d}  {row[0]:10.1f}  {row[1]:13.1f}")
    torch.set_num_threads(default_threads)


def train_head(x: np.ndarray, y: np.ndarray, lr: float, epochs: int, seed: int = 0) -> torch.nn.Module:
    """The paper's recipe on embeddings: MLP 1280-128-128-2, plain SGD, batch 64, cross-entropy."""
    generator = torch.Generator().manual_seed(seed)  # shuffling; the init has its own (build_model)
    model = build_model(paper_architecture(x.shape[1], 2), seed=seed)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            batch = order[start : start + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def stratified_split(y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        cut = round(len(idx) * fraction)
        train += idx[:cut].tolist()
        test += idx[cut:].tolist()
    return np.array(train), np.array(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 160, 192, 224])
    parser.add_argument("--lr", nargs="+", type=float, default=[0.1, 0.01, 0.001])
    parser.add_argument("--epochs", nargs="+", type=int, default=[5, 20, 50])
    parser.add_argument("--variant-images", type=int, default=64)
    parser.add_argument("--skip-variants", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    embeddings = {}
    print("\nextraction over both sample sets (images/s; decode s summed over threads)")
    print("size  images  cold/s  warm/s  decode_s  network_s")
    with tempfile.TemporaryDirectory() as cache:
        for size in args.sizes:
            data, s = extract_all(size, Path(cache))
            embeddings[size] = data
            print(
                f"{size:4d}  {s['n']:6d}  {s['n'] / s['cold']:6.1f}  {s['n'] / s['warm']:6.0f}"
                f"  {s['decode']:8.1f}  {s['network']:9.1f}",
                flush=True,
            )
    if not args.skip_variants:
        network_variants(args.variant_images)
    print("\nhead accuracy: f2c->div (train face2comics, score diverse), div->f2c, f2c 70/30 holdout")
    print("size  lr      epochs  f2c->div  div->f2c  f2c-holdout")
    for size, data in embeddings.items():
        xf, yf = data["face2comics-sample"]
        xd, yd = data["diverse-sample"]
        tr, te = stratified_split(yf, 0.7)
        for lr in args.lr:
            for epochs in args.epochs:
                a = accuracy(train_head(xf, yf, lr, epochs), xd, yd)
                b = accuracy(train_head(xd, yd, lr, epochs), xf, yf)
                c = accuracy(train_head(xf[tr], yf[tr], lr, epochs), xf[te], yf[te])
                print(f"{size:4d}  {lr:<6g}  {epochs:6d}  {a:8.3f}  {b:8.3f}  {c:11.3f}", flush=True)


if __name__ == "__main__":
    main()
