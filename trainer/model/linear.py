"""The linear head: softmax regression on standardised features, L2-regularised, fitted to
convergence by L-BFGS in float64.

Its objective is convex and the fit starts from zero, so the answer depends on the data and the
L2 weight alone, never on a seed: two runs on the same images give the same weights bit for bit,
where the MLP's SGD lands somewhere else for every seed (docs/accuracy.md: ``make stability``).

Inputs are standardised by the fitting rows' mean and spread, so one L2 weight suits every
feature; the spread has a floor (a share of the mean variance), so a feature that barely varies in
training cannot blow up on a picture where it does. The standardisation is folded into the
weights, and the result is an ``MLPEnsemble`` with no hidden layer: ONNX export, "Why?" maps,
calibration and model files serve it as they serve the MLP.

L-BFGS is written out (two-loop recursion, backtracking Armijo line search): ``torch.optim``
would import ``torch._dynamo``, 1.5 s of start-up, and a hand-written loop checks for a cancel
once per iteration (one pass over the data, the head's "batch").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.common.cancel import NEVER_CANCELLED, CancelToken
from trainer.model.mlp import MLPEnsemble, build_model

SOLVER = "L-BFGS"
MAX_ITERATIONS = 1000
# Converged when no gradient entry of the objective exceeds this (the objective is a mean
# cross-entropy of order 0.1, on standardised inputs).
GRADIENT_TOLERANCE = 1e-6
HISTORY = 10
ARMIJO = 1e-4
MAX_BACKTRACKS = 40
# The spread's floor, as a share of the mean variance over features (see the module docstring).
VARIANCE_FLOOR = 0.01


def linear_architecture(input_size: int, num_classes: int) -> dict[str, Any]:
    """The MLP description with no hidden layer: softmax regression, one head."""
    return {
        "name": "mlp",
        "input_size": input_size,
        "hidden_sizes": [],
        "num_classes": num_classes,
        "activation": "relu",  # unused without hidden layers; kept so every file has the field
        "heads": 1,
    }


@dataclass(frozen=True)
class LinearFit:
    """A fitted linear head in the original feature space (the standardisation folded in)."""

    weight: torch.Tensor  # (classes, features) float64
    bias: torch.Tensor  # (classes,) float64
    l2: float
    iterations: int
    converged: bool
    losses: tuple[float, ...]  # the objective after each iteration
    # The solution in the standardised space, weights then biases: where a fit of the same
    # L2 weight on nearly the same rows can start (``fit_linear(start=...)``).
    standardised: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, as_float64(x), self.weight.T).float()

    def to_model(self, offset: list[float] | None = None) -> MLPEnsemble:
        classes, features = self.weight.shape
        model = build_model(linear_architecture(features, classes), offset=offset)
        with torch.no_grad():
            model.weights[0].copy_(self.weight.unsqueeze(0).float())
            model.biases[0].copy_(self.bias.unsqueeze(0).float())
        return model.to(self.weight.device).eval()

    def metadata(self) -> dict[str, Any]:
        return {
            "kind": "linear",
            "l2": self.l2,
            "solver": SOLVER,
            "iterations": self.iterations,
            "converged": self.converged,
            "standardised": True,
        }


def standardiser(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the floored spread of the fitting rows, in float64."""
    x = as_float64(x)
    mean = x.mean(dim=0)
    variance = ((x * x).mean(dim=0) - mean * mean).clamp_(min=0.0)  # one pass; float64 keeps it exact enough
    floor = VARIANCE_FLOOR * float(variance.mean()) if len(x) else 0.0
    return mean, torch.sqrt(variance + max(floor, 1e-12))


def as_float64(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float64; a copy into a new tensor, which is 15x faster than ``.to()`` on one
    thread (11 ms against 0.7 ms for 1,000 x 1,280)."""
    if x.dtype == torch.float64:
        return x
    return torch.empty(x.shape, dtype=torch.float64, device=x.device).copy_(x)


def fit_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    l2: float,
    *,
    cancel: CancelToken = NEVER_CANCELLED,
    on_iteration: Callable[[int, float], None] | None = None,
    max_iterations: int = MAX_ITERATIONS,
    start: LinearFit | None = None,
) -> LinearFit:
    """Minimise mean cross-entropy + ``l2`` / 2 * |W|^2 (the bias is not penalised) on the
    standardised rows of ``x``. Deterministic: no randomness, float64 throughout, from zero or
    from ``start``'s solution (the objective is strictly convex, so the answer is the same within
    the tolerance; a fit on folds of the same rows needs a third of the iterations from there).

    The standardised rows are never formed: the weights are divided by the spread and the mean
    moved into the bias at every step, and the gradient is taken back the same way (one pass over
    ``x`` less per fit, which is most of a small fit's cost)."""
    if not l2 > 0:
        raise ValueError("the linear head's L2 weight must be positive")
    x = as_float64(x)
    mean, scale = standardiser(x)
    inverse = 1.0 / scale
    labels = y.to(x.device)
    n, features = x.shape
    one_hot = torch.zeros(n, num_classes, dtype=torch.float64, device=x.device)
    one_hot[torch.arange(n, device=x.device), labels] = 1.0

    def objective(params: torch.Tensor) -> tuple[float, torch.Tensor]:
        weight = params[: num_classes * features].view(num_classes, features)
        bias = params[num_classes * features :]
        scaled = weight * inverse
        logits = torch.addmm(bias - scaled @ mean, x, scaled.T)
        log_norm = torch.logsumexp(logits, dim=1)
        loss = float((log_norm - (logits * one_hot).sum(dim=1)).mean()) + 0.5 * l2 * float(
            (weight * weight).sum()
        )
        residual = (torch.exp(logits - log_norm[:, None]) - one_hot) / n
        totals = residual.sum(dim=0)
        grad_weight = (residual.T @ x - totals[:, None] * mean) * inverse + l2 * weight
        return loss, torch.cat([grad_weight.reshape(-1), totals])

    params = torch.zeros(num_classes * (features + 1), dtype=torch.float64, device=x.device)
    if start is not None and start.standardised is not None and start.standardised.shape == params.shape:
        params = start.standardised.to(x.device).clone()
    loss, grad = objective(params)
    steps: list[torch.Tensor] = []
    changes: list[torch.Tensor] = []
    losses: list[float] = []
    converged = float(grad.abs().max()) <= GRADIENT_TOLERANCE
    iteration = 0
    while not converged and iteration < max_iterations:
        cancel.raise_if_cancelled()
        direction = -_inverse_hessian_times(grad, steps, changes)
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction (rounding): restart from steepest descent
            steps.clear()
            changes.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0 if steps else min(1.0, 1.0 / float(grad.abs().sum()))
        for _ in range(MAX_BACKTRACKS):
            candidate = params + step * direction
            new_loss, new_grad = objective(candidate)
            if new_loss <= loss + ARMIJO * step * slope:
                break
            step *= 0.5
        else:
            break  # no decrease left at float64 precision: as converged as it gets
        iteration += 1
        s, change = candidate - params, new_grad - grad
        if float(s @ change) > 1e-12:  # strongly convex, so this holds but for rounding
            steps.append(s)
            changes.append(change)
            if len(steps) > HISTORY:
                steps.pop(0)
                changes.pop(0)
        stalled = loss - new_loss <= 1e-15 * max(1.0, abs(loss))
        params, loss, grad = candidate, new_loss, new_grad
        losses.append(loss)
        if on_iteration is not None:
            on_iteration(iteration, loss)
        converged = float(grad.abs().max()) <= GRADIENT_TOLERANCE
        if stalled:
            break
    weight = params[: num_classes * features].view(num_classes, features) / scale
    bias = params[num_classes * features :] - weight @ mean
    # A fit that starts converged (nothing to learn) still reports its objective once.
    return LinearFit(weight, bias, float(l2), iteration, converged, tuple(losses) or (loss,), params)


def _inverse_hessian_times(
    grad: torch.Tensor, steps: list[torch.Tensor], changes: list[torch.Tensor]
) -> torch.Tensor:
    """L-BFGS's two-loop recursion: the inverse-Hessian estimate applied to ``grad``."""
    q = grad.clone()
    alphas = []
    rhos = [1.0 / float(s @ c) for s, c in zip(steps, changes, strict=True)]
    for s, c, rho in zip(reversed(steps), reversed(changes), reversed(rhos), strict=True):
        alpha = rho * float(s @ q)
        alphas.append(alpha)
        q -= alpha * c
    if steps:
        q *= float(steps[-1] @ changes[-1]) / float(changes[-1] @ changes[-1])
    for s, c, rho, alpha in zip(steps, changes, rhos, reversed(alphas), strict=True):
        beta = rho * float(c @ q)
        q += (alpha - beta) * s
    return q
