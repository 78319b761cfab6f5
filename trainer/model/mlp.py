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
