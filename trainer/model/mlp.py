"""The paper's classifier, described by a small dict so model files can name other architectures."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("mlp",)


def paper_architecture(input_size: int, num_classes: int) -> dict[str, Any]:
    """1728-128-128-2 with ReLU, as in the paper; softmax is applied at prediction time."""
    return {
        "name": "mlp",
        "input_size": input_size,
        "hidden_sizes": [128, 128],
        "num_classes": num_classes,
        "activation": "relu",
    }


MAX_LAYER_SIZE = 65_536
MAX_HIDDEN_LAYERS = 4
MAX_CLASSES = 1000
MLP_KEYS = ("name", "input_size", "hidden_sizes", "num_classes", "activation")


def mlp_tensor_shapes(architecture: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` names and shapes an ``"mlp"`` architecture implies, computed from the
    description alone so a model file can be checked before a single weight is allocated.

    Raises ``ValueError`` with the reason when a field is missing, of the wrong type or out of
    bounds.
    """
    unknown = [k for k in architecture if k not in MLP_KEYS]
    if unknown:
        raise ValueError(f"its architecture has an unknown field {unknown[0]!r}")
    missing = [k for k in MLP_KEYS if k not in architecture]
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
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        # nn.Sequential numbers its children: Linear, ReLU, Linear, ReLU, ..., Linear.
        shapes[f"layers.{2 * i}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{2 * i}.bias"] = (fan_out,)
    return shapes


class MLP(nn.Module):
    def __init__(self, input_size: int, hidden_sizes: list[int], num_classes: int) -> None:
        super().__init__()
        sizes = [input_size, *hidden_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # logits; cross-entropy and softmax take them as they are


def build_model(architecture: dict[str, Any], generator: torch.Generator | None = None) -> nn.Module:
    name = architecture.get("name")
    if name != "mlp":
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    if architecture.get("activation", "relu") != "relu":
        raise ValueError(f"unsupported activation {architecture.get('activation')!r}")
    model = MLP(
        int(architecture["input_size"]),
        [int(h) for h in architecture["hidden_sizes"]],
        int(architecture["num_classes"]),
    )
    if generator is not None:
        init_weights(model, generator)
    return model


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default ``nn.Linear`` init, drawn from an explicit generator for determinism."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            # kaiming_uniform_(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            module.weight.uniform_(-bound, bound, generator=generator)
            module.bias.uniform_(-bound, bound, generator=generator)
