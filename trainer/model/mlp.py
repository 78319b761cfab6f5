"""The paper's classifier, K times: an ensemble of MLP heads with stacked weights.

One head is the paper's 1728-128-128-2 (or 1280-128-128-2 on backbone embeddings) with ReLU.
K heads of that shape, each with its own seed and its own shuffling, average their probabilities;
an average of a few heads is far steadier across seeds than any one of them (docs/accuracy.md).
Their weights are stacked, ``(K, out, in)`` per layer, so that one batched matrix product trains
or runs all K at once. With K=1 every operation is the plain 2-D one the paper's single MLP uses,
so the paper's recipe gives exactly the numbers it gave before ensembles existed.

The architecture is described by a small dict, so model files can name other architectures.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from trainer.common.configs import MAX_HEADS

ARCHITECTURES = ("mlp",)
MAX_LAYER_SIZE = 65_536
MAX_HIDDEN_LAYERS = 4
MAX_CLASSES = 1000
MLP_KEYS = ("name", "input_size", "hidden_sizes", "num_classes", "activation", "heads")
OPTIONAL_KEYS = ("heads",)  # files written before ensembles have one head and no "heads" key


def paper_architecture(input_size: int, num_classes: int, heads: int = 1) -> dict[str, Any]:
    """1728-128-128-2 with ReLU, as in the paper, ``heads`` times; softmax comes at prediction."""
    return {
        "name": "mlp",
        "input_size": input_size,
        "hidden_sizes": [128, 128],
        "num_classes": num_classes,
        "activation": "relu",
        "heads": heads,
    }


def head_count(architecture: dict[str, Any]) -> int:
    return int(architecture.get("heads", 1))


def layer_sizes(architecture: dict[str, Any]) -> list[int]:
    return [
        int(architecture["input_size"]),
        *(int(h) for h in architecture["hidden_sizes"]),
        int(architecture["num_classes"]),
    ]


def mlp_tensor_shapes(architecture: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` names and shapes an ``"mlp"`` architecture implies, computed from the
    description alone so a model file can be checked before a single weight is allocated.

    Files written before ensembles (no ``heads`` key) hold one head as an ``nn.Sequential`` did:
    ``layers.0.weight``, ``layers.2.weight``, ...; ``legacy_state_dict`` converts them.

    Raises ``ValueError`` with the reason when a field is missing, of the wrong type or out of
    bounds.
    """
    unknown = [k for k in architecture if k not in MLP_KEYS]
    if unknown:
        raise ValueError(f"its architecture has an unknown field {unknown[0]!r}")
    missing = [k for k in MLP_KEYS if k not in architecture and k not in OPTIONAL_KEYS]
    if missing:
        raise ValueError(f"its architecture lacks the field {missing[0]!r}")
    if architecture["activation"] != "relu":
        raise ValueError(f"its architecture uses the unsupported activation {architecture['activation']!r}")

    def whole(name: str, value: Any, low: int, high: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(
                f"its architecture's {name} is {value!r}, not a whole number from {low:,} to {high:,}"
            )
        return value

    hidden = architecture["hidden_sizes"]
    if not isinstance(hidden, list) or len(hidden) > MAX_HIDDEN_LAYERS:
        raise ValueError(
            f"its architecture's hidden_sizes must be a list of at most {MAX_HIDDEN_LAYERS} sizes"
        )
    sizes = [
        whole("input_size", architecture["input_size"], 1, MAX_LAYER_SIZE),
        *(whole("hidden size", h, 1, MAX_LAYER_SIZE) for h in hidden),
    ]
    sizes.append(whole("num_classes", architecture["num_classes"], 2, MAX_CLASSES))
    shapes: dict[str, tuple[int, ...]] = {}
    if "heads" not in architecture:
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            shapes[f"layers.{2 * i}.weight"] = (fan_out, fan_in)
            shapes[f"layers.{2 * i}.bias"] = (fan_out,)
        return shapes
    heads = whole("heads", architecture["heads"], 1, MAX_HEADS)
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        shapes[f"weights.{i}"] = (heads, fan_out, fan_in)
        shapes[f"biases.{i}"] = (heads, fan_out)
    return shapes


def legacy_state_dict(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A one-head ``layers.{2i}.*`` state dict (format 1 and 2 files) in the stacked form."""
    out = {}
    for name, tensor in tensors.items():
        _, index, kind = name.split(".")
        out[f"{'weights' if kind == 'weight' else 'biases'}.{int(index) // 2}"] = tensor.unsqueeze(0)
    return out


class MLPEnsemble(nn.Module):
    """K MLP heads; ``forward`` gives one row of logits per input, for the whole ensemble.

    With K=1 those are the head's own logits. With K>1 they are the log of the heads' averaged
    softmax, so ``softmax(logits / T)`` (the app's calibrated confidence) is the averaged
    probability at T=1. ``offset`` is added last: zero, or minus the log class prior of the
    training data, so a folder with more faces than comics does not make "face" the easy answer.
    """

    def __init__(self, sizes: Sequence[int], heads: int = 1) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(heads, fan_out, fan_in)) for fan_in, fan_out in itertools.pairwise(sizes)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(heads, fan_out)) for fan_out in list(sizes)[1:]
        )
        self.register_buffer("offset", torch.zeros(sizes[-1]), persistent=False)
        self.has_offset = False

    @property
    def heads(self) -> int:
        return self.weights[0].shape[0]

    @property
    def num_classes(self) -> int:
        return self.sizes[-1]

    def set_offset(self, offset: Sequence[float] | None) -> None:
        self.has_offset = offset is not None
        self.offset = torch.tensor(offset if offset is not None else [0.0] * self.num_classes)

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in)`` inputs to ``(K, N, C)`` per-head logits (no offset)."""
        if self.heads == 1:  # the paper's 2-D ops exactly (bit-identical to a single MLP)
            h = x
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                h = torch.addmm(b[0], h, w[0].t())
                if i < len(self.weights) - 1:
                    h = h.relu()
            return h.unsqueeze(0)
        h = x.unsqueeze(0).expand(self.heads, *x.shape)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if i < len(self.weights) - 1:
                h = h.relu()
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = combine_heads(self.head_logits(x))
        return logits + self.offset if self.has_offset else logits


def combine_heads(head_logits: torch.Tensor) -> torch.Tensor:
    """``(K, N, C)`` to ``(N, C)``: one head's logits as they are; else log of the mean softmax."""
    if head_logits.shape[0] == 1:
        return head_logits[0]
    return torch.logsumexp(torch.log_softmax(head_logits, dim=2), dim=0) - math.log(head_logits.shape[0])


def build_model(
    architecture: dict[str, Any],
    seed: int | None = None,
    *,
    offset: Sequence[float] | None = None,
    first_head: int = 0,
) -> MLPEnsemble:
    """The ensemble an architecture describes; with ``seed``, each head initialised from its own
    generator (``head_seed``), as PyTorch's default ``nn.Linear`` init. ``first_head`` numbers
    the heads of a group that is part of a larger ensemble (see ``stack_heads``)."""
    name = architecture.get("name")
    if name != "mlp":
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    if architecture.get("activation", "relu") != "relu":
        raise ValueError(f"unsupported activation {architecture.get('activation')!r}")
    model = MLPEnsemble(layer_sizes(architecture), head_count(architecture))
    if seed is not None:
        init_weights(model, seed, first_head)
    model.set_offset(offset)
    return model


def stack_heads(groups: Sequence[MLPEnsemble]) -> MLPEnsemble:
    """One ensemble of the heads of ``groups``, in order (groups train on separate lanes)."""
    if len(groups) == 1:
        return groups[0]
    model = MLPEnsemble(groups[0].sizes, sum(g.heads for g in groups))
    with torch.no_grad():
        for i in range(len(model.weights)):
            model.weights[i].copy_(torch.cat([g.weights[i] for g in groups]))
            model.biases[i].copy_(torch.cat([g.biases[i] for g in groups]))
    model.set_offset(groups[0].offset.tolist() if groups[0].has_offset else None)
    return model.to(groups[0].weights[0].device)


def head_groups(heads: int, groups: int = 2) -> list[tuple[int, int]]:
    """Contiguous ``[first, end)`` ranges that split ``heads`` into at most ``groups`` parts. The
    split is fixed, never the machine's core count, so a run's numbers are the same anywhere."""
    parts = min(heads, groups)
    bounds = [round(i * heads / parts) for i in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def head_seed(seed: int, head: int) -> int:
    """Head 0 uses ``seed`` itself (so one head is the paper's single MLP); the others get
    independent 32-bit seeds (torch's CPU generator keeps only 32 bits of a seed)."""
    if head == 0:
        return seed
    return int(np.random.SeedSequence([seed, head]).generate_state(1)[0])


@torch.no_grad()
def init_weights(model: MLPEnsemble, seed: int, first_head: int = 0) -> None:
    """PyTorch's default ``nn.Linear`` init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight then
    bias, layer by layer, each head from its own explicit generator."""
    for head in range(model.heads):
        generator = torch.Generator().manual_seed(head_seed(seed, first_head + head))
        for w, b in zip(model.weights, model.biases, strict=True):
            bound = 1.0 / math.sqrt(w.shape[2])
            w[head].uniform_(-bound, bound, generator=generator)
            b[head].uniform_(-bound, bound, generator=generator)
