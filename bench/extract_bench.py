"""Pretrained-feature extraction figures for ``make bench``: throughput cold (decode + network) and
warm (cache) per backbone input size and per engine (PyTorch, onnxruntime fp32 and int8), where the
cold time goes, what the onnxruntime file costs at first use, and a small table of CPU speed
settings tried at 224 px (network alone, and decode + network together).

Every figure is images/s over the given files on this machine; ``os.getloadavg()`` is recorded
with each, because on a shared machine other work steals the same cores.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from trainer.common.cancel import NEVER_CANCELLED
from trainer.common.configs import DecodeOptions
from trainer.common.cpu import CpuBudget, cores
from trainer.common.events import drain
from trainer.data.preprocess import decode_image
from trainer.features.backbone import BackboneFeaturizer
from trainer.features.efficientnet import backbone_preprocess, load_backbone
from trainer.features.types import Timing

# What runs the network, compared in one run: (runtime, precision).
ENGINES = {
    "torch": ("torch", "fp32"),
    "onnxruntime fp32": ("onnxruntime", "fp32"),
    "onnxruntime int8": ("onnxruntime", "int8"),
}
DEFAULT_ENGINE = "torch"  # the tuning table below studies PyTorch's own settings


def featurizer(size: int, engine: str = DEFAULT_ENGINE, *, channels_last: bool = True) -> BackboneFeaturizer:
    runtime, precision = ENGINES[engine]
    return BackboneFeaturizer(
        backbone_preprocess(size), runtime=runtime, precision=precision, channels_last=channels_last
    )


def ensure_int8(size: int) -> None:
    """Build the int8 file of ``size`` when this machine has none yet (bench/quantize_backbone.py)."""
    from trainer.common.errors import FaceComicError

    try:
        featurizer(size, "onnxruntime int8").ort_backbone()
    except FaceComicError:
        from bench.quantize_backbone import build_int8

        build_int8(size)


def extract(paths: list[Path], size: int, options: DecodeOptions, root: Path, lanes: int | None = None,
            engine: str = DEFAULT_ENGINE):  # fmt: skip
    budget = CpuBudget(lanes or cores(), cores())
    return featurizer(size, engine).extract(paths, root=root, options=options, budget=budget)


def embed_pixels(pixels: np.ndarray, size: int, *, lanes: int | None = None, batch_size: int | None = None,
                 channels_last: bool = True, engine: str = DEFAULT_ENGINE) -> np.ndarray:  # fmt: skip
    return featurizer(size, engine, channels_last=channels_last).rows_from_pixels(
        pixels, budget=CpuBudget(lanes or cores(), 1), batch_size=batch_size
    )


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def decode_all(paths: list[Path], size: int, workers: int) -> np.ndarray:
    config = backbone_preprocess(size)
    with ThreadPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(lambda p: decode_image(p, config), paths)))


def throughput(paths: list[Path], root: Path, size: int, engine: str = DEFAULT_ENGINE) -> dict[str, float]:
    """Cold and warm ``extract`` with default settings, plus decode alone (all cores) and the
    network alone (on those decoded pixels): where the cold time goes."""
    if engine == "torch":
        load_backbone()  # loading the weights (about 0.1 s) is start-up, not throughput
    else:
        featurizer(size, engine).ort_backbone()  # likewise the cached onnxruntime file
    n = len(paths)
    with tempfile.TemporaryDirectory(prefix="facecomic-extract-") as tmp:
        options = DecodeOptions(cache_dir=Path(tmp))
        load = load_average()
        cold = drain(extract(paths, size, options, root, engine=engine))
        warm = drain(extract(paths, size, options, root, engine=engine))
    assert warm.from_cache == n and np.array_equal(cold.rows, warm.rows)
    workers = os.cpu_count() or 1
    pixels: list[np.ndarray] = []
    decode_s = _timed(lambda: pixels.append(decode_all(paths, size, workers)))
    network_s = _timed(lambda: embed_pixels(pixels[0], size, engine=engine))
    return {
        "size": size,
        "engine": engine,
        "images": n,
        "cold_seconds": cold.seconds,
        "cold_images_per_s": n / cold.seconds,
        "warm_seconds": warm.seconds,
        "warm_images_per_s": n / warm.seconds,
        # inside the cold run, each summed over the lanes: decode, and time in the network
        "cold_decode_thread_seconds": cold.decode_seconds,
        "cold_network_seconds": cold.network_seconds,
        # separately, one after the other: decode on all cores, then the network alone
        "decode_only_seconds": decode_s,
        "decode_only_images_per_s": n / decode_s,
        "network_only_seconds": network_s,
        "network_only_images_per_s": n / network_s,
        "load_average": load,
    }


def _frozen_rate(pixels: np.ndarray, size: int, batch: int) -> tuple[float, float]:
    """TorchScript trace + freeze (oneDNN fusions): images/s, and the seconds it costs to build."""
    torch_featurizer = featurizer(size)
    model = load_backbone()

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.embed(x)

    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer warnings
        start = time.perf_counter()
        example = torch_featurizer.torch_images(pixels[:batch], "cpu", True)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(Embed().eval(), example)))
        frozen(example)
        frozen(example)
        build = time.perf_counter() - start

        def run() -> None:
            for s in range(0, len(pixels) - batch + 1, batch):
                frozen(torch_featurizer.torch_images(pixels[s : s + batch], "cpu", True))

        used = len(pixels) // batch * batch
        rate = used / min(_timed(run) for _ in range(2))
    return rate, build


def _end_to_end_rate(
    paths: list[Path], root: Path, size: int, threads: int, *, one_stream: bool = False
) -> float:
    """Extraction without cache: ``threads`` lanes, or with ``one_stream`` the design before lanes
    (a decode pool of ``threads`` feeding one network stream of ``threads`` threads); PyTorch."""
    torch_featurizer = featurizer(size)
    previous = torch.get_num_threads()
    try:
        if one_stream:
            torch.set_num_threads(threads)
            results: list = [None] * len(paths)
            start = time.perf_counter()
            for _ in torch_featurizer._with_decode_pool(
                paths, list(range(len(paths))), results, CpuBudget(threads, threads), "cpu",
                NEVER_CANCELLED, 8, Timing(),
            ):  # fmt: skip
                pass
            seconds = time.perf_counter() - start
        else:
            options = DecodeOptions(use_cache=False)
            seconds = drain(extract(paths, size, options, root, lanes=threads)).seconds
    finally:
        torch.set_num_threads(previous)
    return len(paths) / seconds


def _lanes_rate(
    pixels: np.ndarray, size: int, *, batch: int, lanes: int, channels_last: bool = True
) -> float:
    def run(p: np.ndarray) -> None:
        embed_pixels(p, size, lanes=lanes, batch_size=batch, channels_last=channels_last)

    run(pixels[: batch * lanes])
    best = min(_timed(lambda: run(pixels)) for _ in range(2))
    return len(pixels) / best


def _one_stream_rate(pixels: np.ndarray, size: int, *, batch: int, channels_last: bool = True) -> float:
    """The network on this thread alone, with all the torch threads it has: no lanes."""
    torch_featurizer = featurizer(size, channels_last=channels_last)

    def run() -> None:
        for s in range(0, len(pixels), batch):
            torch_featurizer._run_network(pixels[s : s + batch], "cpu")

    run()
    return len(pixels) / min(_timed(run) for _ in range(2))


def tuning_table(paths: list[Path], root: Path, size: int = 224, images: int = 128) -> list[dict]:
    """What was tried on the CPU; each row is images/s (higher is better)."""
    paths = paths[:images]
    cores = os.cpu_count() or 1
    pixels = decode_all(paths, size, cores)
    load_backbone()
    rows: list[dict] = []
    previous = torch.get_num_threads()

    def row(what: str, rate: float, **extra: float) -> None:
        rows.append({"what": what, "images_per_s": rate, "load_average": load_average(), **extra})
        print(f"    {what:58s} {rate:7.1f}/s  (load {rows[-1]['load_average']:.1f})", flush=True)

    try:
        for batch in (1, 4, 8, 16):
            default = " (default)" if batch == 4 else ""
            row(f"network only, {cores} lanes x 1 torch thread, batch {batch}{default}",
                _lanes_rate(pixels, size, batch=batch, lanes=cores))  # fmt: skip
        for threads in sorted({1, cores}, reverse=True):
            torch.set_num_threads(threads)
            for batch in (1, 4, 8, 16):
                row(f"network only, one stream of {threads} torch thread(s), batch {batch}",
                    _one_stream_rate(pixels, size, batch=batch))  # fmt: skip
        row(f"network only, {cores} lanes, contiguous NCHW instead of channels_last, batch 4",
            _lanes_rate(pixels, size, batch=4, lanes=cores, channels_last=False))  # fmt: skip
        torch.set_num_threads(cores)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an irrelevant TF32 note about Intel GPUs
            with torch.backends.mkldnn.flags(enabled=False):
                # many times slower (native depthwise convs), so on 16 images only
                row(f"network only, torch.backends.mkldnn off, one stream of {cores} threads, batch 8",
                    _one_stream_rate(pixels[:16], size, batch=8))  # fmt: skip
        try:
            rate, build = _frozen_rate(pixels, size, 8)
            row(f"network only, jit trace+freeze+optimize_for_inference (build {build:.1f} s), {cores} threads, batch 8",
                rate, build_seconds=build)  # fmt: skip
        except Exception as err:  # an optional experiment; never fail the benchmark for it
            print(f"    jit freeze failed: {err}")
        for threads in sorted({cores, 1}, reverse=True):
            row(f"decode + network, {threads} lane(s) (default: one per core)",
                _end_to_end_rate(paths, root, size, threads))  # fmt: skip
        row(f"decode + network, before lanes: {cores} decode threads + one {cores}-thread stream, batch 8",
            _end_to_end_rate(paths, root, size, cores, one_stream=True))  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    return rows


def onnx_file_costs(size: int) -> dict[str, float]:
    """The first use of onnxruntime on a machine (export, write, session) against every later
    process (read, check, session): what decided exporting at first use over shipping the file."""
    from trainer.features import onnx_backbone

    preprocess = backbone_preprocess(size)
    saved = dict(onnx_backbone._sessions)
    try:
        with tempfile.TemporaryDirectory(prefix="facecomic-onnx-") as tmp:
            onnx_backbone._sessions.clear()
            first = _timed(lambda: onnx_backbone.session_for(preprocess, "fp32", Path(tmp)))
            path = onnx_backbone.file_path(preprocess, "fp32", Path(tmp))
            onnx_backbone._sessions.clear()
            later = _timed(lambda: onnx_backbone.session_for(preprocess, "fp32", Path(tmp)))
            size_bytes = path.stat().st_size
    finally:
        onnx_backbone._sessions.clear()
        onnx_backbone._sessions.update(saved)
    return {"first_use_seconds": first, "later_seconds": later, "file_bytes": size_bytes}


def ort_tuning(pixels: np.ndarray, size: int) -> list[dict]:
    """onnxruntime fp32 at ``size``: lanes of single-threaded calls into one shared session (the
    default), against one session per lane and one session of several threads (images/s)."""
    from trainer.features import onnx_backbone

    shared = featurizer(size, "onnxruntime fp32").ort_backbone()
    data = shared.path.read_bytes()
    n = cores()
    rows: list[dict] = []

    def row(what: str, rate: float) -> None:
        rows.append({"what": what, "images_per_s": rate, "load_average": load_average()})
        print(f"    {what:58s} {rate:7.1f}/s  (load {rows[-1]['load_average']:.1f})", flush=True)

    def lanes_rate(sessions: list, batch: int) -> float:
        starts = list(range(0, len(pixels), batch))

        def run() -> None:
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(lambda i: sessions[i % len(sessions)].embed(pixels[starts[i] : starts[i] + batch]),
                              range(len(starts))))  # fmt: skip

        run()
        return len(pixels) / min(_timed(run) for _ in range(2))

    for batch in (1, 4, 8):
        default = " (default)" if batch == 4 else ""
        row(f"onnxruntime, {n} lanes x 1 thread, one shared session, batch {batch}{default}",
            lanes_rate([shared], batch))  # fmt: skip
    own = [onnx_backbone.OrtBackbone(onnx_backbone.new_session(data), "fp32", shared.path) for _ in range(n)]
    row(f"onnxruntime, {n} lanes x 1 thread, a session per lane, batch 4", lanes_rate(own, 4))
    for threads in sorted({1, n}):
        session = onnx_backbone.OrtBackbone(
            onnx_backbone.new_session(data, threads=threads), "fp32", shared.path
        )
        for batch in (4, 16):

            def stream(session=session, batch=batch) -> None:
                for s in range(0, len(pixels), batch):
                    session.embed(pixels[s : s + batch])

            stream()
            row(f"onnxruntime, one stream, a session of {threads} thread(s), batch {batch}",
                len(pixels) / min(_timed(stream) for _ in range(2)))  # fmt: skip
    return rows
