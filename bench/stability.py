"""``make stability``: how much a model's answers depend on its seed, on pictures from sources it
never saw. This is the figure that chooses the recipe, next to the holdout.

For each of the three samples in ``../shared/data`` in turn, every candidate recipe is trained on
the other two (merged, as ``make cross`` merges them) with ``--seed`` 0-9 (which moves the split
and the training's randomness together, as a user retraining with another seed does) and scored
on every image of the held-out sample. Per held-out sample: the lowest, mean and highest accuracy
over the seeds, their spread, and the mean pairwise disagreement (the share of pictures on which
two seeds' models give different labels, averaged over all pairs of seeds). Then the same recipe
on all three samples: its holdout accuracy over the seeds, the worst calibration error, and the
disagreement on the holdout images that two seeds' holdouts share.

The product's recipes run through ``run_experiment``, exactly as ``facecomic-train`` runs them.
One candidate is not a product recipe: the MLP ensemble with weight decay on standardised inputs,
trained by the product's own SGD (``trainer.training.grid``) with the decay applied after each step
(``_decayed_steps``), to see whether regularising the MLP would have been enough.

The choice rule (issue 23): the best worst-seed accuracy on the held-out samples, then the lowest
disagreement, then the holdout, which must stay within a point of the recipe before.

Writes ``bench/out/stability.json`` and prints the table docs/accuracy.md quotes.
Embeddings are cached (``bench/data/cache``), so only the heads train on a second run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.cross_source import SOURCES, merged, test_inputs, write_report
from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
from trainer.common.events import drain
from trainer.model.calibration import expected_calibration_error, fit_temperature, softmax
from trainer.model.model_file import model_from_result
from trainer.prediction.predictor import Predictor
from trainer.training import sgd
from trainer.training.experiment import run_experiment

REPO = Path(__file__).resolve().parent.parent
SEEDS = tuple(range(10))
ALL = "all three"


@dataclass(frozen=True)
class Scored:
    """One trained model's answers: labels on each held-out picture, and its own holdout."""

    labels: np.ndarray  # on the held-out sample (empty for a run on all three)
    holdout_accuracy: float
    holdout_ece: float
    holdout_labels: dict[str, int]  # holdout image -> predicted label


# A candidate trains on a folder with a seed, labels the given rows (the held-out sample's
# embeddings, or None) and reports its own holdout.
Trainer = Callable[[Path, int, np.ndarray | None], Scored]


def mean_pairwise_disagreement(labels: Sequence[np.ndarray]) -> float:
    """The share of pictures on which two models disagree, averaged over every pair of models."""
    pairs = list(itertools.combinations(labels, 2))
    if not pairs:
        return 0.0
    return float(statistics.mean(float(np.mean(a != b)) for a, b in pairs))


def shared_disagreement(answers: Sequence[dict[str, int]]) -> float:
    """As ``mean_pairwise_disagreement``, over the pictures each pair of models both answered
    (two seeds' holdouts overlap in part); pairs that share none are left out."""
    rates = []
    for a, b in itertools.combinations(answers, 2):
        shared = a.keys() & b.keys()
        if shared:
            rates.append(sum(a[k] != b[k] for k in shared) / len(shared))
    return float(statistics.mean(rates)) if rates else 0.0


def summary(accuracies: Sequence[float], disagreement: float) -> dict:
    return {
        "min": min(accuracies),
        "mean": statistics.mean(accuracies),
        "max": max(accuracies),
        "spread": max(accuracies) - min(accuracies),
        "disagreement": disagreement,
        "per_seed": list(accuracies),
    }


def product_recipe(config: TrainConfig, grid: GridSpec, options: DecodeOptions) -> Trainer:
    """A recipe as ``facecomic-train`` runs it (``--seed`` set per run)."""

    def train(root: Path, seed: int, rows: np.ndarray | None) -> Scored:
        result = drain(
            run_experiment(root, config=dataclasses.replace(config, seed=seed), grid=grid, decode=options)
        )
        predictor = Predictor(model_from_result(result))
        labels = np.zeros(0, np.int64)
        if rows is not None:
            labels = predictor.scores_of_inputs(rows)[0].argmax(axis=1)
        holdout = {image.path: image.predicted for image in result.holdout_images}
        return Scored(labels, result.holdout.accuracy, float(result.holdout.ece or 0.0), holdout)

    return train


@contextlib.contextmanager
def _decayed_steps(weight_decay: float) -> Iterator[None]:
    """Every SGD step of the product's MLP followed by w <- w (1 - lr * wd): L2 weight decay on
    the weights (not the biases), for the one candidate that is not a product recipe."""
    plain = sgd.sgd_step

    def step(model, x, y, lr):
        loss = plain(model, x, y, lr)
        with torch.no_grad():
            for w in model.weights:
                w.mul_(1.0 - lr * weight_decay)
        return loss

    sgd.sgd_step = step
    try:
        yield
    finally:
        sgd.sgd_step = plain


def regularised_mlp(weight_decay: float, options: DecodeOptions) -> Trainer:
    """The default MLP ensemble (5 heads, lr 0.3/0.1 x 3/6/12 epochs, validation loss, balanced
    prior) on inputs standardised by the training rows, with weight decay."""
    from trainer.data.splits import make_split
    from trainer.features.registry import resolved_config
    from trainer.model.mlp import paper_architecture
    from trainer.model.results import pick_best
    from trainer.training.grid import grid_search, train_final
    from trainer.training.sgd import StepCounter, Tensors, logits_of

    cached: dict[Path, tuple] = {}

    def train(root: Path, seed: int, rows: np.ndarray | None) -> Scored:
        if root not in cached:
            from trainer.data.dataset import scan_dataset

            scan = scan_dataset(root)
            x, y, paths = _rows_of(root, options)
            keys = [scan.pair_key(int(c), Path(p)) for c, p in zip(y, paths, strict=True)]
            cached[root] = (scan, x, y, paths, keys)
        scan, x, y, paths, keys = cached[root]
        config = resolved_config(TrainConfig(seed=seed, head="mlp"))
        split = make_split(y, keys, scan.class_names, "random", config.split_fractions, seed)
        train_val_index = np.concatenate([split.train, split.val])
        mean, scale = x[split.train].mean(0), x[split.train].std(0) + 1e-6

        def tensors(index: np.ndarray, m: np.ndarray, s: np.ndarray) -> Tensors:
            return Tensors(torch.from_numpy((x[index] - m) / s).float(), torch.from_numpy(y[index]))

        architecture = paper_architecture(x.shape[1], 2, config.heads)
        grid = GridSpec()
        with _decayed_steps(weight_decay):
            results = drain(
                grid_search(
                    tensors(split.train, mean, scale), tensors(split.val, mean, scale), grid, config,
                    architecture, lanes=2,
                )
            )  # fmt: skip
            best = pick_best(results, config.select_by)
            temperature = fit_temperature(best.val_logits, y[split.val])
            mean, scale = x[train_val_index].mean(0), x[train_val_index].std(0) + 1e-6
            model, _, _ = drain(
                train_final(
                    tensors(train_val_index, mean, scale), best.lr, best.epochs, config, architecture,
                    steps=StepCounter(), lanes=2,
                )
            )  # fmt: skip
        probabilities = softmax(logits_of(model, tensors(split.holdout, mean, scale).x), temperature)
        predicted = probabilities.argmax(axis=1)
        labels = np.zeros(0, np.int64)
        if rows is not None:
            labels = logits_of(model, torch.from_numpy((rows - mean) / scale).float()).argmax(axis=1)
        holdout = {paths[i]: int(p) for i, p in zip(split.holdout, predicted, strict=True)}
        return Scored(
            labels,
            float(np.mean(predicted == y[split.holdout])),
            expected_calibration_error(probabilities, y[split.holdout]),
            holdout,
        )

    return train


def _rows_of(root: Path, options: DecodeOptions) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The embeddings (cached) of a folder's images, their labels and paths, in scan order."""
    from trainer.data.dataset import scan_dataset
    from trainer.features.registry import featurizer_for

    scan = scan_dataset(root)
    paths = [p for files in scan.files for p in files]
    labels = np.array([c for c, files in enumerate(scan.files) for _ in files])
    found = drain(featurizer_for("pretrained").extract(paths, options=options, root=scan.root))
    return found.rows, labels[found.ok_indices], [str(paths[i]) for i in found.ok_indices]


def candidates(options: DecodeOptions) -> dict[str, Trainer]:
    default = TrainConfig()
    mlp = TrainConfig(head="mlp", refit_all=False)
    return {
        "MLP ensemble, 5 heads (the recipe before)": product_recipe(mlp, GridSpec(), options),
        "MLP ensemble, refitted on every image": product_recipe(
            dataclasses.replace(mlp, refit_all=True), GridSpec(), options
        ),
        "MLP ensemble, weight decay 0.01, standardised inputs": regularised_mlp(0.01, options),
        "linear head, not refitted (train+val only)": product_recipe(
            dataclasses.replace(default, refit_all=False), GridSpec(), options
        ),
        "linear head, refitted on every image (default)": product_recipe(default, GridSpec(), options),
    }


def measure(name: str, train: Trainer, options: DecodeOptions, seeds: Sequence[int]) -> dict:
    began = time.perf_counter()
    out: dict = {"held_out": {}}
    for held in SOURCES:
        rows, truth, _ = test_inputs(held, options)
        root = merged(tuple(s for s in SOURCES if s != held))
        runs = [train(root, seed, rows) for seed in seeds]
        accuracies = [float(np.mean(r.labels == truth)) for r in runs]
        out["held_out"][held] = summary(accuracies, mean_pairwise_disagreement([r.labels for r in runs]))
    runs = [train(merged(SOURCES), seed, None) for seed in seeds]
    out["all"] = {
        **summary([r.holdout_accuracy for r in runs], shared_disagreement([r.holdout_labels for r in runs])),
        "ece_max": max(r.holdout_ece for r in runs),
        "ece_per_seed": [r.holdout_ece for r in runs],
    }
    out["seconds"] = time.perf_counter() - began
    print(format_candidate(name, out), flush=True)
    return out


def format_candidate(name: str, out: dict) -> str:
    lines = [f"{name}  ({out['seconds']:.0f} s)"]
    for held, row in out["held_out"].items():
        lines.append(
            f"  -> {held.split('-')[0]:11s} accuracy {row['mean']:.3f} [{row['min']:.3f}-{row['max']:.3f}], "
            f"spread {100 * row['spread']:.1f} points, disagreement {100 * row['disagreement']:.1f}%"
        )
    row = out["all"]
    lines.append(
        f"  {ALL}: holdout {row['mean']:.3f} [{row['min']:.3f}-{row['max']:.3f}], spread "
        f"{100 * row['spread']:.1f} points, disagreement on shared holdout images "
        f"{100 * row['disagreement']:.1f}%, ECE at most {row['ece_max']:.3f}"
    )
    return "\n".join(lines)


def markdown_table(report: dict) -> str:
    """The table docs/accuracy.md quotes: per candidate and held-out sample, mean [min-max], spread and
    disagreement; then the holdout on all three."""
    held = [h.split("-")[0] for h in SOURCES]
    header = [
        "recipe",
        *(f"-> {h}: mean [min-max], spread, disagreement" for h in held),
        f"{ALL}: holdout, ECE max",
    ]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, out in report["candidates"].items():
        cells = [
            f"{r['mean']:.3f} [{r['min']:.3f}-{r['max']:.3f}], {100 * r['spread']:.1f}, {100 * r['disagreement']:.1f}%"
            for r in out["held_out"].values()
        ]
        a = out["all"]
        cells.append(f"{a['mean']:.3f} [{a['min']:.3f}-{a['max']:.3f}], {a['ece_max']:.3f}")
        rows.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="make stability", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=("default", "all"), default="all",
        help="default: only the default recipe and the one before it (the acceptance figures)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 0..N-1 (default 10)")
    args = parser.parse_args()
    start = time.perf_counter()
    options = DecodeOptions(cache_dir=REPO / "bench" / "data" / "cache")
    chosen = candidates(options)
    if args.only == "default":
        chosen = {k: v for k, v in chosen.items() if "(default)" in k or "(the recipe before)" in k}
    seeds = tuple(range(args.seeds))
    print(
        f"Each recipe trained with --seed {seeds[0]}-{seeds[-1]}; accuracy on every image of the held-out sample:"
    )
    report = {
        "seeds": list(seeds),
        "candidates": {name: measure(name, t, options, seeds) for name, t in chosen.items()},
    }
    print("\n" + markdown_table(report) + "\n")
    write_report(report, "stability.json", start)


if __name__ == "__main__":
    main()
