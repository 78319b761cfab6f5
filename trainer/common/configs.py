"""Settings as frozen dataclasses. CLI flags are generated from these fields (see ``cli_args``),
and the preprocessing settings travel inside every model file, so no constant is typed twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_NAMES = ("train", "val", "holdout")
RESAMPLING_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "box")
MAX_SEED = 2**32 - 1
# The --features choices, the default first; trainer.features.registry names their featurizers.
FEATURE_KINDS = ("pretrained", "pixels")
SELECT_BY = ("auto", "loss", "accuracy")
# The --head choices: "auto" is the featurizer's (linear for pretrained features, MLP for pixels).
HEAD_KINDS = ("linear", "mlp")
HEAD_CHOICES = ("auto", *HEAD_KINDS)
CLASS_PRIORS = ("auto", "balanced", "data")
# Upper limits that keep a typo from asking for the impossible; the CLI and the app both enforce
# them, because both build these dataclasses (field metadata ``min``/``max`` lets a form show them).
MAX_BATCH_SIZE = 2**20
MAX_EPOCHS = 1_000_000
MAX_THREADS = 1024
MAX_HEADS = 64
MAX_L2 = 1e6
# Images per prediction batch (facecomic-predict's --batch-size): each batch's rows arrive together.
PREDICTION_BATCH_SIZE = 256


def _flag(help_text: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"help": help_text, "flag": name, **extra}


@dataclass(frozen=True, slots=True)
class PreprocessConfig:
    """How an image becomes model input; saved in the model so prediction repeats it exactly."""

    size: int = 24
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resample: str = "bilinear"
    jpeg_draft: bool = True
    alpha_background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        # Model files carry these values, so a damaged file must fail here, not on every image.
        if not _is_int(self.size) or not 1 <= self.size <= 4096:
            raise ValueError(f"size must be a whole number from 1 to 4096, not {self.size!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple)
                or len(value) != 3
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
                or not all(math.isfinite(v) for v in value)
            ):
                raise ValueError(f"{name} must be three finite numbers, not {value!r}")
        if not all(s > 0 for s in self.std):
            raise ValueError("std must be positive")
        background = self.alpha_background
        if (
            not isinstance(background, tuple)
            or len(background) != 3
            or not all(_is_int(v) and 0 <= v <= 255 for v in background)
        ):
            raise ValueError(
                f"alpha_background must be three whole numbers from 0 to 255, not {background!r}"
            )
        if self.resample not in RESAMPLING_METHODS:
            raise ValueError(
                f"resample must be one of {', '.join(RESAMPLING_METHODS)}, not {self.resample!r}"
            )
        if not isinstance(self.jpeg_draft, bool):
            raise ValueError("jpeg_draft must be true or false")

    @property
    def input_size(self) -> int:
        return 3 * self.size * self.size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Exactly the known keys: a model whose preprocessing we cannot repeat must not load."""
        return _from_dict(cls, data, strict=True)


@dataclass(frozen=True, slots=True)
class GridSpec:
    """The hyper-parameter grid: learning rates x epochs for the MLP head, L2 weights for the
    linear head (each head uses its own axes). The defaults suit the default pretrained features
    (measured, see docs); ``PAPER_GRID`` is the paper's own."""

    learning_rates: tuple[float, ...] = field(
        default=(0.3, 0.1),
        metadata=_flag("learning rates to try", "--lr", nargs="+", type=float, metavar="LR", min=0.0),
    )
    epochs: tuple[int, ...] = field(
        default=(3, 6, 12),
        metadata=_flag(
            "epoch counts to try", "--epochs", nargs="+", type=int, metavar="N", min=1, max=MAX_EPOCHS
        ),
    )
    l2: tuple[float, ...] = field(
        default=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        metadata=_flag(
            "L2 weights the linear head tries (on standardised features)",
            "--l2", nargs="+", type=float, metavar="L2", min=0.0, max=MAX_L2,
        ),
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not self.learning_rates or not self.epochs:
            raise ValueError("The grid needs at least one learning rate and one epoch count.")
        if any(isinstance(lr, bool) or not isinstance(lr, int | float) for lr in self.learning_rates):
            raise ValueError("Learning rates must be numbers.")
        if any(not (lr > 0 and math.isfinite(lr)) for lr in self.learning_rates):
            raise ValueError("Learning rates must be positive, finite numbers.")
        if any(isinstance(e, bool) or not isinstance(e, int) for e in self.epochs):
            raise ValueError("Epoch counts must be whole numbers.")
        if any(not 1 <= e <= MAX_EPOCHS for e in self.epochs):
            raise ValueError(f"Epoch counts must be from 1 to {MAX_EPOCHS:,}.")
        if not self.l2:
            raise ValueError("The grid needs at least one L2 weight.")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in self.l2):
            raise ValueError("L2 weights must be numbers.")
        if any(not (0 < v <= MAX_L2 and math.isfinite(v)) for v in self.l2):
            raise ValueError(f"L2 weights must be above 0 and at most {MAX_L2:g}.")
        # Normalise: unique, in the order given (L2 ascending), so the table has stable rows and columns.
        object.__setattr__(self, "learning_rates", tuple(dict.fromkeys(map(float, self.learning_rates))))
        object.__setattr__(self, "epochs", tuple(sorted(set(map(int, self.epochs)))))
        object.__setattr__(self, "l2", tuple(sorted(set(map(float, self.l2)))))

    @property
    def settings(self) -> list[tuple[float, int]]:
        """The MLP's settings, (lr, epochs) in table order."""
        return [(lr, e) for lr in self.learning_rates for e in self.epochs]

    def size_for(self, head: str) -> int:
        """How many settings ``head`` ("linear" or "mlp") scores."""
        return len(self.l2) if head == "linear" else len(self.settings)

    def to_dict(self) -> dict[str, Any]:
        return {"learning_rates": list(self.learning_rates), "epochs": list(self.epochs), "l2": list(self.l2)}


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything else that decides the result of a run."""

    features: str = field(
        default=FEATURE_KINDS[0],
        metadata=_flag(
            "pretrained: frozen EfficientNet-Lite0 ImageNet embeddings (generalises to other sources); "
            "pixels: the paper's 24x24 pixels",
            "--features",
            choices=FEATURE_KINDS,
        ),
    )
    split: str = field(
        default="random",
        metadata=_flag(
            "random: stratified and seeded; paper: the first files of each class in natural order",
            "--split",
            choices=("random", "paper"),
        ),
    )
    batch_size: int = field(
        default=64, metadata=_flag("mini-batch size", "--batch-size", type=int, min=1, max=MAX_BATCH_SIZE)
    )
    seed: int = field(
        default=0,
        metadata=_flag("seed for split, init and shuffling", "--seed", type=int, min=0, max=MAX_SEED),
    )
    split_fractions: tuple[float, float, float] = (0.5, 0.2, 0.3)
    device: str = field(
        default="auto",
        metadata=_flag("auto (CUDA when present), cpu or cuda", "--device", choices=("auto", "cpu", "cuda")),
    )
    head: str = field(
        default="auto",
        metadata=_flag(
            "linear: softmax regression with L2, fitted to convergence (the same answer for every "
            "seed); mlp: the paper's MLP trained by SGD (auto: linear for pretrained features, mlp "
            "for pixels as in the paper)",
            "--head", choices=HEAD_CHOICES,
        ),
    )  # fmt: skip
    heads: int = field(
        default=0,
        metadata=_flag(
            "MLP heads averaged in the ensemble, each with its own seed and shuffling "
            "(0: auto, 5 for pretrained features, 1 for pixels as in the paper; the linear head "
            "is always one)",
            "--heads", type=int, min=0, max=MAX_HEADS,
        ),
    )  # fmt: skip
    select_by: str = field(
        default="auto",
        metadata=_flag(
            "how the grid picks its setting: validation loss or accuracy "
            "(auto: loss for pretrained features, accuracy for pixels as in the paper)",
            "--select-by", choices=SELECT_BY,
        ),
    )  # fmt: skip
    class_prior: str = field(
        default="auto",
        metadata=_flag(
            "balanced: answer as if both classes were equally common, whatever the folder holds; "
            "data: as the training data has them (auto: balanced for pretrained, data for pixels)",
            "--class-prior", choices=CLASS_PRIORS,
        ),
    )  # fmt: skip
    split_seed: int | None = field(
        default=None,
        metadata=_flag(
            "seed for the split alone, so training seeds can vary over one fixed split (default: --seed)",
            "--split-seed", type=int, min=0, max=MAX_SEED,
        ),
    )  # fmt: skip
    refit_all: bool | None = field(
        default=None,
        metadata=_flag(
            "after scoring the holdout, retrain the chosen setting on every image (train, val and "
            "holdout) for the saved model; its holdout figures stay those of the run that chose it "
            "(default: on for the linear head, off for the MLP)",
            "--refit-all", action=argparse.BooleanOptionalAction,
        ),
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.features not in FEATURE_KINDS:
            raise ValueError(
                f"Unknown features {self.features!r}; use {' or '.join(map(repr, FEATURE_KINDS))}."
            )
        if self.split not in ("random", "paper"):
            raise ValueError(f"Unknown split {self.split!r}; use 'random' or 'paper'.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ValueError("The batch size must be a whole number.")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"The batch size must be from 1 to {MAX_BATCH_SIZE:,}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"The seed must be a whole number from 0 to {MAX_SEED}.")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-9:
            raise ValueError("The split fractions must be three numbers that sum to 1.")
        if not _is_int(self.heads) or not 0 <= self.heads <= MAX_HEADS:
            raise ValueError(f"The number of heads must be a whole number from 0 (auto) to {MAX_HEADS}.")
        if self.select_by not in SELECT_BY:
            raise ValueError(f"Unknown select_by {self.select_by!r}; use {', '.join(SELECT_BY)}.")
        if self.class_prior not in CLASS_PRIORS:
            raise ValueError(f"Unknown class_prior {self.class_prior!r}; use {', '.join(CLASS_PRIORS)}.")
        if self.split_seed is not None and (
            not _is_int(self.split_seed) or not 0 <= self.split_seed <= MAX_SEED
        ):
            raise ValueError(f"The split seed must be a whole number from 0 to {MAX_SEED}.")
        if self.refit_all is not None and not isinstance(self.refit_all, bool):
            raise ValueError("refit_all must be true, false or unset (auto)")
        if self.head not in HEAD_CHOICES:
            raise ValueError(f"Unknown head {self.head!r}; use {', '.join(HEAD_CHOICES)}.")
        if self.head == "linear" and self.heads > 1:
            raise ValueError(
                f"The linear head is one model; {self.heads} heads apply to the MLP head only (--head mlp)."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """How the work runs on this machine; does not change results, so it is not saved in models."""

    workers: int = field(
        default=0,
        metadata=_flag(
            "decode workers for pixel features (0: one per CPU core)",
            "--workers",
            type=int,
            min=0,
            max=MAX_THREADS,
        ),
    )
    threads: int = field(
        default=0,
        metadata=_flag(
            "CPU threads for torch: feature-extraction lanes and training (0: one per CPU core)",
            "--threads", type=int, min=0, max=MAX_THREADS,
        ),
    )  # fmt: skip
    use_cache: bool = field(
        default=True,
        metadata=_flag("decode every image again, ignoring the cache", "--no-cache", action="store_false"),
    )
    cache_dir: Path | None = field(
        default=None,
        metadata=_flag(
            "decode cache folder (default: ~/.cache/facecomic)", "--cache-dir", type=Path, metavar="DIR"
        ),
    )

    def __post_init__(self) -> None:
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= MAX_THREADS:
                raise ValueError(f"{name} must be a whole number from 0 to {MAX_THREADS}, not {value!r}")

    @property
    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        return default_cache_dir()


MAX_CHUNK_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """Where the work runs when it runs on a Dask cluster (``trainer.cluster``, the ``[cluster]``
    extra); like ``DecodeOptions`` it never changes a result, only where and how fast."""

    address: str | None = field(
        default=None,
        metadata=_flag(
            "run on a Dask cluster: its scheduler's address (tcp://HOST:8786), or local to start one "
            "on this machine's cores (needs pip install 'facecomic[cluster]')",
            "--cluster", metavar="ADDRESS|local",
        ),
    )  # fmt: skip
    workers: int = field(
        default=0,
        metadata=_flag(
            "with --cluster local: worker processes (0: one per CPU core)",
            "--cluster-workers", type=int, metavar="N",
        ),
    )  # fmt: skip
    chunk_size: int = field(
        default=256,
        metadata=_flag(
            "with --cluster: images per task (and per shard)", "--chunk-size", type=int, metavar="N"
        ),
    )
    timeout: float = field(
        default=10.0,
        metadata=_flag(
            "with --cluster ADDRESS: seconds to wait for the scheduler", "--cluster-timeout",
            type=float, metavar="S",
        ),
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not _is_int(self.workers) or not 0 <= self.workers <= MAX_THREADS:
            raise ValueError(f"--cluster-workers must be a whole number from 0 to {MAX_THREADS}")
        if not _is_int(self.chunk_size) or not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"--chunk-size must be a whole number from 1 to {MAX_CHUNK_SIZE:,}")
        if not (isinstance(self.timeout, float | int) and 0 < self.timeout <= 3600):
            raise ValueError("--cluster-timeout must be more than 0 and at most 3600 seconds")
        if self.address is not None and not self.address.strip():
            raise ValueError("--cluster needs an address (tcp://HOST:PORT) or local")

    @property
    def local(self) -> bool:
        return self.address == "local"


def default_cache_dir() -> Path:
    env = os.environ.get("FACECOMIC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "facecomic"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _from_dict(cls: type, data: dict[str, Any], *, strict: bool = False):
    """Build a dataclass from JSON, turning lists back into tuples. Unknown keys are ignored, or
    with ``strict`` refused, as are missing ones."""
    if strict:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}")
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"missing setting {missing[0]!r}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return _from_dict(TrainConfig, data)


def grid_from_dict(data: dict[str, Any]) -> GridSpec:
    return _from_dict(GridSpec, data)


def field_limits(cls: type, name: str) -> tuple[float | None, float | None]:
    """The ``min`` and ``max`` a field (or each item of a tuple field) allows, for forms to show;
    ``__post_init__`` enforces them."""
    md = next(f for f in dataclasses.fields(cls) if f.name == name).metadata
    return md.get("min"), md.get("max")


def cli_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are exposed as command-line flags."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flag")]


# The paper's grid: lr {0.01, 0.001} x epochs {1, 3, 5} (its Table 1), for "Paper recipe".
PAPER_GRID = GridSpec(learning_rates=(0.01, 0.001), epochs=(1, 3, 5))

# Named presets: what ``--recipe NAME`` and the app's recipe buttons set (batch size, seed and any
# flag given on its own stay as chosen). "paper": its 24x24 pixels, its split and grid, one MLP.
RECIPES: dict[str, tuple[TrainConfig, GridSpec]] = {
    "paper": (
        TrainConfig(features="pixels", split="paper", head="mlp", heads=1),
        PAPER_GRID,
    ),
}
