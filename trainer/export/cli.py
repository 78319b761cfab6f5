"""``facecomic-export MODEL.safetensors OUT.onnx``: a model as one ONNX file for use outside FaceComic."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from trainer import __version__
from trainer.common.console import EXIT_OK, error, interrupted, say, sigterm_as_interrupt
from trainer.common.errors import FaceComicError
from trainer.common.outputs import check_outputs
from trainer.common.text import one_line


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecomic-export",
        description="Write a FaceComic model as one ONNX file: uint8 RGB pixels [N, S, S, 3] in, "
        "calibrated class probabilities out, with S, the classes and the resampling in its metadata.",
    )
    parser.add_argument("model", metavar="MODEL.safetensors", type=Path, help="the FaceComic model")
    parser.add_argument("out", metavar="OUT.onnx", type=Path, help="the ONNX file to write")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def export_main(argv: Sequence[str] | None = None) -> int:
    args = build_export_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            # Before torch loads, so a typo fails at once; and never over the model itself.
            check_outputs({"OUT.onnx": args.out}, inputs=[args.model])
            from trainer.export.onnx_export import export_onnx
            from trainer.model.model_file import load_model

            loaded = load_model(args.model)
            export_onnx(loaded, args.out)
        classes = ", ".join(one_line(name) for name in loaded.class_names)
        say(f"Exported {one_line(args.model)} ({loaded.feature_kind}, {classes}) to {one_line(args.out)}")
        return EXIT_OK
    except KeyboardInterrupt as err:
        return interrupted("facecomic-export", err, "nothing half-written was left behind.")
    except (FaceComicError, OSError) as err:
        return error("facecomic-export", err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(export_main())
