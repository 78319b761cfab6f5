"""The linear head: a deterministic convex fit, its place in a run, and old files beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.stability import mean_pairwise_disagreement, shared_disagreement
from trainer.common.cancel import CancelToken
from trainer.common.configs import GridSpec, PreprocessConfig, TrainConfig
from trainer.common.errors import Cancelled
from trainer.data.synthetic import make_dataset
from trainer.model.linear import fit_linear, standardiser
from trainer.model.model_file import load_model, model_from_result, save_model
from trainer.prediction.predictor import Predictor
from trainer.training.events import ConfigFinished, LinearFitFinished, RunFinished, drain, run_events
from trainer.training.experiment import run_experiment

FIXTURES = Path(__file__).parent / "fixtures"
# Pixel features at 8x8 keep these runs to a fraction of a second; the head does not care.
SMALL = PreprocessConfig(size=8)
LINEAR = TrainConfig(features="pixels", head="linear", seed=3)


def blobs(
    n: int = 60, features: int = 20, seed: int = 0, gap: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, features, generator=g)
    x[:, 0] += gap * (2 * y - 1)
    return x, y


def test_the_fit_is_deterministic_bit_for_bit():
    x, y = blobs()
    first, second = fit_linear(x, y, 2, 0.1), fit_linear(x.clone(), y.clone(), 2, 0.1)
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)
    assert first.converged and first.losses == second.losses


def test_it_reaches_zero_training_error_on_a_separable_set():
    x, y = blobs(gap=6.0)
    fit = fit_linear(x, y, 2, 1e-3)
    assert fit.converged
    assert torch.equal(fit.logits(x).argmax(dim=1), y)


def test_it_converges_to_the_minimum_of_its_objective():
    """At the answer, the objective's gradient (by autograd, on the standardised rows) is zero."""
    x, y = blobs(n=80, features=30, seed=1, gap=1.0)
    l2 = 0.05
    fit = fit_linear(x, y, 2, l2)
    mean, scale = standardiser(x)
    z = (x.double() - mean) / scale
    weight = (fit.weight * scale).clone().requires_grad_(True)  # back in the standardised space
    bias = (fit.bias + fit.weight @ mean).clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(z @ weight.T + bias, y) + 0.5 * l2 * (weight**2).sum()
    loss.backward()
    assert float(weight.grad.abs().max()) < 1e-5 and float(bias.grad.abs().max()) < 1e-5
    assert loss.item() == pytest.approx(fit.losses[-1], abs=1e-9)


def test_stronger_l2_gives_smaller_weights_and_the_model_repeats_the_fit():
    x, y = blobs(gap=1.5)
    weak, strong = fit_linear(x, y, 2, 0.01), fit_linear(x, y, 2, 1.0)
    assert float(strong.weight.norm()) < float(weak.weight.norm())
    model = weak.to_model()
    assert model.sizes == [20, 2] and model.heads == 1
    assert torch.allclose(model(x.float()), weak.logits(x), atol=1e-5)


def test_a_cancel_stops_the_fit():
    token = CancelToken()
    seen = []

    def on_iteration(iteration: int, _loss: float) -> None:
        seen.append(iteration)
        if iteration == 2:
            token.cancel()

    x, y = blobs(n=200, features=50, gap=0.5)
    with pytest.raises(Cancelled):
        fit_linear(x, y, 2, 1e-4, cancel=token, on_iteration=on_iteration)
    assert seen == [1, 2]


def test_a_linear_run_is_the_same_for_the_same_seed_and_its_file_loads(tmp_path: Path):
    data = make_dataset(tmp_path / "d", 16, seed=2)
    grid = GridSpec(l2=(0.01, 0.1, 1.0))
    events: list = []
    first = run_events(run_experiment(data, preprocess=SMALL, config=LINEAR, grid=grid), events.append)
    second = drain(run_experiment(data, preprocess=SMALL, config=LINEAR, grid=grid))
    for name, tensor in first.state_dict.items():
        assert torch.equal(tensor, second.state_dict[name]), name
    assert first.temperature == second.temperature
    # The grid is L2 weights, each fit reported; calibration folds, the final fit and the refit.
    assert [e.l2 for e in events if isinstance(e, ConfigFinished)] == list(grid.l2)
    phases = [e.phase for e in events if isinstance(e, LinearFitFinished)]
    assert phases == ["grid"] * 3 + ["calibration"] * 5 + ["final", "refit"]
    steps = [e.step for e in events if isinstance(e, LinearFitFinished)]
    assert steps == list(range(1, 11)) and events[-1] == RunFinished(first)
    assert first.train_config.head == "linear" and first.train_config.refit_all  # auto: refit
    assert first.architecture["hidden_sizes"] == [] and first.head["kind"] == "linear"
    assert first.best.l2 in grid.l2 and first.best.lr is None
    assert sum(first.trained_on) == sum(first.counts)  # refitted on every image
    # Its history: each fit's objective per iteration, the validation on its last iteration.
    scored = [p for p in first.history if p.val_accuracy is not None]
    assert [p.l2 for p in scored] == list(grid.l2)

    path = save_model(tmp_path / "linear.safetensors", first)
    loaded = load_model(path)
    assert loaded.head_kind == "linear" and loaded.best == first.best
    assert [(p.l2, p.epoch) for p in loaded.history] == [(p.l2, p.epoch) for p in first.history]
    assert loaded.metadata["head"]["converged"] is True
    images = [str(p) for p in sorted(Path(data).rglob("*.png"))[:4]]
    direct = Predictor(model_from_result(first)).predict(images)
    again = Predictor(loaded).predict(images)
    for shown, made in zip(again, direct, strict=True):
        assert shown.probabilities == pytest.approx(made.probabilities)


def test_the_seed_moves_only_the_split_and_the_l2_choice(tmp_path: Path):
    """With the split held fixed, another training seed gives the same linear model bit for bit
    (the MLP's SGD would not)."""
    data = make_dataset(tmp_path / "d", 16, seed=4)
    runs = [
        drain(run_experiment(data, preprocess=SMALL, config=TrainConfig(features="pixels", head="linear",
                                                                        seed=s, split_seed=0)))
        for s in (0, 1)
    ]  # fmt: skip
    # The calibration folds follow the seed, so the temperature may differ; the weights do not.
    for name, tensor in runs[0].state_dict.items():
        assert torch.equal(tensor, runs[1].state_dict[name]), name


def test_no_refit_keeps_the_train_val_model(tmp_path: Path):
    data = make_dataset(tmp_path / "d", 12, seed=1)
    config = TrainConfig(features="pixels", head="linear", refit_all=False)
    result = drain(run_experiment(data, preprocess=SMALL, config=config, grid=GridSpec(l2=(0.1,))))
    assert not result.train_config.refit_all
    assert sum(result.trained_on) == sum(c[0] + c[1] for c in zip(*result.split_counts[:2], strict=True))


def test_heads_apply_to_the_mlp_only():
    from trainer.features.registry import resolved_config

    with pytest.raises(ValueError, match="linear head is one model"):
        TrainConfig(head="linear", heads=5)
    with pytest.raises(ValueError, match="add --head mlp"):
        resolved_config(TrainConfig(heads=5))  # pretrained features: the linear head by default
    assert resolved_config(TrainConfig(heads=5, head="mlp")).heads == 5
    assert resolved_config(TrainConfig()).head == "linear"
    assert resolved_config(TrainConfig(features="pixels")).head == "mlp"
    assert resolved_config(TrainConfig(features="pixels")).refit_all is False


def test_a_model_file_from_before_the_linear_head_loads_and_predicts_as_before(tmp_path: Path):
    """``fixtures/format3-pixels-2heads.safetensors`` was written by the app before this head
    existed (3800be7), with the predictions it then gave on a seeded synthetic probe."""
    expected = json.loads((FIXTURES / "format3-pixels-2heads.json").read_text())
    model = load_model(FIXTURES / "format3-pixels-2heads.safetensors")
    assert model.head_kind == "mlp" and model.heads == 2 and model.best.lr is not None
    made = expected["probe"]["make_dataset"]
    probe = make_dataset(tmp_path / "probe", made["per_class"], seed=made["seed"])
    rows = expected["predictions"]
    predictions = Predictor(model).predict([str(probe / row["image"]) for row in rows])
    for row, prediction in zip(rows, predictions, strict=True):
        assert prediction.label == row["label"] and prediction.flag == row["flag"]
        assert prediction.probabilities == pytest.approx(row["probabilities"], abs=1e-6)


def test_stability_disagreement_on_a_constructed_case():
    a, b, c = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), np.array([1, 1, 1, 1])
    # pairs: a-b differ on 1 of 4, a-c on 2 of 4, b-c on 1 of 4: mean (0.25 + 0.5 + 0.25) / 3
    assert mean_pairwise_disagreement([a, b, c]) == pytest.approx(1 / 3)
    assert mean_pairwise_disagreement([a, a, a]) == 0.0
    assert mean_pairwise_disagreement([a]) == 0.0
    # Holdouts overlap in part: only the pictures both models answered count.
    first, second, third = {"x": 0, "y": 1}, {"y": 0, "z": 1}, {"q": 1}
    assert shared_disagreement([first, second]) == 1.0  # they share y, and differ on it
    assert shared_disagreement([first, second, third]) == 1.0  # third shares nothing: left out
    assert shared_disagreement([{"x": 0, "y": 1}, {"x": 0, "y": 0}]) == 0.5
