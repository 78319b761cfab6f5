"""Synthetic pictures that are not faces, for teaching a model what "not a face" looks like.

A two-class head must answer "Real face" or "Comic" even for a line chart. Outlier exposure
(Hendrycks et al., 2019) fixes that cheaply: a scorer learns the training images against pictures
that are certainly not faces. Those are generated here, never taken from any evaluation set, in
the kinds of things people drop by mistake: flat colours and gradients, shapes and polygons,
checkerboards and stripes, text and documents, plots and charts, noise at several scales, blurred
blobs and UI-like layouts.

Deterministic: picture ``i`` of a seed is drawn from its own ``SeedSequence([seed, i])``, so it
does not depend on how many pictures are asked for. ``GENERATOR_VERSION`` is part of every cache
key that holds their embeddings; bump it when any picture changes.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

GENERATOR_VERSION = 1
CANVAS = 192  # drawn at this size, then resized like any image (see ``trainer.data.preprocess``)

Painter = Callable[[np.random.Generator, int], Image.Image]


def _colour(rng: np.random.Generator, dark: bool | None = None) -> tuple[int, int, int]:
    if dark is None:
        return tuple(int(v) for v in rng.integers(0, 256, 3))
    low, high = (0, 110) if dark else (150, 256)
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _font(rng: np.random.Generator, low: int = 9, high: int = 30) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=int(rng.integers(low, high)))


def _word(rng: np.random.Generator, low: int = 2, high: int = 10) -> str:
    letters = string.ascii_letters + string.digits + "    .,:%$#"
    return "".join(rng.choice(list(letters), int(rng.integers(low, high))))


def flat(rng: np.random.Generator, size: int) -> Image.Image:
    return Image.new("RGB", (size, size), _colour(rng))


def gradient(rng: np.random.Generator, size: int) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size] / size
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        t = (x * math.cos(angle) + y * math.sin(angle)) / (abs(math.cos(angle)) + abs(math.sin(angle)))
    else:
        cx, cy = rng.uniform(0, 1, 2)
        t = np.hypot(x - cx, y - cy) / math.sqrt(2)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
    return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8), "RGB")


def shapes(rng: np.random.Generator, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), _colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 12))):
        box = (
            sorted(rng.integers(-size // 4, size + size // 4, 2)),
            sorted(rng.integers(-size // 4, size + size // 4, 2)),
        )
        xy = [box[0][0], box[1][0], box[0][1] + 2, box[1][1] + 2]
        fill = None if rng.random() < 0.25 else _colour(rng)
        outline = _colour(rng) if fill is None or rng.random() < 0.5 else None
        width = int(rng.integers(1, 6))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle(xy, fill=fill, outline=outline, width=width)
        elif kind == 1:
            draw.ellipse(xy, fill=fill, outline=outline, width=width)
        else:
            points = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(int(rng.integers(3, 8)))]
            draw.polygon(points, fill=fill, outline=outline, width=width)
    return image


def pattern(rng: np.random.Generator, size: int) -> Image.Image:
    """Checkerboards and stripes at a random scale and angle."""
    y, x = np.mgrid[0:size, 0:size].astype(float)
    angle = rng.uniform(0, math.pi) if rng.random() < 0.5 else 0.0
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    period = rng.uniform(4, size / 2)
    if rng.random() < 0.5:
        mask = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    else:
        mask = np.floor(u / period) % 2 == 0
    a, b = np.array(_colour(rng), np.uint8), np.array(_colour(rng), np.uint8)
    return Image.fromarray(np.where(mask[..., None], a, b), "RGB")


def text(rng: np.random.Generator, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), _colour(rng))
    draw = ImageDraw.Draw(image)
    ink = _colour(rng)
    for _ in range(int(rng.integers(1, 8))):
        xy = tuple(int(v) for v in rng.integers(-size // 8, size - size // 8, 2))
        draw.text(
            xy, _word(rng, 1, 14), fill=ink if rng.random() < 0.7 else _colour(rng), font=_font(rng, 10, 60)
        )
    return image


def document(rng: np.random.Generator, size: int) -> Image.Image:
    """A page: a heading, paragraphs of small text, sometimes a table or a rule."""
    paper = _colour(rng, dark=False) if rng.random() < 0.3 else (255, 255, 255)
    image = Image.new("RGB", (size, size), paper)
    draw = ImageDraw.Draw(image)
    ink = _colour(rng, dark=True)
    margin = int(rng.integers(4, size // 6))
    y = margin
    draw.text((margin, y), _word(rng, 4, 16), fill=ink, font=_font(rng, 14, 24))
    y += int(rng.integers(20, 34))
    line = int(rng.integers(7, 14))
    font = _font(rng, line - 2, line + 1)
    while y < size - margin:
        if rng.random() < 0.12:  # a table
            columns, rows = int(rng.integers(2, 5)), int(rng.integers(2, 6))
            width = (size - 2 * margin) / columns
            for r in range(rows):
                for c in range(columns):
                    box = [
                        margin + c * width,
                        y + r * line * 1.6,
                        margin + (c + 1) * width,
                        y + (r + 1) * line * 1.6,
                    ]
                    draw.rectangle(box, outline=ink)
                    draw.text((box[0] + 2, box[1] + 1), _word(rng, 1, 6), fill=ink, font=font)
            y += int(rows * line * 1.6) + line
            continue
        words = " ".join(_word(rng, 1, 9) for _ in range(int(rng.integers(3, 14))))
        draw.text((margin, y), words, fill=ink, font=font)
        y += int(line * rng.uniform(1.2, 1.8))
    return image


def chart(rng: np.random.Generator, size: int) -> Image.Image:
    """Axes with lines, bars, scatter points or a pie, ticks, a grid and labels."""
    image = Image.new(
        "RGB", (size, size), _colour(rng, dark=False) if rng.random() < 0.3 else (255, 255, 255)
    )
    draw = ImageDraw.Draw(image)
    ink = _colour(rng, dark=True)
    left, bottom, right, top = size // 7, size - size // 7, size - size // 14, size // 14
    kind = int(rng.integers(0, 4))
    if kind == 3:  # pie
        start = 0.0
        for share in rng.dirichlet(np.ones(int(rng.integers(2, 7)))):
            draw.pieslice(
                [left, top, right, bottom], start, start + 360 * share, fill=_colour(rng), outline=ink
            )
            start += 360 * share
        return image
    if rng.random() < 0.5:  # a grid
        for i in range(1, int(rng.integers(3, 9))):
            gx = left + (right - left) * i / 8
            gy = top + (bottom - top) * i / 8
            draw.line([(gx, top), (gx, bottom)], fill=(215, 215, 215))
            draw.line([(left, gy), (right, gy)], fill=(215, 215, 215))
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=ink, width=int(rng.integers(1, 3)))
    font = _font(rng, 7, 12)
    for i in range(6):
        draw.text(
            (left + (right - left) * i / 5 - 4, bottom + 3),
            str(int(rng.integers(0, 100))),
            fill=ink,
            font=font,
        )
        draw.text((2, bottom - (bottom - top) * i / 5 - 5), str(i * 10), fill=ink, font=font)
    for _ in range(int(rng.integers(1, 4))):
        colour = _colour(rng)
        n = int(rng.integers(5, 60))
        xs = np.linspace(left + 2, right - 2, n)
        ys = (
            np.cumsum(rng.normal(0, 1, n))
            if rng.random() < 0.6
            else np.sin(np.linspace(0, rng.uniform(1, 12), n))
        )
        ys = bottom - 4 - (ys - ys.min()) / max(float(np.ptp(ys)), 1e-6) * (bottom - top - 8)
        if kind == 0:
            draw.line(list(zip(xs, ys, strict=True)), fill=colour, width=int(rng.integers(1, 4)))
        elif kind == 1:
            width = (right - left) / n * 0.4
            for x, y in zip(xs, ys, strict=True):
                draw.rectangle([x - width, y, x + width, bottom - 1], fill=colour)
        else:
            for x, y in zip(xs, ys + rng.normal(0, 8, n), strict=True):
                r = rng.uniform(1, 4)
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return image


def noise(rng: np.random.Generator, size: int) -> Image.Image:
    """White or smooth noise, grey or coloured, at a random scale."""
    cells = int(rng.choice([2, 4, 8, 16, 32, size]))
    channels = 1 if rng.random() < 0.3 else 3
    field = rng.random((cells, cells, channels))
    image = Image.fromarray((field * 255).astype(np.uint8).squeeze(), "L" if channels == 1 else "RGB")
    resample = Image.Resampling.BICUBIC if rng.random() < 0.7 else Image.Resampling.NEAREST
    return image.resize((size, size), resample).convert("RGB")


def blobs(rng: np.random.Generator, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), _colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 10))):
        cx, cy = rng.integers(0, size, 2)
        r = int(rng.integers(size // 16, size // 2))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_colour(rng))
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(2, size / 8))))


def interface(rng: np.random.Generator, size: int) -> Image.Image:
    """A window of a desktop program: title bar, tabs, buttons, lists, fields and panels."""
    light = rng.random() < 0.7
    background = _colour(rng, dark=not light)
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    ink = (20, 20, 20) if light else (235, 235, 235)
    font = _font(rng, 7, 12)
    bar = int(rng.integers(10, 22))
    draw.rectangle([0, 0, size, bar], fill=_colour(rng))
    draw.text((6, 2), _word(rng, 3, 12), fill=ink, font=font)
    y = bar + 4
    while y < size - 8:
        kind = int(rng.integers(0, 4))
        height = int(rng.integers(10, 28))
        if kind == 0:  # a row of buttons or tabs
            x = 4
            while x < size - 20:
                width = int(rng.integers(20, 60))
                draw.rounded_rectangle(
                    [x, y, x + width, y + height], radius=3, fill=_colour(rng, dark=not light), outline=ink
                )
                draw.text((x + 4, y + 2), _word(rng, 2, 7), fill=ink, font=font)
                x += width + int(rng.integers(2, 10))
        elif kind == 1:  # a list or table
            rows = int(rng.integers(2, 8))
            for r in range(rows):
                fill = _colour(rng, dark=not light) if r % 2 else background
                draw.rectangle([4, y + r * 11, size - 4, y + (r + 1) * 11], fill=fill)
                draw.text((6, y + r * 11), _word(rng, 4, 20), fill=ink, font=font)
            height = rows * 11
        elif kind == 2:  # a labelled field or a progress bar
            draw.text((4, y), _word(rng, 3, 9), fill=ink, font=font)
            draw.rectangle(
                [size // 3, y, size - 4, y + height],
                fill=(255, 255, 255) if light else (40, 40, 40),
                outline=ink,
            )
            if rng.random() < 0.5:
                filled = size // 3 + 1 + int(rng.uniform(0, 1) * (size * 2 // 3 - 6))
                draw.rectangle([size // 3 + 1, y + 1, filled, y + height - 1], fill=_colour(rng))
        else:  # a panel, maybe holding a small plot-like line
            draw.rectangle([4, y, size - 4, y + 2 * height], outline=ink, fill=_colour(rng, dark=not light))
            points = [
                (4 + i * (size - 8) / 20, y + 2 * height - rng.uniform(2, 2 * height - 2)) for i in range(21)
            ]
            draw.line(points, fill=_colour(rng), width=1)
            height *= 2
        y += height + int(rng.integers(3, 10))
    return image


PAINTERS: tuple[Painter, ...] = (
    flat,
    gradient,
    shapes,
    pattern,
    text,
    document,
    chart,
    noise,
    blobs,
    interface,
)


def non_face_picture(seed: int, index: int, size: int = CANVAS) -> Image.Image:
    """Picture ``index`` of ``seed``: its kind cycles through ``PAINTERS``, its content is random."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    return PAINTERS[index % len(PAINTERS)](rng, size)


def non_face_pictures(count: int, seed: int = 0, size: int = CANVAS) -> list[Image.Image]:
    return [non_face_picture(seed, i, size) for i in range(count)]


NEGATIVES = 300  # enough for the scorer (docs/how-it-works.md, "Not a face"); ~2 s of extraction, then cached
NEGATIVES_SEED = 0  # one fixed set for every run, so its embeddings are cached once per machine


def generator_description(count: int = NEGATIVES, seed: int = NEGATIVES_SEED) -> dict[str, int]:
    """What a model file records about the pictures its scorer learned against."""
    return {"version": GENERATOR_VERSION, "seed": seed, "count": count}


def non_face_pixels(config, count: int = NEGATIVES, seed: int = NEGATIVES_SEED) -> np.ndarray:
    """``(count, size, size, 3)`` uint8: the pictures decoded exactly as image files are."""
    from trainer.data.preprocess import decode_image

    return np.stack([decode_image(picture, config) for picture in non_face_pictures(count, seed)])
