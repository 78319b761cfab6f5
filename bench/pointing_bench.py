"""Does "Why?" point at the face? ``python -m bench.pointing_bench`` (docs/why.md).

Each test picture is a face or comic from the samples in ``../shared``, scaled to half the canvas
and pasted into a random quadrant; the other three quadrants are a background that holds no face:
a flat colour, noise (per pixel or blocky), or a texture made with numpy (clouds, stripes, a
checkerboard, bricks, marble). The score of one picture is the share of the map's mass inside the
pasted quadrant: 0.25 is chance, 1.0 is all on the face.

The layer, method and smoothing are chosen on pictures made from ``diverse-sample`` (seed 0) only,
then reported on pictures from the other two samples (styles-sample is one the default model never
trained on), over several seeds (a seed draws the images, quadrants and backgrounds anew).

Writes ``bench/out/pointing.json`` and, with ``--figure docs/why.png``, a sheet of example overlays
made from MIT-licensed face2comics preview tiles (``v1grid``/``v2grid``: StyleGAN faces, not real
people; see that sample's SOURCES.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "data"
TUNE_SOURCE = "diverse-sample"
REPORT_SOURCES = ("face2comics-sample", "styles-sample")
CANVAS = 320
BACKGROUNDS = ("flat", "noise", "texture")
TEXTURES = ("clouds", "stripes", "checker", "bricks", "marble")
# What the acceptance asks of the default model.
MIN_MEAN, MIN_SHARE_OVER_HALF = 0.6, 0.8
# A setting whose maps of whole face crops put more than this share of their mass on the bottom and
# right edges than on the top and left ones reads the backbone's padding, not the picture.
MAX_EDGE_LEAN = 0.05


# -- pictures ------------------------------------------------------------------------------------


def background(rng: np.random.Generator, side: int, kind: str) -> np.ndarray:
    """A (side, side, 3) uint8 picture with no face in it."""
    if kind == "flat":
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (side, side, 3)).copy()
    if kind == "noise":
        cell = int(rng.choice([1, 2, 4, 8, 16]))
        small = rng.integers(0, 256, (-(-side // cell), -(-side // cell), 3), dtype=np.uint8)
        if rng.random() < 0.3:  # grey noise
            small[..., 1] = small[..., 2] = small[..., 0]
        return np.repeat(np.repeat(small, cell, 0), cell, 1)[:side, :side]
    return texture(rng, side, str(rng.choice(TEXTURES)))


def texture(rng: np.random.Generator, side: int, kind: str) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) / side
    low, high = rng.integers(0, 256, (2, 3)).astype(np.float64)
    if kind == "clouds":  # fractal value noise: octaves of upsampled random grids
        value = np.zeros((side, side))
        for octave in range(1, 6):
            cells = 2**octave
            grid = rng.random((cells + 1, cells + 1))
            value += np.asarray(
                Image.fromarray(grid.astype(np.float32), "F").resize((side, side), Image.Resampling.BICUBIC)
            ) / (1.6**octave)
        value = (value - value.min()) / (np.ptp(value) or 1.0)
    elif kind == "stripes":
        angle, frequency = rng.uniform(0, np.pi), rng.uniform(4, 24)
        value = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)))
    elif kind == "checker":
        cells = int(rng.integers(4, 20))
        value = ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(np.float64)
    elif kind == "bricks":
        rows = int(rng.integers(6, 16))
        row = np.floor(y * rows)
        shifted = x * rows / 2 + 0.5 * (row % 2)
        mortar = (np.abs(y * rows - np.round(y * rows)) < 0.08) | (np.abs(shifted - np.round(shifted)) < 0.04)
        value = np.where(mortar, 1.0, 0.2 + 0.1 * rng.random((side, side)))
    else:  # marble: a sine bent by smooth noise
        bend = texture(rng, side, "clouds")[..., 0].astype(np.float64) / 255.0
        value = 0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(2, 8) * x + rng.uniform(2, 6) * bend))
    rgb = low + (high - low) * value[..., None]
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Composite:
    picture: Image.Image  # CANVAS x CANVAS RGB
    box: tuple[int, int, int, int]  # the pasted quadrant: left, top, right, bottom
    source: Path
    background: str
    quadrant: int


def compose(path: Path, rng: np.random.Generator, side: int = CANVAS, kind: str | None = None) -> Composite:
    """``path``'s image, centre-cropped square and scaled to half of ``side``, in a random quadrant."""
    kind = kind or str(rng.choice(BACKGROUNDS))
    canvas = Image.fromarray(background(rng, side, kind), "RGB")
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    half = side // 2
    image = ImageOps.fit(image, (half, half), Image.Resampling.BICUBIC)
    quadrant = int(rng.integers(4))
    left, top = (quadrant % 2) * half, (quadrant // 2) * half
    canvas.paste(image, (left, top))
    return Composite(canvas, (left, top, left + half, top + half), path, kind, quadrant)


def sample_paths(source: str, per_class: int, rng: np.random.Generator) -> list[Path]:
    """``per_class`` images of each class folder, drawn by ``rng`` (all when there are fewer)."""
    chosen: list[Path] = []
    for folder in ("faces", "comics"):
        files = sorted(p for p in (SAMPLES / source / folder).iterdir() if p.is_file())
        picked = rng.permutation(len(files))[:per_class]
        chosen += [files[i] for i in sorted(picked)]
    return chosen


def composites(source: str, per_class: int, seed: int) -> list[Composite]:
    rng = np.random.default_rng([seed, sum(source.encode())])
    return [compose(path, rng) for path in sample_paths(source, per_class, rng)]


# -- scoring -------------------------------------------------------------------------------------


def summary(scores: list[float]) -> dict[str, float]:
    return {
        "pictures": len(scores),
        "mean": float(np.mean(scores)) if scores else 0.0,
        "over_half": float(np.mean(np.asarray(scores) > 0.5)) if scores else 0.0,
    }


def passes(scores: list[float]) -> bool:
    """The acceptance: mean in-quadrant mass at least 0.6 and over 80% of pictures above 0.5."""
    result = summary(scores)
    return result["mean"] >= MIN_MEAN and result["over_half"] >= MIN_SHARE_OVER_HALF


def score_maps(explainer, pictures: list[Composite], wanted, smoothings) -> dict[tuple, list[float]]:
    """Scores per (layer, method, smoothing), one forward and backward pass per picture."""
    from trainer.data.preprocess import decode_image
    from trainer.prediction.explain import finish_map, pointing_score

    size = explainer.config.size
    scores: dict[tuple, list[float]] = {}
    for composite in pictures:
        pixels = decode_image(composite.picture, explainer.config)
        coarse, _, _ = explainer.coarse_maps(pixels, wanted)
        box = tuple(round(v * size / CANVAS) for v in composite.box)
        for (layer, method), raw in coarse.items():
            for smoothing in smoothings:
                heat = finish_map(raw, size, smoothing)
                scores.setdefault((layer, method, smoothing), []).append(pointing_score(heat, box))
    return scores


def edge_lean(heat: np.ndarray, band: float = 0.1) -> float:
    """The map's mass in the bottom and right bands minus that in the top and left ones (each band
    a tenth of the side). The backbone's TF "SAME" padding adds the odd pixel at the bottom and
    right of every stride-2 layer, and a map that reads that border leans there whatever the
    picture shows; on centred face crops an honest map leans little either way."""
    heat = np.asarray(heat, np.float64)
    total = heat.sum()
    if not total > 0:
        return 0.0
    n = max(1, round(band * heat.shape[0]))
    m = max(1, round(band * heat.shape[1]))
    return float((heat[-n:].sum() + heat[:, -m:].sum() - heat[:n].sum() - heat[:, :m].sum()) / total)


def lean_of_maps(explainer, paths: list[Path], wanted, smoothings) -> dict[tuple, float]:
    """Mean ``edge_lean`` per (layer, method, smoothing) over whole sample images (no canvas)."""
    from trainer.data.preprocess import decode_image
    from trainer.prediction.explain import finish_map

    size = explainer.config.size
    leans: dict[tuple, list[float]] = {}
    for path in paths:
        coarse, _, _ = explainer.coarse_maps(decode_image(path, explainer.config), wanted)
        for (layer, method), raw in coarse.items():
            for smoothing in smoothings:
                heat = finish_map(raw, size, smoothing)
                leans.setdefault((layer, method, smoothing), []).append(edge_lean(heat))
    return {key: float(np.mean(values)) for key, values in leans.items()}


def score_explainer(explainer, pictures: list[Composite]) -> list[float]:
    """The shipped path end to end: ``Explainer.explain`` on the picture, the map stretched over
    the canvas, the quadrant's share."""
    from trainer.prediction.explain import pointing_score

    return [pointing_score(explainer.explain(c.picture).heat_at((CANVAS, CANVAS)), c.box) for c in pictures]


# -- models --------------------------------------------------------------------------------------


def pixel_model(cache: Path):
    """A paper-recipe pixel model on face2comics + diverse (as ``make model`` gathers them)."""
    from trainer.common.configs import PAPER_GRID, DecodeOptions, TrainConfig
    from trainer.common.events import drain
    from trainer.model.model_file import load_model, save_model
    from trainer.training.experiment import run_experiment

    if cache.exists():
        return load_model(cache)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for folder in ("faces", "comics"):
            (root / folder).mkdir(parents=True)
            for source in ("face2comics-sample", "diverse-sample"):
                for path in sorted((SAMPLES / source / folder).iterdir()):
                    shutil.copyfile(path, root / folder / f"{source}__{path.name}")
        result = drain(
            run_experiment(
                root,
                config=TrainConfig(features="pixels", split="random", seed=0),
                grid=PAPER_GRID,
                decode=DecodeOptions(use_cache=False),
            )
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_model(cache, result)
    print(f"pixel model: holdout accuracy {result.holdout.accuracy:.3f}", flush=True)
    return load_model(cache)


# -- the figure ----------------------------------------------------------------------------------


def figure(explainer, out: Path, count: int = 8, seed: int = 0) -> None:
    """A sheet of pictures (top) and their "Why?" overlays (below), from MIT-licensed tiles."""
    from trainer.data.dataset import display_name
    from trainer.prediction.explain import answer_text, blend, draw_label, pointing_score

    rng = np.random.default_rng(seed)
    tiles = sorted(
        p
        for folder in ("faces", "comics")
        for p in (SAMPLES / "face2comics-sample" / folder).glob("v[12]grid_*.jpg")
    )
    chosen = [tiles[i] for i in rng.permutation(len(tiles))[:count]]
    side, gap = 240, 8
    sheet = Image.new("RGB", (count * (side + gap) - gap, 2 * side + gap), "white")
    for i, path in enumerate(chosen):
        kind = BACKGROUNDS[i % len(BACKGROUNDS)]
        composite = compose(path, rng, kind=kind)
        explanation = explainer.explain(composite.picture)
        heat = explanation.heat_at((CANVAS, CANVAS))
        name = explainer.loaded.class_names[explanation.class_index]
        text = answer_text(display_name(name), float(explanation.probabilities[explanation.class_index]))
        text += f" · {pointing_score(heat, composite.box):.2f}"
        overlay = draw_label(blend(composite.picture, heat), text)
        left = i * (side + gap)
        sheet.paste(composite.picture.resize((side, side)), (left, 0))
        sheet.paste(overlay.resize((side, side), Image.Resampling.LANCZOS), (left, side + gap))
    out.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours: a quarter of the bytes (the noise backgrounds do not compress), no visible loss.
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        out, optimize=True
    )
    print(f"figure written to {out}")


# -- main ----------------------------------------------------------------------------------------


def sweep(explainer, kind: str, per_class: int) -> tuple[dict, tuple]:
    """Every layer and method on the tuning pictures; the best by mean score."""
    from trainer.features.base import EXPLAIN_INPUT as INPUT

    layers = [n for n in explainer.featurizer.stages() if n != "stem"]  # none for pixels
    wanted = [(layer, method) for layer in layers for method in ("gradcam", "layercam")]
    wanted += [(INPUT, "gradient_x_input"), (INPUT, "saliency")]
    smoothings = (0.0, 0.03, 0.06, 0.1)
    pictures = composites(TUNE_SOURCE, per_class, seed=0)
    start = time.perf_counter()
    scores = score_maps(explainer, pictures, wanted, smoothings)
    print(
        f"{kind}: swept {len(scores)} settings on {len(pictures)} pictures in {time.perf_counter() - start:.0f}s"
    )
    leans = lean_of_maps(explainer, sorted({c.source for c in pictures}), wanted, smoothings)
    table = {
        f"{layer} {method} {smoothing:g}": {**summary(s), "edge_lean": leans[layer, method, smoothing]}
        for (layer, method, smoothing), s in scores.items()
    }
    # The best mean among maps that do not lean on the frame's bottom and right edges.
    fair = [key for key in scores if abs(leans[key]) <= MAX_EDGE_LEAN] or list(scores)
    best = max(fair, key=lambda key: (np.mean(scores[key]), np.mean(np.asarray(scores[key]) > 0.5)))
    for (layer, method, smoothing), s in scores.items():
        r = summary(s)
        mark = " *" if (layer, method, smoothing) == best else ""
        print(
            f"  {layer:10s} {method:17s} smoothing {smoothing:<4g} mean {r['mean']:.3f}  >0.5 {r['over_half']:.0%}"
            f"  edge lean {leans[layer, method, smoothing]:+.3f}{mark}"
        )
    return table, best


def report(explainer, per_class: int, seeds: list[int]) -> dict:
    """The shipped settings, end to end, on the report sources, per seed."""
    rows = {}
    for source in REPORT_SOURCES:
        per_seed = []
        by_background: dict[str, list[float]] = {}
        for seed in seeds:
            pictures = composites(source, per_class, seed)
            scores = score_explainer(explainer, pictures)
            per_seed.append(summary(scores))
            for c, s in zip(pictures, scores, strict=True):
                by_background.setdefault(c.background, []).append(s)
        means = [r["mean"] for r in per_seed]
        shares = [r["over_half"] for r in per_seed]
        rows[source] = {
            "per_seed": per_seed,
            "mean": statistics.fmean(means),
            "mean_range": [min(means), max(means)],
            "over_half": statistics.fmean(shares),
            "over_half_range": [min(shares), max(shares)],
            "by_background": {k: summary(v) for k, v in sorted(by_background.items())},
        }
        print(
            f"  {source:20s} mean {rows[source]['mean']:.3f} (seeds {min(means):.3f}-{max(means):.3f})  "
            f">0.5 {rows[source]['over_half']:.0%} ({min(shares):.0%}-{max(shares):.0%})  "
            + "  ".join(f"{k} {v['mean']:.2f}" for k, v in rows[source]["by_background"].items()),
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "assets" / "facecomic-default.safetensors")
    parser.add_argument(
        "--pixel-model", type=Path, default=REPO / "bench" / "out" / "pointing-pixels.safetensors"
    )
    parser.add_argument(
        "--kinds", nargs="+", default=["pretrained", "pixels"], choices=["pretrained", "pixels"]
    )
    parser.add_argument("--per-class", type=int, default=40, help="images per class and source per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-sweep", action="store_true", help="only report the shipped settings")
    parser.add_argument("--figure", type=Path, help="write example overlays here (e.g. docs/why.png)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pointing.json")
    args = parser.parse_args(argv)
    if not SAMPLES.is_dir():
        print(f"The samples are not at {SAMPLES}.", file=sys.stderr)
        return 2
    import torch

    from trainer.model.model_file import load_model
    from trainer.prediction.explain import Explainer, default_settings

    torch.manual_seed(0)
    results = {"canvas": CANVAS, "per_class": args.per_class, "seeds": args.seeds, "kinds": {}}
    for kind in args.kinds:
        loaded = load_model(args.model) if kind == "pretrained" else pixel_model(args.pixel_model)
        explainer = Explainer(loaded)
        entry: dict = {"model": str(args.model if kind == "pretrained" else args.pixel_model)}
        if not args.no_sweep:
            entry["sweep"], best = sweep(explainer, kind, args.per_class)
            entry["best_on_tuning"] = list(best)
        shipped = default_settings(loaded)
        print(f"{kind}: shipped {shipped.name}, on the report sources:")
        entry["shipped"] = {"layer": shipped.layer, "method": shipped.method, "smoothing": shipped.smoothing}
        start = time.perf_counter()
        entry["report"] = report(explainer, args.per_class, args.seeds)
        pictures = sum(r["per_seed"][0]["pictures"] for r in entry["report"].values()) * len(args.seeds)
        entry["seconds_per_picture"] = (time.perf_counter() - start) / pictures
        results["kinds"][kind] = entry
        if kind == "pretrained" and args.figure:
            figure(explainer, args.figure)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
