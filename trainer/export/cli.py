"""``facecomic-export MODEL.safetensors OUT.onnx``: a model as one ONNX file for use outside FaceComic."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from trainer import __version__
from trainer.cli import EXIT_CANCELLED, EXIT_OK, EXIT_USAGE, check_writable, describe_os_error, say
from trainer.common.errors import FaceComicError


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
        check_writable(args.out)  # before torch loads, so a typo fails at once
        from trainer.export.onnx_export import export_onnx
        from trainer.model.model_file import load_model

        loaded = load_model(args.model)
        export_onnx(loaded, args.out)
        say(f"Exported {args.model} ({loaded.feature_kind}, {', '.join(loaded.class_names)}) to {args.out}")
        return EXIT_OK
    except KeyboardInterrupt:
        say("facecomic-export: cancelled; nothing half-written was left behind.", sys.stderr)
        return EXIT_CANCELLED
    except FaceComicError as err:
        say(f"facecomic-export: error: {err}", sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        say(f"facecomic-export: error: {describe_os_error(err)}", sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(export_main())
