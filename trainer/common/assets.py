"""Where bundled files live: ``assets/`` beside the packages, or inside a PyInstaller bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_MODEL_NAME = "facecomic-default.safetensors"


def assets_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "assets"
    return Path(__file__).resolve().parents[2] / "assets"


def default_model_path() -> Path:
    """The model used when none is chosen; ``FACECOMIC_DEFAULT_MODEL`` overrides it."""
    override = os.environ.get("FACECOMIC_DEFAULT_MODEL")
    return Path(override) if override else assets_dir() / DEFAULT_MODEL_NAME
