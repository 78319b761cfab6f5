"""SHA-256 of a file, read in blocks (the backbone weights' check, the CSV sidecar, sorting), and
the short digest that names a cache file after what it depends on."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def key_digest(key: dict[str, Any]) -> str:
    """20 hex digits of the SHA-256 of ``key`` as sorted JSON: a file named with it is found again
    exactly when everything in ``key`` is the same."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
