"""``make bench-package``: build time, bundle size and launch-to-window time of the packaged app.

Usage: python -m bench.package_bench [--no-build] [--dist DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.gui_bench import startup_seconds

REPO = Path(__file__).resolve().parent.parent


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-package", description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="measure the existing dist/FaceComic")
    parser.add_argument("--dist", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)
    results: dict[str, float | str] = {}
    if not args.no_build:
        start = time.perf_counter()
        subprocess.run(["make", "package"], cwd=REPO, check=True)
        results["build_seconds"] = time.perf_counter() - start
        print(f"build (make package, clean): {results['build_seconds']:.0f} s")
    app_dir = args.dist / "FaceComic"
    size = folder_size(app_dir)
    internal = app_dir / "_internal"
    parts = {
        name: folder_size(internal / name)
        for name in ("torch", "nvidia", "PySide6", "onnxruntime")
        if (internal / name).exists()
    }
    results["bundle_bytes"] = size
    results.update({f"{k}_bytes": v for k, v in parts.items()})
    print(
        f"bundle size: {size / 2**30:.2f} GiB ("
        + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in parts.items())
        + ")"
    )
    clean = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin"}
    os.environ.clear()
    os.environ.update(clean)
    startup = startup_seconds([str(app_dir / "FaceComic")])
    results.update({f"startup_{k}": v for k, v in startup.items()})
    print(
        f"packaged app: window visible {startup['visible']:.2f} s after launch, model ready {startup['model_ready']:.2f} s"
    )
    out = REPO / "bench" / "out" / "package.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
