"""How fast is "Why?": ``python -m bench.why_bench`` (docs/why.md).

(a) In the app (offscreen), with the default model: 1024 px JPEGs are dropped on the Predict tab
    and predicted; then each is opened at full size and W is pressed. Timed from the key to the
    map drawn, with the longest event-loop stall meanwhile (a 5 ms timer on the GUI thread). The
    first map of a session also pays for autograd's first use; it is reported apart.
(b) The trainer alone: ``Explainer.explain`` on the same files (decode, forward, backward), and
    the whole ``--explain`` write (overlay at full size, PNG encoding) per image.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "data"


def make_images(folder: Path, count: int, side: int = 1024) -> list[Path]:
    """``count`` sample faces and comics upscaled to ``side`` px JPEGs (what a phone or a
    screenshot gives), so decoding costs what a real 1024 px file costs."""
    sources = sorted((SAMPLES / "diverse-sample" / "faces").iterdir())[: count // 2]
    sources += sorted((SAMPLES / "diverse-sample" / "comics").iterdir())[: count - len(sources)]
    paths = []
    for i, source in enumerate(sources):
        with Image.open(source) as image:
            big = ImageOps.fit(image.convert("RGB"), (side, side), Image.Resampling.BICUBIC)
        path = folder / f"{i:02d}.jpg"
        big.save(path, quality=90)
        paths.append(path)
    return paths


def app_figures(paths: list[Path]) -> dict:
    from bench.gui_bench import StallMeter, open_window, wait

    switch_interval = sys.getswitchinterval()
    with tempfile.TemporaryDirectory() as tmp:
        app, window = open_window(Path(tmp), size=(1200, 800))
        wait(window.model_changed, timeout_s=120)
        tab = window.predict_tab
        window.tabs.setCurrentWidget(tab)
        tab.add_inputs(paths)
        wait(tab.predictions_finished)
        meter = StallMeter()
        shown, stalls, opened, worker = [], [], [], []
        for row in range(len(paths)):
            meter.start()
            start = time.perf_counter()
            viewer = tab.open_image(row)
            viewer.resize(900, 900)
            app.processEvents()
            opened.append(time.perf_counter() - start)
            start = time.perf_counter()
            meter.start()
            viewer.why_button.toggle()
            if not viewer.overlay_shown:
                wait(viewer.why_shown, timeout_s=120)
            shown.append(time.perf_counter() - start)
            stalls.append(meter.stop())
            assert viewer.overlay_shown, viewer.why_status.text()
            worker.append(viewer._map.seconds)
            viewer.close()
        window.close()
    # The app's set-up shortened the switch interval and froze the garbage collector; (b) comes
    # next and is the trainer alone, so both are put back.
    sys.setswitchinterval(switch_interval)
    gc.unfreeze()
    rest = shown[1:] or shown
    return {
        "first_map_s": round(shown[0], 3),
        "map_s_median": round(statistics.median(rest), 3),
        "map_s_max": round(max(rest), 3),
        "in_worker_s_median": round(statistics.median(worker[1:] or worker), 3),
        "worst_stall_ms": round(max(stalls), 1),
        "open_viewer_s_max": round(max(opened), 3),
        "images": len(paths),
    }


def trainer_figures(paths: list[Path]) -> dict:
    from trainer.model.model_file import load_model
    from trainer.prediction.explain import Explainer, explain_to_folder
    from trainer.prediction.predictor import Predictor

    loaded = load_model(REPO / "assets" / "facecomic-default.safetensors")
    explainer = Explainer(loaded)
    predictions = Predictor(loaded).predict(paths)
    explainer.explain(paths[0])  # first use of the backbone and autograd
    times = []
    for path in paths:
        start = time.perf_counter()
        explainer.explain(path)
        times.append(time.perf_counter() - start)
    writes = []
    with tempfile.TemporaryDirectory() as tmp:
        taken: set[str] = set()
        for path, prediction in zip(paths, predictions, strict=True):
            start = time.perf_counter()
            explain_to_folder(explainer, Path(tmp), path, prediction, taken)
            writes.append(time.perf_counter() - start)
    return {
        "explain_s_median": round(statistics.median(times), 3),
        "explain_s_max": round(max(times), 3),
        "explain_and_write_s_median": round(statistics.median(writes), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "why_bench.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), args.images)
        results = {
            "cores": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "app": app_figures(paths),  # first, so its first map is the session's first
            "trainer": trainer_figures(paths),
        }
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
