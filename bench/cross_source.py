"""Generalisation across sources and stability across seeds (``make cross``).

Three real samples sit in ``../shared/data``: face2comics (StyleGAN faces, one comic style),
diverse (real photos, many drawn styles) and styles (hard photos: masks, profiles, old and
black-and-white; caricatures, webtoon, manga, pixel art, sketches). Scores here come from images
that nothing in the run trained or tuned on:

1. Across sources, seeds 0-4, the default linear head against one MLP and the MLP ensemble of 5
   (the default before it): trained on face2comics and scored on every image of diverse, and each
   sample scored by a model trained on the other two. Also the paper's pixel MLP, seed 0, for
   contrast. (``make stability`` holds each sample out over seeds 0-9 and measures disagreement.)
2. Stability: the default recipe on all three samples with the split held fixed (split seed 0)
   and the training seed varied over 0-4; the spread of the holdout accuracy.
3. With ``--grids``: why the MLP ensemble's grid. Candidate grids for the ensemble, each sample
   scored by a model trained on the other two, seeds 0-4, with the SGD steps each costs.

Writes ``bench/out/cross_source.json`` and prints the tables docs/accuracy.md and MODEL.md quote.
Each merged training folder is a copy (mtimes kept) under ``bench/data/cross/``; embeddings are
cached, so only the first run extracts them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
from trainer.common.events import drain
from trainer.data.dataset import scan_dataset
from trainer.features.registry import featurizer_for
from trainer.model.model_file import model_from_result
from trainer.model.results import flag_for
from trainer.prediction.predictor import Predictor
from trainer.training.experiment import run_experiment

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "data"
SOURCES = ("face2comics-sample", "diverse-sample", "styles-sample")
WORK = REPO / "bench" / "data" / "cross"
SEEDS = range(5)
# The heads compared in section 1: the default (linear), and the MLP with one head or five.
HEADS = {"linear (default)": TrainConfig(), "MLP, 1 head": TrainConfig(head="mlp", heads=1),
         "MLP ensemble of 5": TrainConfig(head="mlp", heads=5)}  # fmt: skip
# The paper's pixel MLP with a grid that learns on these small samples (its own under-trains).
PIXEL_GRID = GridSpec((0.01, 0.03, 0.1), (50, 100, 200))


def merged(sources: tuple[str, ...]) -> Path:
    """One folder per class holding the given samples, each in its own subfolder (so face2comics
    pairs stay paired); copied once, with their mtimes, so cached embeddings stay valid."""
    if len(sources) == 1:
        return SAMPLES / sources[0]
    root = WORK / "+".join(sources)
    if not root.is_dir():
        partial = root.with_name(root.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        for cls in ("faces", "comics"):
            for source in sources:
                shutil.copytree(SAMPLES / source / cls, partial / cls / source, copy_function=shutil.copy2)
        partial.rename(root)
    return root


def test_inputs(source: str, options: DecodeOptions) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The backbone embeddings (cached) of every image of a sample, labels and paths."""
    scan = scan_dataset(SAMPLES / source)
    paths = [p for files in scan.files for p in files]
    labels = np.array([c for c, files in enumerate(scan.files) for _ in files])
    features = drain(featurizer_for(TrainConfig().features).extract(paths, options=options, root=scan.root))
    return features.rows, labels[features.ok_indices], [str(paths[i]) for i in features.ok_indices]


def score(predictor: Predictor, inputs: np.ndarray, labels: np.ndarray) -> dict:
    probabilities, unlike, not_a_face = predictor.scores_of_inputs(inputs)
    flags = [flag_for(p, bool(u), bool(n)) for p, u, n in zip(probabilities, unlike, not_a_face, strict=True)]
    right = probabilities.argmax(axis=1) == labels
    sure = np.array([not f for f in flags])
    return {
        "images": len(labels),
        "accuracy": float(right.mean()),
        "flagged": int((~sure).sum()),
        "not_a_face": {
            name: int(sum(f == "not a face" for f, y in zip(flags, labels, strict=True) if y == c))
            for c, name in enumerate(predictor.loaded.class_names)
        },
        "accuracy_when_sure": float(right[sure].mean()) if sure.any() else None,
    }


def across_sources(options: DecodeOptions) -> list[dict]:
    directions = [(("face2comics-sample",), "diverse-sample")] + [
        (tuple(s for s in SOURCES if s != held), held) for held in SOURCES
    ]
    tests = {held: test_inputs(held, options) for _, held in directions}
    rows = []
    for train_on, held in directions:
        root = merged(train_on)
        for head, config in HEADS.items():
            runs = []
            for seed in SEEDS:
                result = drain(
                    run_experiment(root, config=dataclasses.replace(config, seed=seed), decode=options)
                )
                x, y, _ = tests[held]
                runs.append({"seed": seed, "holdout": result.holdout.accuracy,
                             **score(Predictor(model_from_result(result)), x, y)})  # fmt: skip
            accuracies = [r["accuracy"] for r in runs]
            row = {
                "train": list(train_on), "test": held, "head": head, "runs": runs,
                "mean": statistics.mean(accuracies), "min": min(accuracies), "max": max(accuracies),
            }  # fmt: skip
            rows.append(row)
            print(
                f"  {'+'.join(s.split('-')[0] for s in train_on):28s} -> {held.split('-')[0]:11s} "
                f"{head:18s}: accuracy {row['mean']:.3f} "
                f"[{row['min']:.3f}-{row['max']:.3f}] over seeds 0-4; flagged {runs[0]['flagged']} "
                f"of {runs[0]['images']} (seed 0)",
                flush=True,
            )
    return rows


def pixel_contrast() -> list[dict]:
    rows = []
    for train_on, held in (
        ("face2comics-sample", "diverse-sample"),
        ("diverse-sample", "face2comics-sample"),
    ):
        result = drain(
            run_experiment(SAMPLES / train_on, config=TrainConfig(features="pixels", seed=0), grid=PIXEL_GRID)
        )
        scan = scan_dataset(SAMPLES / held)
        predictions = Predictor(model_from_result(result)).predict([p for files in scan.files for p in files])
        truth = [name for name, files in zip(scan.class_names, scan.files, strict=True) for _ in files]
        accuracy = sum(p.label == t for p, t in zip(predictions, truth, strict=True)) / len(truth)
        rows.append({"train": train_on, "test": held, "accuracy": accuracy})
        print(
            f"  pixels (the paper's MLP), seed 0: {train_on} -> {held}: accuracy {accuracy:.3f}", flush=True
        )
    return rows


def stability(options: DecodeOptions) -> dict:
    root = merged(SOURCES)
    runs = []
    for seed in SEEDS:
        result = drain(run_experiment(root, config=TrainConfig(seed=seed, split_seed=0), decode=options))
        runs.append({"seed": seed, "holdout": result.holdout.accuracy, "ece": result.holdout.ece,
                     "best": [result.best.lr, result.best.epochs]})  # fmt: skip
    accuracies = [r["holdout"] for r in runs]
    out = {
        "runs": runs,
        "min": min(accuracies),
        "max": max(accuracies),
        "spread": max(accuracies) - min(accuracies),
    }
    print(
        f"  default recipe on all three samples, split seed 0, training seeds 0-4: holdout "
        f"{', '.join(f'{a:.3f}' for a in accuracies)}; spread {out['spread'] * 100:.1f} points "
        f"(target <= 2); ECE {max(r['ece'] for r in runs):.3f} at most",
        flush=True,
    )
    return out


CANDIDATE_GRIDS = {
    "lr 0.1, 0.01 x 5, 20, 50 (the single head's default before ensembles)": GridSpec(
        (0.1, 0.01), (5, 20, 50)
    ),
    "lr 0.1, 0.03 x 5, 10, 20": GridSpec((0.1, 0.03), (5, 10, 20)),
    "lr 0.3, 0.1 x 3, 6, 12 (the MLP's default)": GridSpec((0.3, 0.1), (3, 6, 12)),
}


def grid_study(options: DecodeOptions) -> list[dict]:
    tests = {held: test_inputs(held, options) for held in SOURCES}
    rows = []
    for name, grid in CANDIDATE_GRIDS.items():
        per_held = {}
        for held in SOURCES:
            root = merged(tuple(s for s in SOURCES if s != held))
            x, y, _ = tests[held]
            accuracies = []
            for seed in SEEDS:
                config = TrainConfig(seed=seed, head="mlp")
                result = drain(run_experiment(root, config=config, grid=grid, decode=options))
                accuracies.append(score(Predictor(model_from_result(result)), x, y)["accuracy"])
            per_held[held] = {
                "mean": statistics.mean(accuracies),
                "min": min(accuracies),
                "max": max(accuracies),
            }
        epochs = len(grid.learning_rates) * max(grid.epochs)
        rows.append({"grid": name, "epochs_per_grid": epochs, "held_out": per_held})
        print(
            f"  {name}: "
            + "; ".join(
                f"{h.split('-')[0]} {r['mean']:.3f} [{r['min']:.3f}-{r['max']:.3f}]"
                for h, r in per_held.items()
            )
            + f"; {epochs} lr-epochs in the grid",
            flush=True,
        )
    return rows


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="make cross", description=__doc__.splitlines()[0])
    parser.add_argument("--grids", action="store_true", help="also compare candidate grids (section 3)")
    args = parser.parse_args()
    start = time.perf_counter()
    options = DecodeOptions(cache_dir=REPO / "bench" / "data" / "cache")
    print("Across sources (accuracy on every image of the held-out sample):", flush=True)
    rows = across_sources(options)
    print("Contrast:", flush=True)
    pixels = pixel_contrast()
    print("Stability:", flush=True)
    stable = stability(options)
    report = {"across": rows, "pixels": pixels, "stability": stable}
    if args.grids:
        print("Candidate grids, MLP ensemble of 5, each sample scored by a model trained on the other two:")
        report["grids"] = grid_study(options)
    write_report(report, "cross_source.json", start)


def write_report(report: dict, name: str, start: float) -> None:
    """``bench/out/NAME`` as indented JSON, and say where and after how long."""
    out = REPO / "bench" / "out" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Written to {out.relative_to(REPO)} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
