from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from trainer.common.configs import PreprocessConfig
from trainer.common.errors import ImageDecodeError
from trainer.data.preprocess import decode_image, preprocess, to_model_input
from trainer.data.synthetic import face_like

CFG = PreprocessConfig()


def test_matches_the_papers_torchvision_pipeline():
    image = face_like(np.random.default_rng(0), 200)
    paper = transforms.Compose(
        [transforms.Resize((24, 24)), transforms.ToTensor(), transforms.Normalize(CFG.mean, CFG.std)]
    )
    expected = paper(image).flatten()
    ours = preprocess([image], CFG)
    assert ours.shape == (1, 1728)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours[0], expected, atol=1e-5, rtol=0)


def test_paths_and_pil_images_give_the_same_input(tmp_path: Path):
    image = face_like(np.random.default_rng(1), 64)
    image.save(tmp_path / "a.png")
    torch.testing.assert_close(preprocess([tmp_path / "a.png"], CFG), preprocess([image], CFG))


def _draft_error(path: Path) -> float:
    full = decode_image(path, PreprocessConfig(jpeg_draft=False)).astype(float)
    draft = decode_image(path, CFG).astype(float)
    return float(np.abs(full - draft).mean())


def test_draft_decoding_moves_pixels_by_at_most_2_of_255(tmp_path: Path):
    rng = np.random.default_rng(2)
    errors = []
    for i in range(5):
        path = tmp_path / f"{i}.jpg"
        face_like(rng, 96).resize((1024, 1024), Image.Resampling.BICUBIC).save(path, quality=90)
        errors.append(_draft_error(path))
    assert max(errors) <= 2.0, errors


def test_draft_decoding_on_the_real_sample(shared_sample: Path):
    # Measured: mean 0.68/255 on faces (512 px) and 1.74/255 on comics (many 256 px), so about
    # 0.9/255 over the sample; single sharp-edged comics reach about 3/255.
    paths = sorted(shared_sample.glob("*/*.jpg"))
    errors = [_draft_error(p) for p in paths]
    assert len(errors) == 413
    assert np.mean(errors) <= 2.0, np.mean(errors)


def test_jpeg_draft_is_used_for_jpegs_only(tmp_path: Path):
    """The switch changes how big JPEGs decode (a reduced DCT, so pixels move a little) and
    nothing else: a PNG of the same picture decodes the same either way."""
    big = face_like(np.random.default_rng(4), 96).resize((1024, 1024), Image.Resampling.BICUBIC)
    big.save(tmp_path / "big.jpg", quality=90)
    big.save(tmp_path / "big.png")
    assert 0 < _draft_error(tmp_path / "big.jpg") <= 2.0
    assert _draft_error(tmp_path / "big.png") == 0


def test_exif_orientation_is_applied(tmp_path: Path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left red
    pixels[:, 20:] = (0, 0, 255)  # right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: left becomes top
    Image.fromarray(pixels).save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = decode_image(tmp_path / "o.jpg", CFG)
    assert out[2, 12, 0] > 200 and out[2, 12, 2] < 60
    assert out[21, 12, 2] > 200 and out[21, 12, 0] < 60


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Image.new("RGBA", (30, 30), (255, 0, 0, 0)), (255, 255, 255)),  # transparent: white
        (lambda: Image.new("RGBA", (30, 30), (255, 0, 0, 255)), (255, 0, 0)),
        (lambda: Image.new("LA", (30, 30), (0, 0)), (255, 255, 255)),
        (lambda: Image.new("L", (30, 30), 77), (77, 77, 77)),
        (lambda: Image.new("1", (30, 30), 1), (255, 255, 255)),
        (lambda: Image.new("CMYK", (30, 30), (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: Image.new("I;16", (30, 30), 32768), (128, 128, 128)),
        (lambda: Image.new("I", (30, 30), 65535), (255, 255, 255)),
        (lambda: Image.new("F", (30, 30), 300.0), (255, 255, 255)),
    ],
)
def test_modes_become_rgb_in_the_documented_way(make, expected):
    out = decode_image(make(), CFG)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8
    assert tuple(int(v) for v in out[12, 12]) == expected


def test_palette_with_transparency_is_composited(tmp_path: Path):
    image = Image.new("P", (30, 30), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.save(tmp_path / "t.png", transparency=0)
    assert tuple(decode_image(tmp_path / "t.png", CFG)[5, 5]) == (255, 255, 255)


def test_sixteen_bit_png_file(tmp_path: Path):
    Image.new("I;16", (30, 30), 65535).save(tmp_path / "d.png")
    assert tuple(decode_image(tmp_path / "d.png", CFG)[0, 0]) == (255, 255, 255)


def test_cmyk_jpeg_file(tmp_path: Path):
    Image.new("CMYK", (30, 30), (0, 0, 0, 0)).save(tmp_path / "c.jpg", quality=95)
    assert decode_image(tmp_path / "c.jpg", CFG).min() > 245


def test_gif_uses_the_first_frame(tmp_path: Path):
    frames = [Image.new("RGB", (30, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    r, _, b = decode_image(tmp_path / "a.gif", CFG)[12, 12]
    assert r > 200 and b < 50


def test_non_ascii_path(tmp_path: Path):
    path = tmp_path / "ünïcødé 顔" / "写真 é.png"
    path.parent.mkdir()
    Image.new("RGB", (30, 30), (1, 2, 3)).save(path)
    assert tuple(decode_image(path, CFG)[0, 0]) == (1, 2, 3)


def _png_with_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"this is not an image", "not a readable image"),
        ("truncated", "truncated or corrupt"),
        ("bomb", "too large to open safely"),
    ],
)
def test_bad_files_give_one_clear_reason(tmp_path: Path, content, reason):
    path = tmp_path / "bad.jpg"
    if content == "truncated":
        buffer = io.BytesIO()
        face_like(np.random.default_rng(0), 256).save(buffer, "JPEG", quality=95)
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    elif content == "bomb":
        path = tmp_path / "bomb.png"
        content = _png_with_size(40_000, 40_000)
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, CFG)
    assert reason in info.value.reason
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ImageDecodeError, match="does not exist"):
        decode_image(tmp_path / "nope.jpg", CFG)


def test_to_model_input_is_channel_first():
    pixels = np.zeros((1, 24, 24, 3), np.uint8)
    pixels[..., 0] = 255  # red channel only
    x = to_model_input(pixels, CFG)[0]
    red, green = x[:576], x[576:1152]
    assert torch.allclose(red, torch.tensor((1 - CFG.mean[0]) / CFG.std[0]))
    assert torch.allclose(green, torch.tensor(-CFG.mean[1] / CFG.std[1]))
