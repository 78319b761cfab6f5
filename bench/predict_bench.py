"""``facecomic-predict`` on large JPEGs against the draft-decode floor, per backbone engine, in one
process (section 1b of ``make bench``; alone: ``python -m bench.predict_bench``).

The floor decodes every file as prediction must (JPEG draft to the backbone's 160 px, bicubic) on
all cores, and does nothing else. Each engine then runs ``facecomic-predict`` in-process, after
``import torch``, its output discarded: the time after the torch start-up, with the model, the
backbone's weights or its onnxruntime file loaded again each time as a new process would.
Engines alternate, ``repeats`` times, and each figure is the median, so a burst of other work on a
shared machine does not land on one engine only. int8 predicts with a model whose head was trained
on int8 embeddings (the default recipe on face2comics-sample), since a head is only served at its
own precision.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.engine import backbone_engine
from trainer.common.assets import default_model_path
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.backbone_spec import RECOMMENDED_SIZE

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "data" / "face2comics-sample"


def _draft_decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image.draft("RGB", (RECOMMENDED_SIZE, RECOMMENDED_SIZE))
        image = image.convert("RGB")
        return np.asarray(image.resize((RECOMMENDED_SIZE, RECOMMENDED_SIZE), Image.Resampling.BICUBIC))


def decode_floor(files: list[Path]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(_draft_decode, files))
    return time.perf_counter() - start


def predict_seconds(folder: Path, model: Path, runtime: str) -> float:
    """In-process ``facecomic-predict --model MODEL FOLDER``, stdout and stderr discarded."""
    from trainer.cli import predict_main
    from trainer.features import efficientnet, onnx_backbone

    # As in a new process: the weights, or the onnxruntime file, are loaded again (from the cache).
    efficientnet._loaded.clear()
    onnx_backbone.forget_sessions()
    with backbone_engine(runtime=runtime):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = predict_main(["--model", str(model), str(folder)])
        seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"facecomic-predict failed with exit code {code}")
    return seconds


def int8_model(folder: Path) -> Path | None:
    """A default-recipe model trained on int8 embeddings of face2comics-sample, or None when the
    int8 backbone cannot be built here."""
    from bench.extract_bench import ensure_int8
    from trainer.common.configs import DecodeOptions, TrainConfig
    from trainer.common.events import drain
    from trainer.model.model_file import save_model
    from trainer.training.experiment import run_experiment

    try:
        ensure_int8(RECOMMENDED_SIZE)
    except Exception as err:  # no samples, no onnxruntime: the other engines still run
        print(f"    (no int8 model: {err})")
        return None
    with backbone_engine(precision="int8"):
        result = drain(
            run_experiment(SAMPLE, config=TrainConfig(seed=0), decode=DecodeOptions(use_cache=False))
        )
    return save_model(folder / "int8.safetensors", result)


def run(folder: Path, repeats: int = 3) -> dict:
    import torch  # noqa: F401 - start-up is not what is measured

    files = sorted(folder.rglob("*.jpg"))
    for path in files:  # read every file once so no engine pays for a cold disk cache
        path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="facecomic-predict-bench-") as tmp:
        models = {
            "torch": (default_model_path(), "torch"),
            "onnxruntime fp32": (default_model_path(), "auto"),
        }
        int8 = int8_model(Path(tmp))
        if int8 is not None:
            models["onnxruntime int8"] = (int8, "auto")
        BackboneFeaturizer().ort_backbone()  # the first use on this machine exports the file: not timed
        floors: list[float] = []
        times: dict[str, list[float]] = {name: [] for name in models}
        loads: list[float] = []
        for _ in range(repeats):
            loads.append(os.getloadavg()[0])
            floors.append(decode_floor(files))
            for name, (model, runtime) in models.items():
                times[name].append(predict_seconds(folder, model, runtime))
    floor = statistics.median(floors)
    out = {
        "images": len(files),
        "floor_seconds": floor,
        "floor_runs": floors,
        "load_average": loads,
        "engines": {
            name: {"seconds": statistics.median(t), "runs": t, "ratio_to_floor": statistics.median(t) / floor}
            for name, t in times.items()
        },
    }
    return out


def report(result: dict) -> None:
    print(
        f"    draft-decode floor, {result['images']:,} JPEGs at {RECOMMENDED_SIZE} px on all cores: "
        f"{result['floor_seconds']:.2f} s (runs {', '.join(f'{s:.2f}' for s in result['floor_runs'])})"
    )
    for name, r in result["engines"].items():
        print(
            f"    facecomic-predict, {name:17s}: {r['seconds']:5.2f} s, {r['ratio_to_floor']:.2f}x the floor "
            f"(runs {', '.join(f'{s:.2f}' for s in r['runs'])})"
        )
    print(f"    (load {', '.join(f'{x:.1f}' for x in result['load_average'])})", flush=True)


def main(argv: list[str] | None = None) -> int:
    from bench.make_data import ensure_bench_data

    parser = argparse.ArgumentParser(
        prog="python -m bench.predict_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    folder = ensure_bench_data(SAMPLE, REPO / "bench" / "data", args.images)
    result = run(folder, args.repeats)
    report(result)
    out = REPO / "bench" / "out" / "predict.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
