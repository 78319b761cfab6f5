"""Draws assets/facecomic.png (256 px): half a photographic face, half a comic one.

Run from the repository root: ``.venv/bin/python assets/make_icon.py``.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 256
OUT = Path(__file__).resolve().parent / "facecomic.png"


def main() -> None:
    scale = 4  # draw large, then downsample, for smooth edges
    s = SIZE * scale
    yy, xx = np.mgrid[0:s, 0:s] / s
    # Left half: a soft, shaded skin tone like a photo; right half: flat comic yellow.
    shade = 0.78 + 0.22 * np.clip(1.2 - np.hypot(xx - 0.35, yy - 0.35) * 1.6, 0, 1)
    photo = np.stack([236 * shade, 188 * shade, 160 * shade], axis=-1)
    comic = np.zeros_like(photo)
    comic[:] = (255, 214, 64)
    pixels = np.where((xx < 0.5)[..., None], photo, comic).astype(np.uint8)
    face = Image.fromarray(pixels, "RGB")

    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).ellipse((0.14 * s, 0.10 * s, 0.86 * s, 0.90 * s), fill=255)
    icon = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    background = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    ImageDraw.Draw(background).rounded_rectangle(
        (0, 0, s - 1, s - 1), radius=0.22 * s, fill=(38, 70, 110, 255)
    )
    icon.alpha_composite(background)
    icon.paste(face, (0, 0), mask)

    draw = ImageDraw.Draw(icon)
    ink = (20, 20, 20, 255)
    w = int(0.035 * s)
    # Comic side: bold outline, dot eye, line mouth, halftone dots.
    draw.arc((0.14 * s, 0.10 * s, 0.86 * s, 0.90 * s), -90, 90, fill=ink, width=w)
    draw.ellipse((0.60 * s, 0.36 * s, 0.70 * s, 0.48 * s), fill=ink)
    draw.arc((0.50 * s, 0.56 * s, 0.74 * s, 0.74 * s), 10, 90, fill=ink, width=w)
    for cx in np.arange(0.58, 0.84, 0.06):
        for cy in np.arange(0.20, 0.34, 0.06):
            r = 0.010 * s
            draw.ellipse((cx * s - r, cy * s - r, cx * s + r, cy * s + r), fill=(230, 150, 30, 255))
    # Photo side: a soft, blurred eye and mouth.
    soft = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    sd = ImageDraw.Draw(soft)
    sd.ellipse((0.30 * s, 0.37 * s, 0.40 * s, 0.47 * s), fill=(70, 45, 35, 230))
    sd.arc((0.26 * s, 0.56 * s, 0.50 * s, 0.74 * s), 90, 170, fill=(160, 70, 60, 255), width=w)
    soft = soft.filter(ImageFilter.GaussianBlur(0.005 * s))
    left = Image.new("L", (s, s), 0)
    ImageDraw.Draw(left).rectangle((0, 0, s // 2, s), fill=255)
    icon.paste(soft, (0, 0), Image.composite(soft.getchannel("A"), Image.new("L", (s, s), 0), left))
    # The dividing line.
    draw.line((s / 2, 0.10 * s, s / 2, 0.90 * s), fill=(255, 255, 255, 255), width=max(2, w // 2))
    icon.resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
