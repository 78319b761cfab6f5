""" "Why?": a heat map of what an answer rests on, over the picture the user sees.

The score explained is the predicted class's log-odds, and its gradient flows through the head
(``LoadedModel.model``, used as an opaque differentiable module, so an ensemble head works the
same). Pretrained models get LayerCAM (Jiang et al., 2021) on backbone block 10, a 10x10 map at
160 px: each position's activations weighted by their own positive gradients. Grad-CAM (channels
weighted by their mean gradient) on the final 5x5 map, the usual choice, pointed at the background
about half the time; blocks 3 and 4 pointed slightly better but leaned on the bottom and right
edges, where the backbone's padding is. Pixel models get gradient x input over their 24x24 pixels. Layer, method and
smoothing were chosen by measurement (``python -m bench.pointing_bench``; docs/why.md): the share
of the map inside a face pasted into one quadrant of a non-face picture.

A map is computed on exactly the pixels prediction sees (``decode_image``: EXIF orientation, JPEG
draft, the squash to the model's square) and stretched back over the oriented image, so it lines up
with the picture. It costs one forward and one backward pass, and is never part of ``predict``.

Writers: ``write_explanation`` puts ``<stem>.why.png`` (the map blended over the image, label and
confidence in a corner) and ``<stem>.heat.png`` (the map alone, 8-bit grey) beside each other; no
file is ever replaced, and both go through ``new_files.create_new``.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from trainer.common.errors import ImageDecodeError
from trainer.common.lanes import one_torch_thread
from trainer.common.new_files import create_new
from trainer.data.preprocess import ImageSource, _to_rgb, decode_image, describe_decode_failure
from trainer.features.base import EXPLAIN_INPUT, ExplainSettings

if TYPE_CHECKING:
    import torch

    from trainer.model.model_file import LoadedModel


def default_settings(loaded: LoadedModel) -> ExplainSettings:
    """What the model's featurizer says "Why?" reads, chosen with ``bench/pointing_bench.py``."""
    return loaded.featurizer.explain_defaults


@dataclass(frozen=True, slots=True)
class Explanation:
    """A map in the model's square input frame, and how to lay it over the oriented image."""

    heat: np.ndarray  # (S, S) float32 in [0, 1]; 1 where the answer rests most
    image_size: tuple[int, int]  # (width, height) of the image as shown, EXIF orientation applied
    class_index: int  # the class explained
    probabilities: np.ndarray  # calibrated, per class, from the same forward pass
    settings: ExplainSettings
    seconds: float = 0.0

    @property
    def flat(self) -> bool:
        """Nothing in the picture raises the answer at this layer (the map is zero everywhere)."""
        return not bool(self.heat.max() > 0)

    def heat_at(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The map stretched over ``size`` (width, height; default: the image's own), bilinear,
        its maximum 1 again (sampled pixel centres may miss the peak of the small map)."""
        width, height = size or self.image_size
        return normalise(resize_map(self.heat, width, height))


class Explainer:
    """Heat maps for one model. Thread-safe for one call at a time per instance; the backbone is
    the process's shared frozen one, which prediction may use meanwhile (no weights change)."""

    def __init__(self, loaded: LoadedModel, settings: ExplainSettings | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.preprocess
        self.featurizer = loaded.featurizer
        self.settings = settings or default_settings(loaded)  # its layer is checked at the first map
        self._head = loaded.model.to("cpu").eval()

    def explain(self, source: ImageSource, class_index: int | None = None) -> Explanation:
        """The map for one image (a path or a PIL image); raises ``ImageDecodeError``."""
        start = time.perf_counter()
        size = oriented_size(source)
        pixels = decode_image(source, self.config)
        heat, probabilities, explained = self.explain_pixels(pixels, class_index)
        return Explanation(heat, size, explained, probabilities, self.settings, time.perf_counter() - start)

    def explain_pixels(
        self, pixels: np.ndarray, class_index: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(S, S, 3)`` uint8 pixels, decoded with the model's settings, to ``(heat, calibrated
        probabilities, class explained)``; the predicted class unless ``class_index`` is given."""
        settings = self.settings
        coarse, probabilities, explained = self.coarse_maps(
            pixels, [(settings.layer, settings.method)], class_index
        )
        heat = finish_map(coarse[settings.layer, settings.method], self.config.size, settings.smoothing)
        return heat, probabilities, explained

    def coarse_maps(
        self, pixels: np.ndarray, wanted: list[tuple[str, str]], class_index: int | None = None
    ) -> tuple[dict[tuple[str, str], np.ndarray], np.ndarray, int]:
        """Raw maps (at each layer's own resolution, not normalised) for several (layer, method)
        pairs from one forward and one backward pass; ``bench/pointing_bench.py`` compares them."""
        import torch

        from trainer.model.calibration import softmax

        pixels = np.array(pixels, dtype=np.uint8)  # writable and contiguous, for torch.from_numpy
        for layer, method in wanted:
            ExplainSettings(layer, method)  # checks the pair
        with one_torch_thread(), torch.inference_mode(False), torch.enable_grad():
            stages = self.featurizer.stages()
            unknown = [layer for layer, _ in wanted if layer != EXPLAIN_INPUT and layer not in stages]
            if unknown:
                known = ", ".join([EXPLAIN_INPUT, *stages])
                raise ValueError(f"no layer {unknown[0]!r}; known: {known}")
            images = self.featurizer.torch_images(pixels[None])
            layers = {layer for layer, _ in wanted}
            # The graph starts at the earliest layer wanted, so the backward pass stops there.
            cut = EXPLAIN_INPUT in layers
            images.requires_grad_(cut)
            activations: dict[str, torch.Tensor] = {EXPLAIN_INPUT: images}
            x = images
            for name, stage in stages.items():
                x = stage(x)
                if name in layers:
                    if not cut:
                        x, cut = x.detach().requires_grad_(True), True
                    activations[name] = x
            head_input = self.featurizer.rows_from_stage(x)
            logits = self._head(head_input)[0]
            explained = int(torch.argmax(logits)) if class_index is None else int(class_index)
            needed = sorted(layers)
            gradients = torch.autograd.grad(_log_odds(logits, explained), [activations[n] for n in needed])
            grad_of = dict(zip(needed, gradients, strict=True))
            maps = {}
            for layer, method in wanted:
                a, g = activations[layer][0].detach(), grad_of[layer][0]
                if method == "gradcam":  # channels weighted by their mean gradient
                    cam = (g.mean(dim=(1, 2))[:, None, None] * a).sum(0).clamp(min=0)
                elif method == "layercam":  # each position weighted by its own positive gradient
                    cam = (g.clamp(min=0) * a).sum(0).clamp(min=0)
                elif method == "saliency":
                    cam = g.abs().sum(0)
                else:  # gradient x input: what moving each pixel off the mean colour did for the answer
                    cam = (g * a).sum(0).clamp(min=0)
                maps[layer, method] = cam.numpy().astype(np.float32)
        probabilities = softmax(logits.detach().numpy()[None], self.loaded.temperature)[0]
        return maps, probabilities, explained


def _log_odds(logits: torch.Tensor, class_index: int | None) -> torch.Tensor:
    """The explained class's log-odds against the others: for an ensemble head whose logits are
    log mean probabilities this is log(p / (1 - p)), and it ignores a shift shared by all logits."""
    import torch

    index = int(torch.argmax(logits)) if class_index is None else int(class_index)
    others = torch.cat([logits[:index], logits[index + 1 :]])
    return logits[index] - torch.logsumexp(others, dim=0)


# -- map arithmetic (numpy only) ------------------------------------------------------------------


def finish_map(coarse: np.ndarray, size: int, smoothing: float) -> np.ndarray:
    """A raw map to the model's (size, size) input frame: upsampled, smoothed, scaled to [0, 1]."""
    heat = _upsample(coarse, size)
    return normalise(gaussian_blur(heat, smoothing * size))


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """A coarse (h, w) map to (size, size), bilinear with pixel centres aligned (as F.interpolate)."""
    coarse = np.asarray(coarse, np.float32)
    if coarse.shape == (size, size):
        return coarse
    return resize_map(coarse, size, size)


def resize_map(heat: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a float map (separable, pixel centres aligned, edges clamped)."""
    heat = np.asarray(heat, np.float32)

    def weights(n_in: int, n_out: int):
        position = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        position = np.clip(position, 0, n_in - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, (position - low).astype(np.float32)

    low, high, t = weights(heat.shape[0], height)
    rows = heat[low] * (1 - t)[:, None] + heat[high] * t[:, None]
    low, high, t = weights(heat.shape[1], width)
    return (rows[:, low] * (1 - t)[None] + rows[:, high] * t[None]).astype(np.float32)


def gaussian_blur(heat: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur, edges reflected; sigma in pixels (0: unchanged)."""
    if sigma <= 0:
        return heat
    radius = max(1, math.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    out = np.asarray(heat, np.float32)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        out = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="valid"), axis, padded)
    return out.astype(np.float32)


def normalise(heat: np.ndarray) -> np.ndarray:
    """To [0, 1] by the maximum; an all-zero (or non-finite) map stays zero."""
    heat = np.nan_to_num(np.asarray(heat, np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    peak = float(heat.max()) if heat.size else 0.0
    return heat / peak if peak > 0 else np.zeros_like(heat)


def pointing_score(heat: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The share of the map's mass inside ``box`` (left, top, right, bottom, in the map's pixels).
    A flat map scores the box's share of the area; a map of zeros scores 0."""
    heat = np.asarray(heat, np.float64).clip(min=0)
    total = heat.sum()
    if not total > 0:
        return 0.0
    left, top, right, bottom = box
    return float(heat[top:bottom, left:right].sum() / total)


# -- the image as shown --------------------------------------------------------------------------


def oriented_size(source: ImageSource) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header alone for a file."""
    if isinstance(source, Image.Image):
        return ImageOps.exif_transpose(source).size if _rotated(source) else source.size
    path = os.fspath(source)
    try:
        with Image.open(path) as image:
            return (image.height, image.width) if _rotated(image) else image.size
    except Exception as err:
        raise ImageDecodeError(path, describe_decode_failure(err)) from err


def _rotated(image: Image.Image) -> bool:
    try:
        return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # transposed or turned 90 degrees
    except Exception:  # a damaged EXIF block: decoding ignores it too
        return False


def load_oriented(source: ImageSource, config=None, max_side: int | None = None) -> Image.Image:
    """The whole image as RGB, EXIF-oriented and composited as prediction does; optionally shrunk
    so its longest side is at most ``max_side`` (the aspect ratio kept)."""
    from trainer.common.configs import PreprocessConfig

    config = config or PreprocessConfig()
    if isinstance(source, Image.Image):
        image = _to_rgb(ImageOps.exif_transpose(source), config)
    else:
        path = os.fspath(source)
        try:
            with Image.open(path) as opened:
                if max_side is not None and opened.format == "JPEG":
                    opened.draft("RGB", (max_side, max_side))
                opened.load()
                image = _to_rgb(ImageOps.exif_transpose(opened), config)
        except Exception as err:
            raise ImageDecodeError(path, describe_decode_failure(err)) from err
    if max_side is not None and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
        )
    return image


# -- colour and overlays ----------------------------------------------------------------------------

# Inferno (matplotlib's perceptually uniform map), as a degree-6 polynomial per channel
# (a least-squares fit of the 256-entry table, within 1/255 of it).
_INFERNO = np.array(
    [
        [0.0002189403691192265, 0.001651004631001012, -0.01948089843709184],
        [0.1065134194856116, 0.5639564367884091, 3.932712388889277],
        [11.60249308247187, -3.972853965665698, -15.9423941062914],
        [-41.70399613139459, 17.43639888205313, 44.35414519872813],
        [77.162935699427, -33.40235894210092, -81.80730925738993],
        [-71.31942824499214, 32.62606426397723, 73.20951985803202],
        [25.13112622477341, -12.24266895238567, -23.07032500287172],
    ]
)
_LUT = np.clip(
    np.stack([np.linspace(0, 1, 256) ** k for k in range(7)], axis=1) @ _INFERNO * 255 + 0.5, 0, 255
).astype(np.uint8)  # (256, 3)


def colourise(heat: np.ndarray) -> np.ndarray:
    """A [0, 1] map to (H, W, 3) uint8 inferno colours (black, purple, orange, pale yellow)."""
    index = np.clip(np.asarray(heat, np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    return _LUT[index]


def overlay_rgba(heat: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8: the map's colours, opaque where the answer rests and fading out where it
    does not, so the picture stays readable under the cold parts; a viewer sets the opacity."""
    heat = np.asarray(heat, np.float32).clip(0, 1)
    alpha = np.clip((0.15 + 0.85 * np.sqrt(heat)) * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([colourise(heat), alpha])


def blend(image: Image.Image, heat: np.ndarray, opacity: float = 0.6) -> Image.Image:
    """``image`` (RGB) with ``heat`` (a map at its size) laid over it at ``opacity``."""
    rgba = overlay_rgba(heat)
    alpha = rgba[..., 3:].astype(np.float32) / 255.0 * opacity
    base = np.asarray(image.convert("RGB"), np.float32)
    mixed = base * (1 - alpha) + rgba[..., :3].astype(np.float32) * alpha
    return Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8), "RGB")


def answer_text(display_label: str, confidence: float, flag: str = "") -> str:
    """ "Comic 94%", or "Real face? 58% (low confidence)" for a flagged answer."""
    text = f"{display_label}{'?' if flag else ''} {confidence:.0%}"
    return f"{text} ({flag})" if flag else text


def draw_label(image: Image.Image, text: str) -> Image.Image:
    """``text`` in the top-left corner, white on a dark box, sized to the image."""
    image = image.copy()
    size = max(10, round(min(image.size) / 18))
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(image, "RGBA")
    margin = max(2, size // 3)
    _, _, right, bottom = draw.textbbox((margin, margin), text, font=font)
    draw.rectangle((0, 0, right + margin, bottom + margin), fill=(0, 0, 0, 170))
    draw.text((margin, margin), text, font=font, fill=(255, 255, 255, 255))
    return image


# -- files ---------------------------------------------------------------------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)  # 2x faster than the default 6, 12% larger
    return buffer.getvalue()


def explanation_names(directory: Path, stem: str, taken: set[str]) -> tuple[Path, Path]:
    """``stem.why.png`` and ``stem.heat.png`` in ``directory``, or ``stem (2).…`` and so on when
    either name exists or was given out in this run: a pair always shares its stem."""
    n = 1
    while True:
        name = stem if n == 1 else f"{stem} ({n})"
        why, heat = directory / f"{name}.why.png", directory / f"{name}.heat.png"
        if name not in taken and not os.path.lexists(why) and not os.path.lexists(heat):
            taken.add(name)
            return why, heat
        n += 1


@dataclass(frozen=True, slots=True)
class WrittenExplanation:
    why: Path
    heat: Path


def write_explanation(
    directory: Path,
    source: ImageSource,
    explanation: Explanation,
    text: str,
    taken: set[str],
    config=None,
) -> WrittenExplanation:
    """Write the overlay and the grey map of one image, each at the image's own size."""
    image = load_oriented(source, config)
    heat = explanation.heat_at(image.size)
    stem = Path(getattr(source, "filename", "") or "pasted").stem if isinstance(source, Image.Image) else None
    stem = stem or Path(os.fspath(source)).stem
    grey = Image.fromarray(np.clip(heat * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    why_image = draw_label(blend(image, heat), text)
    heat_png, why_png = png_bytes(grey), png_bytes(why_image)
    for _ in range(100):  # another program may take a name between the check and the write
        why_path, heat_path = explanation_names(directory, stem, taken)
        try:
            create_new(heat_path, heat_png)
        except FileExistsError:
            continue
        try:
            create_new(why_path, why_png)
        except FileExistsError:
            heat_path.unlink()
            continue
        return WrittenExplanation(why_path, heat_path)
    raise FileExistsError(f"no free name for {stem} in {directory}")


def explain_to_folder(
    explainer: Explainer, directory: Path, source: ImageSource, prediction, taken: set[str]
) -> WrittenExplanation:
    """``--explain``: the map of ``prediction``'s class for ``source``, written into ``directory``
    with the prediction's label, confidence and flag in the corner."""
    names = explainer.loaded.class_names
    explanation = explainer.explain(source, names.index(prediction.label))
    text = answer_text(prediction.display_label, prediction.confidence, prediction.flag)
    return write_explanation(Path(directory), source, explanation, text, taken, explainer.config)
