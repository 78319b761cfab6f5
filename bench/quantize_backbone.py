"""int8 for the backbone, and whether it keeps the answers (docs/performance.md).

``python -m bench.quantize_backbone`` builds the int8 backbone: onnxruntime's static quantization
(QDQ, int8 weights per output channel, uint8 activations, MinMax ranges) of the fp32 file that
the app exports, calibrated on a seeded draw of a few hundred images of the three samples in
``../shared/data`` (training-like images, as the issue asks; not any evaluation set's labels). It
is written into the cache folder under the int8 name, where ``BackboneFeaturizer(precision="int8")``
finds it. The app never builds it: it is not the default (the numbers below decided).

``--evaluate`` then compares int8 with fp32 on everything the issue names, each in one process so
the figures are comparable:

1. embedding cosine similarity over every sample image;
2. the default recipe on all three samples (as ``make model``, seed 0): holdout accuracy and ECE;
3. ``make cross``'s sections 1 and 2 (across sources, seeds 0-4; stability);
4. ``make honesty``'s flag rates, of a model trained as ``make model`` trains the shipped one.

Writes ``bench/out/int8.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.engine import backbone_engine
from trainer.common.configs import DecodeOptions, PreprocessConfig, TrainConfig
from trainer.common.cpu import CpuBudget
from trainer.common.events import drain
from trainer.data.dataset import scan_dataset
from trainer.features import onnx_backbone
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.backbone_spec import RECOMMENDED_SIZE, backbone_preprocess

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "data"
SOURCES = ("face2comics-sample", "diverse-sample", "styles-sample")
CALIBRATION_IMAGES = 300
CALIBRATION_SEED = 0
CALIBRATION_BATCH = 10
OUT = REPO / "bench" / "out" / "int8.json"


def sample_files() -> list[Path]:
    files = []
    for source in SOURCES:
        scan = scan_dataset(SAMPLES / source)
        files += [p for class_files in scan.files for p in class_files]
    if not files:
        raise SystemExit(f"No sample images in {SAMPLES}; is ../shared beside the checkout?")
    return files


def calibration_pixels(preprocess: PreprocessConfig, images: int = CALIBRATION_IMAGES) -> np.ndarray:
    files = sample_files()
    chosen = np.random.default_rng(CALIBRATION_SEED).permutation(len(files))[:images]
    decoded = BackboneFeaturizer(preprocess).decode(
        [files[i] for i in sorted(chosen)], budget=CpuBudget.all_cores()
    )
    return decoded.pixels


def build_int8(
    size: int = RECOMMENDED_SIZE, method: str = "MinMax", images: int = CALIBRATION_IMAGES
) -> Path:
    """Quantize the fp32 file of ``size`` and write it under the int8 name; returns its path."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    preprocess = backbone_preprocess(size)
    fp32 = BackboneFeaturizer(preprocess).ort_backbone()
    if fp32 is None:
        raise SystemExit("onnxruntime is not installed")
    pixels = calibration_pixels(preprocess, images)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.starts = iter(range(0, len(pixels), CALIBRATION_BATCH))

        def get_next(self) -> dict | None:
            start = next(self.starts, None)
            if start is None:
                return None
            return {onnx_backbone.INPUT_NAME: pixels[start : start + CALIBRATION_BATCH]}

    with tempfile.TemporaryDirectory(prefix="facecomic-int8-") as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32.path), str(prepared))
        quantize_static(
            str(prepared), str(quantized), Reader(),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, method),
        )  # fmt: skip
        target = onnx_backbone.file_path(preprocess, "int8")
        onnx_backbone.write_verified(target, quantized.read_bytes())
    onnx_backbone.forget_sessions()
    return target


def cosine_similarity(size: int = RECOMMENDED_SIZE) -> dict:
    preprocess = backbone_preprocess(size)
    pixels = BackboneFeaturizer(preprocess).decode(sample_files(), budget=CpuBudget.all_cores()).pixels
    budget = CpuBudget.all_cores()
    a = BackboneFeaturizer(preprocess, precision="fp32").rows_from_pixels(pixels, budget=budget)
    b = BackboneFeaturizer(preprocess, precision="int8").rows_from_pixels(pixels, budget=budget)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {
        "images": len(pixels),
        "mean": float(cos.mean()),
        "min": float(cos.min()),
        "p01": float(np.percentile(cos, 1)),
        "max_abs_difference": float(np.abs(a - b).max()),
    }


def default_recipe(options: DecodeOptions, models: Path, name: str) -> dict:
    """The default recipe on all three samples, seed 0 (``make model``'s run): holdout accuracy
    and ECE; then the refit on every image, saved for the flag rates (as the shipped model)."""
    from bench.cross_source import merged
    from trainer.model.model_file import save_model
    from trainer.training.experiment import run_experiment

    root = merged(SOURCES)
    result = drain(run_experiment(root, config=TrainConfig(seed=0, refit_all=True), decode=options))
    path = save_model(models / f"{name}.safetensors", result)
    return {"holdout": result.holdout.accuracy, "ece": result.holdout.ece, "model": str(path)}


def flag_rates(model: Path) -> dict:
    from bench import honesty

    with contextlib.redirect_stdout(sys.stderr):
        honesty.main(["--model", str(model)])
    report = json.loads((REPO / "bench" / "out" / "honesty.json").read_text())
    keys = ["non_faces", "generated_other_seed", "holdout_all"]
    keys += [k for k in report if "/" in k]
    return {k: {"flagged_share": report[k]["flagged_share"], "by_flag": report[k]["by_flag"]} for k in keys}


def evaluate() -> dict:
    from bench.cross_source import across_sources, stability

    options = DecodeOptions(cache_dir=REPO / "bench" / "data" / "cache")
    report: dict = {"calibration": {"images": CALIBRATION_IMAGES, "seed": CALIBRATION_SEED}}
    report["cosine"] = cosine_similarity()
    print(f"embedding cosine similarity, int8 against fp32: {report['cosine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="facecomic-int8-models-") as tmp:
        for name in ("fp32", "int8"):
            with backbone_engine(precision=name):
                start = time.perf_counter()
                print(f"\n== {name} ==", flush=True)
                part = {"default_recipe": default_recipe(options, Path(tmp), name)}
                print(f"default recipe, seed 0: {part['default_recipe']}", flush=True)
                part["across"] = across_sources(options)
                part["stability"] = stability(options)
                part["flags"] = flag_rates(Path(part["default_recipe"]["model"]))
                part["seconds"] = time.perf_counter() - start
                report[name] = part
                OUT.parent.mkdir(parents=True, exist_ok=True)
                OUT.write_text(json.dumps(report, indent=2) + "\n")
    report["verdict"] = verdict(report)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    return report


ACCURACY_POINTS = 0.5  # the thresholds: int8 may move each accuracy by this many points
ECE_LIMIT = 0.005


def verdict(report: dict) -> dict:
    """Every comparison the issue names, and whether int8 keeps within its threshold."""
    fp32, int8 = report["fp32"], report["int8"]
    rows = {}

    def compare(name: str, a: float, b: float, limit: float, scale: float = 100.0) -> None:
        rows[name] = {"fp32": a, "int8": b, "moved": (b - a) * scale, "kept": abs(b - a) * scale <= limit}

    compare("holdout accuracy (points)", fp32["default_recipe"]["holdout"], int8["default_recipe"]["holdout"],
            ACCURACY_POINTS)  # fmt: skip
    compare("holdout ECE", fp32["default_recipe"]["ece"], int8["default_recipe"]["ece"], ECE_LIMIT, scale=1.0)
    for a, b in zip(fp32["across"], int8["across"], strict=True):
        name = f"cross {'+'.join(s.split('-')[0] for s in a['train'])} -> {a['test'].split('-')[0]}, {a['heads']} head(s), mean (points)"
        compare(name, a["mean"], b["mean"], ACCURACY_POINTS)
    for key in fp32["flags"]:
        compare(f"flagged share: {key} (points)", fp32["flags"][key]["flagged_share"],
                int8["flags"][key]["flagged_share"], ACCURACY_POINTS)  # fmt: skip
    return {"rows": rows, "keeps_the_answers": all(r["kept"] for r in rows.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quantize_backbone", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=int, default=RECOMMENDED_SIZE)
    parser.add_argument("--method", default="MinMax", choices=("MinMax", "Percentile", "Entropy"))
    parser.add_argument("--images", type=int, default=CALIBRATION_IMAGES, help="calibration images")
    parser.add_argument("--evaluate", action="store_true", help="compare int8 with fp32 (minutes)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = build_int8(args.size, args.method, args.images)
    print(f"int8 backbone ({args.method}, {args.images} calibration images) written to {path} "
          f"in {time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
    if args.evaluate:
        report = evaluate()
        for name, row in report["verdict"]["rows"].items():
            print(f"  {name:70s} fp32 {row['fp32']:.4f}  int8 {row['int8']:.4f}  moved {row['moved']:+.3f}"
                  f"  {'kept' if row['kept'] else 'NOT KEPT'}")  # fmt: skip
        kept = report["verdict"]["keeps_the_answers"]
        print(f"int8 {'keeps' if kept else 'does not keep'} the answers; written to {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
