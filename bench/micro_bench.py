"""Small measurements behind design choices, for ``make bench`` (section 5) or
``python -m bench.micro_bench``: the written-out SGD step against autograd, the linear head's whole
part of a run on real embeddings, a full garbage collection with the app loaded before and after
``gc.freeze()``, and a redraw of the live training plots drawn plainly against smoothly."""

from __future__ import annotations

import gc
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent


def sgd_step_ms(steps: int = 300, repeats: int = 3, heads: int = 5) -> dict[str, float]:
    """1280-128-128-2 steps on 64 images, one torch thread, best of ``repeats``, in ms per step:
    autograd plus ``p -= lr * grad`` (the step before it was written out) against ``sgd_step``
    for one head; ``heads`` heads in one batched ``sgd_step`` against ``heads`` one-head steps; and
    gathering their ``heads`` x 64 rows of features by advanced indexing against ``index_select``."""
    from trainer.model.mlp import paper_architecture
    from trainer.training.sgd import new_model, rows, sgd_step

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(1400, 1280, generator=g), torch.randint(0, 2, (1400,), generator=g)
        order = torch.randperm(1400, generator=g)
        batches = [order[s : s + 64] for s in range(0, 1344, 64)]
        model = new_model(paper_architecture(1280, 2), 0, torch.device("cpu"))
        params = list(model.parameters())
        singles = [new_model(paper_architecture(1280, 2), k, torch.device("cpu")) for k in range(heads)]
        ensemble = new_model(paper_architecture(1280, 2, heads), 0, torch.device("cpu"))

        def autograd_step(index: torch.Tensor) -> float:
            loss = F.cross_entropy(model(x[index]), y[index])
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-0.01)
            return loss.item()

        def written_out_step(index: torch.Tensor) -> float:
            return sgd_step(model, x[index][None], y[index][None], 0.01)

        def separate_heads_step(index: torch.Tensor) -> float:
            return sum(sgd_step(m, x[index][None], y[index][None], 0.01) for m in singles) / heads

        def batched_heads_step(index: torch.Tensor) -> float:
            stacked = index.expand(heads, -1)
            return sgd_step(ensemble, rows(x, stacked), rows(y, stacked), 0.01)

        def advanced_indexing(index: torch.Tensor) -> float:
            return float(x[index.expand(heads, -1)][0, 0, 0])

        def index_select(index: torch.Tensor) -> float:
            return float(rows(x, index.expand(heads, -1))[0, 0, 0])

        def ms(step) -> float:
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                for i in range(steps):
                    step(batches[i % len(batches)])
                best = min(best, (time.perf_counter() - start) / steps * 1e3)
            return best

        return {
            "autograd_ms": ms(autograd_step),
            "written_out_ms": ms(written_out_step),
            "heads": heads,
            "separate_heads_ms": ms(separate_heads_step),
            "batched_heads_ms": ms(batched_heads_step),
            "gather_advanced_indexing_ms": ms(advanced_indexing),
            "gather_index_select_ms": ms(index_select),
        }
    finally:
        torch.set_num_threads(previous)


def linear_head_seconds(repeats: int = 3) -> dict[str, float]:
    """The linear head's part of a default run on the three samples' 1,212 EfficientNet-Lite0
    embeddings (1,280 wide, cached by ``make cross``/``make stability``; synthetic rows of the
    same shape where they are missing): the grid of 7 L2 weights on train, 5 calibration folds on
    train+val, the final fit and the refit, on 1 and 2 lanes; best of ``repeats``, in seconds."""
    import numpy as np

    from trainer.common.configs import GridSpec, TrainConfig
    from trainer.common.events import drain
    from trainer.data.splits import make_split
    from trainer.training.linear_training import fit_count, linear_grid_search, train_linear_final
    from trainer.training.sgd import StepCounter, Tensors

    x, y, source = _embeddings()
    keys = [str(i) for i in range(len(y))]
    config, grid = TrainConfig(seed=0), GridSpec()
    split = make_split(y, keys, ("comics", "faces"), "random", config.split_fractions, 0)
    rows, labels = torch.from_numpy(x), torch.from_numpy(y)
    train = Tensors(rows[split.train], labels[split.train])
    val = Tensors(rows[split.val], labels[split.val])
    train_val_index = np.concatenate([split.train, split.val])
    train_val = Tensors(rows[train_val_index], labels[train_val_index])

    def whole(lanes: int) -> float:
        steps = StepCounter(total=fit_count(grid, True))
        start = time.perf_counter()
        results = drain(linear_grid_search(train, val, grid, config, 2, steps=steps, lanes=lanes))
        best = min(results, key=lambda r: r.val_loss)
        train_val_keys = [keys[i] for i in train_val_index]
        drain(train_linear_final(train_val, best, config, 2, steps=steps, lanes=lanes,
                                 calibration_keys=train_val_keys))  # fmt: skip
        drain(train_linear_final(Tensors(rows, labels), best, config, 2, steps=steps, lanes=lanes))
        return time.perf_counter() - start

    return {
        "rows": len(y),
        "features": x.shape[1],
        "embeddings": source,
        "one_lane_s": min(whole(1) for _ in range(repeats)),
        "two_lanes_s": min(whole(2) for _ in range(repeats)),
    }


def _embeddings():
    """The three samples' cached embeddings and labels, or synthetic rows of the same shape."""
    import numpy as np

    try:
        from bench.cross_source import SOURCES, test_inputs
        from trainer.common.configs import DecodeOptions

        options = DecodeOptions(cache_dir=REPO / "bench" / "data" / "cache")
        parts = [test_inputs(source, options) for source in SOURCES]
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            "the three samples",
        )
    except Exception:  # no ../shared here: the same shape, two shifted clouds
        g = np.random.default_rng(0)
        y = np.arange(1212) % 2
        x = np.maximum(g.normal(size=(1212, 1280)) + 0.3 * y[:, None], 0).astype(np.float32)
        return x, y, "synthetic"


def full_collection_ms() -> dict[str, float]:
    """A full ``gc.collect()`` with torch, Qt and the app imported, all objects collectable, then
    with them frozen as the app does (``facecomic_gui.launch.keep_garbage_collection_short``)."""
    import facecomic_gui.main_window  # noqa: F401  (what the app has loaded)
    import trainer.prediction.predictor
    import trainer.training.experiment  # noqa: F401

    was_frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.collect()
    start = time.perf_counter()
    gc.collect()
    unfrozen = (time.perf_counter() - start) * 1e3
    tracked = len(gc.get_objects())
    gc.freeze()
    start = time.perf_counter()
    gc.collect()
    frozen = (time.perf_counter() - start) * 1e3
    if not was_frozen:
        gc.unfreeze()
    return {"objects": tracked, "unfrozen_ms": unfrozen, "frozen_ms": frozen}


def plot_redraw_ms(repeats: int = 10) -> dict[str, float]:
    """Both live plots of a 2,700-batch run (two learning rates of 1,100 batches and a final run
    of 500; 50 epochs of accuracy each), redrawn and painted: live (plain) against smooth.
    Median of ``repeats``, in ms of the GUI thread."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from facecomic_gui.launch import create_app
    from facecomic_gui.train.plots import AccuracyPlotWidget, LossPlotWidget

    app = create_app([])
    loss, accuracy = LossPlotWidget(), AccuracyPlotWidget()
    loss.resize(530, 280)
    accuracy.resize(350, 280)
    loss.show()
    accuracy.show()
    loss.set_epoch_range(50)
    accuracy.set_epoch_range(50)
    g = torch.Generator().manual_seed(0)
    for name in ("lr 0.1", "lr 0.01"):
        for i, value in enumerate(torch.rand(1100, generator=g).tolist()):
            loss.add_point(name, i / 22, value)
        for epoch, value in enumerate(torch.rand(50, generator=g).tolist(), start=1):
            accuracy.add_point(name, epoch, 0.8 + 0.2 * value)
    for i, value in enumerate(torch.rand(500, generator=g).tolist()):
        loss.add_point("final", i / 22, value, final=True)
    app.processEvents()

    def median_ms(live: bool) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for widget in (loss, accuracy):
                widget.redraw(live=live)
                widget.repaint()
            app.processEvents()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    median_ms(True)  # first paints lay out the axes
    result = {"live_ms": median_ms(True), "smooth_ms": median_ms(False)}
    loss.close()
    accuracy.close()
    return result


def run() -> dict[str, dict[str, float]]:
    step, linear = sgd_step_ms(), linear_head_seconds()
    collection, plots = full_collection_ms(), plot_redraw_ms()
    print(
        f"    SGD step, 1280-128-128-2 on 64 images, 1 thread: autograd + update "
        f"{step['autograd_ms']:.2f} ms, written out {step['written_out_ms']:.2f} ms\n"
        f"    {step['heads']} heads, 1 thread: {step['heads']} one-head steps "
        f"{step['separate_heads_ms']:.2f} ms, one batched step {step['batched_heads_ms']:.2f} ms\n"
        f"    gathering their {step['heads']} x 64 rows of features: advanced indexing "
        f"{step['gather_advanced_indexing_ms']:.3f} ms, index_select {step['gather_index_select_ms']:.3f} ms\n"
        f"    the linear head's whole part of a run (7 L2 weights, 5 calibration folds, final fit, refit) "
        f"on {linear['rows']:,} x {linear['features']:,} embeddings ({linear['embeddings']}): "
        f"{linear['one_lane_s']:.2f} s on 1 lane, {linear['two_lanes_s']:.2f} s on 2\n"
        f"    full garbage collection with the app loaded ({collection['objects']:,} objects): "
        f"{collection['unfrozen_ms']:.0f} ms, after gc.freeze() {collection['frozen_ms']:.2f} ms\n"
        f"    redrawing both live plots of a 2,700-batch run: live (plain) {plots['live_ms']:.0f} ms, "
        f"smooth {plots['smooth_ms']:.0f} ms of the GUI thread",
        flush=True,
    )
    return {"sgd_step": step, "linear_head": linear, "full_collection": collection, "plot_redraw": plots}


if __name__ == "__main__":
    print("Micro-benchmarks (2 cores here; see docs/performance.md):")
    run()
