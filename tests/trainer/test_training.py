from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainer.helpers import collect
from trainer.common.cancel import CancelToken
from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
from trainer.common.errors import Cancelled
from trainer.data.synthetic import make_dataset
from trainer.model.mlp import paper_architecture
from trainer.model.model_file import model_from_result
from trainer.model.results import GridResult, HoldoutMetrics, pick_best
from trainer.prediction.predictor import Predictor
from trainer.training import events as ev
from trainer.training.experiment import run_experiment
from trainer.training.grid import grid_search
from trainer.training.sgd import SHUFFLE_SEED_OFFSET, Tensors, fit, new_model

# The paper's path; the pretrained one has its own tests (test_pretrained.py).
PIXELS = TrainConfig(features="pixels")
TINY_GRID = GridSpec(learning_rates=(0.05, 0.01), epochs=(1, 2))


def synthetic_tensors(n: int, seed: int) -> Tensors:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1728, generator=g)
    return Tensors(x, (x[:, 0] > 0).long())


def test_epoch_sharing_equals_separate_runs():
    train, val = synthetic_tensors(150, 0), synthetic_tensors(60, 1)
    arch = paper_architecture(1728, 2)
    config = TrainConfig(seed=5, batch_size=16)
    _, shared = collect(grid_search(train, val, GridSpec((0.01, 0.1), (1, 3)), config, arch))
    separate = []
    for lr in (0.01, 0.1):
        for epochs in (1, 3):
            _, one = collect(grid_search(train, val, GridSpec((lr,), (epochs,)), config, arch))
            separate += one
    assert shared == separate  # exact float equality, not approximately
    assert len({r.val_loss for r in shared}) == 4  # the settings really differ


def test_hand_written_sgd_equals_torch_optim_sgd():
    train = synthetic_tensors(100, 2)
    arch = paper_architecture(1728, 2)
    ours = new_model(arch, 1, torch.device("cpu"))
    collect(fit(ours, train, lr=0.05, epochs=2, batch_size=16, seed=1, phase="grid"))
    reference = new_model(arch, 1, torch.device("cpu"))
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.0)
    shuffle = torch.Generator().manual_seed(1 + SHUFFLE_SEED_OFFSET)
    for _ in range(2):
        order = torch.randperm(100, generator=shuffle)
        for start in range(0, 100, 16):
            index = order[start : start + 16]
            loss = torch.nn.functional.cross_entropy(reference(train.x[index]), train.y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_same_seed_same_losses_and_other_seed_differs(dataset: Path):
    def losses(seed: int) -> list[float]:
        events, _ = collect(
            run_experiment(dataset, config=TrainConfig(features="pixels", seed=seed), grid=TINY_GRID)
        )
        return [e.loss for e in events if isinstance(e, ev.BatchFinished)]

    first = losses(3)
    assert first == losses(3)
    assert first != losses(4)


def test_events_come_in_order_and_the_result_is_returned(dataset: Path):
    events, result = collect(run_experiment(dataset, config=PIXELS, grid=TINY_GRID))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "DatasetScanned"
    assert kinds[-3:] == ["EpochFinished", "HoldoutEvaluated", "RunFinished"]
    order = ["DatasetScanned", "FeaturesProgressed", "FeaturesFinished", "SplitMade", "BatchFinished"]
    assert [k for k in dict.fromkeys(kinds) if k in order] == order
    final_start = kinds.index("FinalTrainingStarted")
    assert kinds.count("ConfigFinished") == 4
    assert all(k != "ConfigFinished" for k in kinds[final_start:])
    assert events[-1].result is result
    batches = [e for e in events if isinstance(e, ev.BatchFinished)]
    assert [b.step for b in batches] == list(range(1, len(batches) + 1))
    assert batches[-1].step == batches[-1].total_steps
    with pytest.raises(AttributeError):
        events[0].root = "changed"  # events are frozen facts


def test_result_holds_grid_best_and_holdout(dataset: Path):
    _, result = collect(run_experiment(dataset, config=PIXELS, grid=TINY_GRID))
    assert [(r.lr, r.epochs) for r in result.grid_results] == TINY_GRID.settings
    assert result.best == pick_best(list(result.grid_results))
    assert result.holdout.size == sum(result.split_counts[2]) == 12
    assert sum(map(sum, result.holdout.confusion_matrix)) == 12
    assert len(result.final_train_losses) == result.best.epochs
    assert result.counts == (20, 20) and result.split_counts == ((10, 10), (4, 4), (6, 6))
    report = result.to_json()
    assert report["counts"] == {"comics": 20, "faces": 20}
    assert report["split"]["counts"] == {
        "train": {"comics": 10, "faces": 10},
        "val": {"comics": 4, "faces": 4},
        "holdout": {"comics": 6, "faces": 6},
    }
    assert report["grid"] == [
        {"lr": r.lr, "epochs": r.epochs, "val_accuracy": r.val_accuracy, "val_loss": r.val_loss}
        for r in result.grid_results
    ]
    assert report["best"] == {"lr": result.best.lr, "epochs": result.best.epochs}
    holdout = report["holdout"]
    assert holdout["accuracy"] == result.holdout.accuracy and holdout["loss"] == result.holdout.loss
    assert holdout["confusion_matrix"] == [list(row) for row in result.holdout.confusion_matrix]
    assert report["skipped"] == []


def test_a_trained_model_beats_chance_on_unseen_synthetic_images(tmp_path: Path):
    """Faces vs comics is easy on the synthetic set: long enough training must get it right."""
    root = make_dataset(tmp_path / "data", 40)
    _, result = collect(run_experiment(root, config=PIXELS, grid=GridSpec((0.05,), (30,))))
    assert result.holdout.size == 24
    assert result.holdout.accuracy >= 0.9, result.holdout
    fresh = make_dataset(tmp_path / "fresh", 50, seed=99)  # never seen, other random draws
    predictor = Predictor(model_from_result(result))
    faces = predictor.predict(sorted((fresh / "faces").iterdir()))
    comics = predictor.predict(sorted((fresh / "comics").iterdir()))
    right = sum(p.label == "faces" for p in faces) + sum(p.label == "comics" for p in comics)
    assert right >= 85, right  # chance is 50 of 100
    assert {p.display_label for p in faces if p.label == "faces"} == {"Real face"}
    assert {p.display_label for p in comics if p.label == "comics"} == {"Comic"}


def test_cancel_token_stops_within_one_batch(dataset: Path):
    token = CancelToken()
    gen = run_experiment(dataset, config=PIXELS, grid=TINY_GRID, cancel=token)
    seen = 0
    for event in gen:
        if isinstance(event, ev.BatchFinished):
            seen += 1
            if seen == 3:
                token.cancel()
                break
    after = []
    with pytest.raises(Cancelled):
        after.extend(gen)
    assert not [e for e in after if isinstance(e, ev.BatchFinished)]  # not one more batch


def test_closing_the_generator_stops_it(dataset: Path):
    gen = run_experiment(dataset, config=PIXELS, grid=TINY_GRID)
    for event in gen:
        if isinstance(event, ev.EpochFinished):
            break
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)


def test_unreadable_images_are_skipped_not_fatal(dataset: Path):
    (dataset / "faces" / "zero.jpg").write_bytes(b"")
    (dataset / "comics" / "text.png").write_text("hello")
    events, result = collect(run_experiment(dataset, config=PIXELS, grid=GridSpec((0.01,), (1,))))
    decoded = next(e for e in events if isinstance(e, ev.FeaturesFinished))
    assert {Path(s.path).name: s.reason for s in decoded.unreadable} == {
        "text.png": "not a readable image (unknown format or corrupt header)",
        "zero.jpg": "the file is empty (0 bytes)",
    }
    assert result.counts == (20, 20)
    assert len(result.skipped) == 2


def test_pick_best_prefers_accuracy_then_lower_loss():
    a = GridResult(0.01, 1, 0.9, 0.3)
    b = GridResult(0.01, 3, 0.95, 0.2)
    c = GridResult(0.001, 3, 0.95, 0.1)
    d = GridResult(0.001, 5, 0.95, 0.1)
    assert pick_best([a, b, c, d]) is c


def test_holdout_metrics():
    labels = np.array([0, 0, 0, 1, 1])
    predicted = np.array([0, 1, 0, 1, 1])
    m = HoldoutMetrics.from_predictions(labels, predicted, 0.5, 2)
    assert m.confusion_matrix == ((2, 1), (0, 2))
    assert m.accuracy == pytest.approx(0.8)
    assert m.precision == pytest.approx((1.0, 2 / 3))
    assert m.recall == pytest.approx((2 / 3, 1.0))


def test_trainer_never_imports_qt():
    code = (
        "import sys, trainer.cli, trainer.training.experiment, trainer.prediction.predictor, trainer.model.model_file, trainer.training.progress;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6', 'pyqtgraph', 'qtpy')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sources = Path(__file__).resolve().parents[2] / "trainer"
    for path in sources.rglob("*.py"):
        text = path.read_text()
        for name in ("PySide6", "PyQt", "pyqtgraph", "qtpy"):
            assert f"import {name}" not in text and f"from {name}" not in text, path


def test_results_do_not_depend_on_the_cpu_thread_count(dataset: Path):
    def losses(threads: int) -> list[float]:
        events, _ = collect(
            run_experiment(dataset, config=PIXELS, grid=TINY_GRID, decode=DecodeOptions(threads=threads))
        )
        return [e.loss for e in events if isinstance(e, ev.BatchFinished)]

    assert losses(1) == losses(2)


def test_history_keeps_each_grid_epoch_and_survives_the_model_file(dataset: Path, tmp_path: Path):
    from trainer.model.model_file import load_model, save_model

    events, result = collect(run_experiment(dataset, config=PIXELS, grid=TINY_GRID))
    grid_epochs = [e for e in events if isinstance(e, ev.EpochFinished) and e.phase == "grid"]
    assert [(p.lr, p.epoch) for p in result.history] == [(e.lr, e.epoch) for e in grid_epochs]
    assert [p.train_loss for p in result.history] == [e.train_loss for e in grid_epochs]
    scored = {(p.lr, p.epoch): p.val_accuracy for p in result.history}
    for r in result.grid_results:  # the grid's cells are points of these curves
        assert scored[(r.lr, r.epochs)] == r.val_accuracy
    loaded = load_model(save_model(tmp_path / "m.safetensors", result))
    assert [(p.lr, p.epoch) for p in loaded.history] == [(p.lr, p.epoch) for p in result.history]
    assert [p.val_accuracy for p in loaded.history] == pytest.approx([p.val_accuracy for p in result.history])
    assert loaded.final_train_losses == result.final_train_losses
    assert loaded.best == result.best


def _reference_heads(model, hidden: list[int]) -> list[torch.nn.Sequential]:
    """Each head of an ensemble as a plain ``nn.Sequential`` MLP with a copy of its weights."""
    heads = []
    for k in range(model.heads):
        layers: list[torch.nn.Module] = []
        for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
            linear = torch.nn.Linear(w.shape[2], w.shape[1])
            with torch.no_grad():
                linear.weight.copy_(w[k])
                linear.bias.copy_(b[k])
            layers.append(linear)
            if i < len(hidden):
                layers.append(torch.nn.ReLU())
        heads.append(torch.nn.Sequential(*layers))
    return heads


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("hidden", [[], [16], [32, 16, 8]])
def test_written_out_sgd_step_equals_separate_torch_optim_runs(hidden: list[int], heads: int):
    """``sgd_step`` (forward, loss and backward written out, all heads in one batched product)
    against each head trained alone by autograd and ``torch.optim.SGD`` on its own batches."""
    from trainer.model.mlp import build_model
    from trainer.training.sgd import sgd_step

    arch = {"name": "mlp", "input_size": 40, "hidden_sizes": hidden, "num_classes": 3, "activation": "relu"}
    ours = build_model({**arch, "heads": heads}, seed=0)
    references = _reference_heads(ours, hidden)
    optimisers = [torch.optim.SGD(r.parameters(), lr=0.1) for r in references]
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(heads, 24, 40, generator=generator)  # each head its own batch
        y = torch.randint(0, 3, (heads, 24), generator=generator)
        loss = sgd_step(ours, x, y, 0.1)
        expected = []
        for k, (reference, optimiser) in enumerate(zip(references, optimisers, strict=True)):
            optimiser.zero_grad()
            value = torch.nn.functional.cross_entropy(reference(x[k]), y[k])
            value.backward()
            optimiser.step()
            expected.append(value.item())
        assert loss == pytest.approx(sum(expected) / heads, rel=1e-6, abs=1e-7)
    for k, reference in enumerate(references):
        linears = [m for m in reference if isinstance(m, torch.nn.Linear)]
        for i, linear in enumerate(linears):
            torch.testing.assert_close(ours.weights[i][k], linear.weight.detach(), rtol=0, atol=1e-6)
            torch.testing.assert_close(ours.biases[i][k], linear.bias.detach(), rtol=0, atol=1e-6)


def test_the_ensemble_averages_the_probabilities_of_its_heads():
    """The ensemble's logits are the log of its heads' mean softmax, each head computed alone."""
    from trainer.model.mlp import build_model

    arch = {"name": "mlp", "input_size": 12, "hidden_sizes": [8], "num_classes": 2, "activation": "relu"}
    ensemble = build_model({**arch, "heads": 4}, seed=3)
    x = torch.randn(10, 12, generator=torch.Generator().manual_seed(0))
    alone = torch.stack([torch.softmax(head(x), dim=1) for head in _reference_heads(ensemble, [8])])
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(ensemble(x), dim=1), alone.mean(dim=0))
        single = build_model({**arch, "heads": 1}, seed=3)
        torch.testing.assert_close(single(x), _reference_heads(single, [8])[0](x))  # one head: its logits
    heads_differ = [h.weight for h in (r[0] for r in _reference_heads(ensemble, [8]))]
    assert not torch.equal(heads_differ[0], heads_differ[1])  # each head has its own seed


def test_head_zero_of_an_ensemble_is_the_single_mlp_of_the_same_seed():
    """One head is the paper's single MLP: an ensemble's first head starts from the same weights
    and sees the same shuffling, so ``--heads 1`` keeps the paper recipe's numbers."""
    from trainer.model.mlp import build_model

    arch = paper_architecture(1728, 2, heads=3)
    ensemble, single = build_model(arch, seed=7), build_model({**arch, "heads": 1}, seed=7)
    for w_ens, w_one in zip(ensemble.weights, single.weights, strict=True):
        assert torch.equal(w_ens[0], w_one[0])


def test_grid_runs_train_side_by_side_on_single_threaded_lanes(monkeypatch):
    """Two learning rates and a budget of two lanes: both runs are inside an SGD step at once,
    each on a lane with one thread; the results equal a run on one lane."""
    import threading

    from trainer.training import sgd

    train, val = synthetic_tensors(64, 0), synthetic_tensors(32, 1)
    arch, config, grid = (
        paper_architecture(1728, 2),
        TrainConfig(seed=2, batch_size=16),
        GridSpec((0.01, 0.1), (1, 2)),
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, alone = collect(grid_search(train, val, grid, config, arch, lanes=1))
        torch.set_num_threads(2)
        both_in = threading.Barrier(2, timeout=30)  # breaks, failing the run, unless two runs meet
        seen: list[tuple[str, int]] = []
        real = sgd.sgd_step

        def meeting(*args):
            seen.append((threading.current_thread().name, torch.get_num_threads()))
            if len(seen) <= 2:
                both_in.wait()
            return real(*args)

        monkeypatch.setattr(sgd, "sgd_step", meeting)
        events, side_by_side = collect(grid_search(train, val, grid, config, arch, lanes=2))
        assert torch.get_num_threads() == 2  # put back for the caller
    finally:
        torch.set_num_threads(previous)
    assert side_by_side == alone
    assert all(name.startswith("facecomic-lane") and threads == 1 for name, threads in seen)
    assert len({name for name, _ in seen[:2]}) == 2
    steps = [e.step for e in events if isinstance(e, ev.BatchFinished)]
    assert steps == list(range(1, 17))  # numbered in the order they are yielded


def test_refit_all_trains_the_saved_model_on_every_image_after_the_holdout(dataset: Path):
    """``refit_all``: the holdout figures are those of the ordinary run (the same seed gives the
    same ones), then the chosen setting is retrained on train, val and holdout together."""
    _, plain = collect(run_experiment(dataset, config=PIXELS, grid=TINY_GRID))
    events, refit = collect(
        run_experiment(dataset, config=TrainConfig(features="pixels", refit_all=True), grid=TINY_GRID)
    )
    assert refit.holdout == plain.holdout and refit.best == plain.best
    started = [e for e in events if isinstance(e, ev.FinalTrainingStarted)]
    assert [(e.phase, e.train_size) for e in started] == [("final", 28), ("refit", 40)]  # 14+14, 20+20
    assert plain.trained_on == (14, 14) and refit.trained_on == (20, 20)
    order = [type(e).__name__ for e in events]
    assert order.index("HoldoutEvaluated") < next(
        i for i, e in enumerate(events) if getattr(e, "phase", "") == "refit"
    )
    refit_batches = [e for e in events if isinstance(e, ev.BatchFinished) and e.phase == "refit"]
    assert len(refit_batches) == refit.best.epochs * 1  # 40 images: one batch of 64 per epoch
    assert refit_batches[-1].step == refit_batches[-1].total_steps  # progress ends at 100%
    assert not torch.equal(refit.state_dict["weights.0"], plain.state_dict["weights.0"])
    assert refit.to_json()["refit_all"] is True and refit.to_json()["trained_on"] == {
        "comics": 20,
        "faces": 20,
    }


def test_final_training_runs_side_work_on_a_lane_beside_the_heads(monkeypatch):
    """``alongside`` runs on a lane of its own while the heads train (it meets a training step
    at a barrier), changes no number of the heads, and its result or its error comes back."""
    import threading

    from trainer.training import sgd
    from trainer.training.grid import train_final

    data = synthetic_tensors(64, 0)
    arch, config = paper_architecture(1728, 2, heads=2), TrainConfig(seed=3, batch_size=16)

    def final(alongside=None, lanes=2):
        return collect(
            train_final(
                data, 0.1, 2, config, arch, steps=sgd.StepCounter(total=8), lanes=lanes, alongside=alongside
            )
        )[1]

    plain_model, plain_losses, nothing = final(lanes=1)
    assert nothing is None
    met = threading.Barrier(2, timeout=30)  # breaks, failing the run, unless both are in at once
    real, where = sgd.sgd_step, []

    def side() -> str:
        where.append(threading.current_thread().name)
        met.wait()
        return "fitted"

    def step(*args):
        if not met.broken and met.n_waiting:
            met.wait()
        return real(*args)

    monkeypatch.setattr(sgd, "sgd_step", step)
    model, losses, fitted = final(side)
    assert fitted == "fitted" and where[0].startswith("facecomic-lane")
    assert losses == plain_losses
    assert all(torch.equal(a, b) for a, b in zip(model.weights, plain_model.weights, strict=True))

    def broken() -> None:
        raise ValueError("the side work failed")

    with pytest.raises(ValueError, match="side work failed"):
        final(broken)
