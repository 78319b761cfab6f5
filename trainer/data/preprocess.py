"""The one preprocessing path, shared by training and prediction.

``decode_image`` turns a file or PIL image into ``size x size x 3`` uint8 pixels (this is what the
cache stores); ``to_model_input`` normalises a batch of them with the model's mean/std and flattens
it channel-first, exactly as torchvision's ``Resize -> ToTensor -> Normalize -> flatten`` would.

Mode handling, so every image becomes RGB the same way:
- EXIF orientation is applied first;
- alpha (RGBA, LA, palette with transparency) is composited on ``alpha_background`` (white);
- palette, grey and 1-bit images are expanded to RGB; CMYK uses PIL's conversion;
- 16-bit and 32-bit integer images keep their top 8 bits; float images are clipped to 0..255;
- animated GIF/WebP/TIFF use their first frame.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainer.common.configs import PreprocessConfig
from trainer.common.errors import ImageDecodeError
from trainer.common.outputs import describe_kind

if TYPE_CHECKING:
    import torch

ImageSource = str | os.PathLike[str] | Image.Image

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def decode_image(source: ImageSource, config: PreprocessConfig) -> np.ndarray:
    """Pixels of one image as ``(size, size, 3)`` uint8; raises ``ImageDecodeError``."""
    if isinstance(source, Image.Image):
        return _resize(_to_rgb(ImageOps.exif_transpose(source), config), config)
    path = os.fspath(source)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            # A FIFO would block the reader forever and /dev/zero never ends: neither is opened.
            raise ImageDecodeError(path, f"not a regular file ({describe_kind(path)})", lasting=False)
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            raise ImageDecodeError(path, "the file is empty (0 bytes)")
        with Image.open(path) as image:
            if config.jpeg_draft and image.format == "JPEG":
                # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding: the DCT scale that stays
                # at least `size` pixels. Much faster, and within 2/255 of a full decode (tested).
                image.draft("RGB", (config.size, config.size))
            image.load()
            return _resize(_to_rgb(ImageOps.exif_transpose(image), config), config)
    except ImageDecodeError:
        raise
    except Exception as err:  # every failure becomes one sentence for this file
        lasting = not isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError)
        raise ImageDecodeError(path, describe_decode_failure(err), lasting=lasting) from err


def describe_decode_failure(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "the file does not exist"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, IsADirectoryError):
        return "this is a folder, not an image file"
    if isinstance(err, Image.DecompressionBombError):
        return (
            "the image is too large to open safely (over PIL's decompression-bomb limit of "
            f"{Image.MAX_IMAGE_PIXELS * 2:,} pixels)"
        )
    if isinstance(err, UnidentifiedImageError):
        return "not a readable image (unknown format or corrupt header)"
    message = str(err) or type(err).__name__
    if isinstance(err, OSError) and ("truncated" in message or "broken" in message):
        return f"the image data is truncated or corrupt ({message})"
    if isinstance(err, (OSError, SyntaxError, ValueError, EOFError)):
        return f"the image data is corrupt ({message})"
    return f"could not decode the image ({type(err).__name__}: {message})"


def _to_rgb(image: Image.Image, config: PreprocessConfig) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        pixels = np.asarray(image).astype(np.int64)
        image = Image.fromarray(np.clip(pixels >> 8, 0, 255).astype(np.uint8), "L")
        mode = "L"
    elif mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*config.alpha_background, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _resize(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    size = (config.size, config.size)
    if image.size != size:
        image = image.resize(size, _RESAMPLE[config.resample])
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.shape != (config.size, config.size, 3):  # pragma: no cover - defensive
        raise ValueError(f"unexpected pixel shape {pixels.shape}")
    return pixels


def normalised_images(
    pixels: np.ndarray, config: PreprocessConfig, device: str = "cpu", channels_last: bool = False
) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 to normalised ``(N, 3, S, S)`` float32 in one copy: an NHWC array
    permuted to NCHW already has channels_last strides, which ``float()`` keeps."""
    import torch

    pixels = np.ascontiguousarray(pixels)
    if not pixels.flags.writeable:  # torch.from_numpy warns on read-only arrays (a read cache, PIL)
        pixels = pixels.copy()
    batch = torch.from_numpy(pixels).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(config.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    batch = batch.sub_(mean).div_(std)
    return batch.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def to_model_input(pixels: np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    """``(N, size, size, 3)`` uint8 to normalised ``(N, 3*size*size)`` float32, channel-first."""
    return normalised_images(pixels, config).reshape(len(pixels), -1)


def preprocess(sources: list[ImageSource], config: PreprocessConfig) -> torch.Tensor:
    """Decode and normalise images in one call; raises on the first bad image."""
    pixels = (
        np.stack([decode_image(s, config) for s in sources])
        if sources
        else np.zeros((0, config.size, config.size, 3), np.uint8)
    )
    return to_model_input(pixels, config)


def source_label(source: ImageSource) -> str:
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<image>"
    return str(Path(source))
