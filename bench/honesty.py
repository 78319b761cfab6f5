"""How honest a model is on what people drop (``make honesty``): the flag rates of a model (the
bundled default unless ``--model``) on pictures that are not faces and on real faces and comics.

- Non-faces: ``bench/non_face_eval.py`` (scikit-image's sample pictures and pictures rendered by
  Qt: charts, widgets, documents, this app's own window), made apart from the generator that the
  "not a face" scorer trains on. Every one should be flagged.
- The run's own holdout, as the model file keeps it: images the chosen setting, the temperature
  and the detectors never trained on (with ``--refit-all`` the shipped weights did, later).
- Every image of the three samples, scored by the shipped model (in-sample for the default).
- Generator pictures of another seed than the training negatives, as a sanity check.

Writes ``bench/out/honesty.json`` and prints the table that docs/how-it-works.md and MODEL.md quote.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from trainer.common.assets import default_model_path
from trainer.data.dataset import scan_dataset
from trainer.data.non_faces import NEGATIVES_SEED, non_face_pictures
from trainer.model.model_file import load_model
from trainer.prediction.predictor import Predictor

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "data"
SOURCES = ("face2comics-sample", "diverse-sample", "styles-sample")


def rates(flags: list[str]) -> dict:
    counts = Counter(flags)
    n = len(flags)
    return {
        "images": n,
        "flagged": n - counts.get("", 0),
        "flagged_share": (n - counts.get("", 0)) / n if n else 0.0,
        "by_flag": {flag or "sure": count for flag, count in sorted(counts.items())},
    }


def line(name: str, r: dict) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in r["by_flag"].items() if k != "sure")
    return f"  {name:44s} {r['flagged']:4d} of {r['images']:4d} flagged ({r['flagged_share']:6.1%}): {kinds}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make honesty", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: the bundled one)")
    args = parser.parse_args(argv)
    from bench.non_face_eval import non_face_pictures as evaluation_pictures

    path = args.model or default_model_path()
    loaded = load_model(path)
    predictor = Predictor(loaded)
    out: dict = {
        "model": str(path),
        "head": loaded.head_kind,
        "heads": loaded.heads,
        "features": loaded.feature_kind,
    }
    head = "a linear head" if loaded.head_kind == "linear" else f"{loaded.heads} MLP heads"
    print(f"Flags of {path.name} ({loaded.feature_kind} features, {head}):", flush=True)

    pictures = evaluation_pictures()
    predictions = predictor.predict(list(pictures.values()))
    out["non_faces"] = rates([p.flag for p in predictions])
    out["non_faces"]["missed"] = [name for name, p in zip(pictures, predictions, strict=True) if not p.flag]
    out["non_faces"]["per_picture"] = {name: p.flag for name, p in zip(pictures, predictions, strict=True)}
    print(line("pictures that are not faces (never generated)", out["non_faces"]), flush=True)
    if out["non_faces"]["missed"]:
        print(f"    not flagged: {', '.join(out['non_faces']['missed'])}")

    generated = predictor.predict(non_face_pictures(100, seed=NEGATIVES_SEED + 1))
    out["generated_other_seed"] = rates([p.flag for p in generated])
    print(line("generator pictures of an unseen seed", out["generated_other_seed"]), flush=True)

    holdout = loaded.evaluated_images("holdout")
    for c, name in enumerate(loaded.class_names):
        flags = [image.flag for image in holdout if image.true_label == c]
        out[f"holdout_{name}"] = rates(flags)
        print(line(f"the run's holdout, {name}", out[f"holdout_{name}"]), flush=True)
    out["holdout_all"] = rates([image.flag for image in holdout])
    print(line("the run's holdout, both classes", out["holdout_all"]), flush=True)

    for source in SOURCES:
        if not (SAMPLES / source).is_dir():
            continue
        scan = scan_dataset(SAMPLES / source)
        for name, files in zip(scan.class_names, scan.files, strict=True):
            flags = [p.flag for p in predictor.predict(list(files))]
            out[f"{source}/{name}"] = rates(flags)
            print(line(f"{source}/{name} (all images)", out[f"{source}/{name}"]), flush=True)

    target = REPO / "bench" / "out" / "honesty.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"Written to {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
