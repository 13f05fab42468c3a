"""Images as they come: every accepted format decodes upright; every bad input says why."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rudolph.errors import (
    EmptyImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    UnreadableImageError,
)
from rudolph.images import ANALYSIS_MAX_SIDE, decode
from tests.bombs import GRAY, PALETTE, RGB, RGBA, png_bomb
from tests.photos import encode, exif_rotated_jpeg, load


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    return load("chelsea")  # 451 x 300


def _close(a: np.ndarray, b: np.ndarray, tolerance: float = 12.0) -> bool:
    return (
        a.shape == b.shape and float(np.abs(a.astype(float) - b.astype(float)).mean()) < tolerance
    )


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {"quality": 95}),
        ("PNG", {}),
        ("WEBP", {"quality": 95}),
        ("TIFF", {}),
        ("BMP", {}),
    ],
)
def test_accepted_formats_decode_to_the_same_pixels(
    cat: Image.Image, fmt: str, params: dict
) -> None:
    decoded = decode(encode(cat, fmt, **params))
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == cat.size
    assert _close(decoded.rgb, np.asarray(cat))


def test_gif_uses_the_first_frame(cat: Image.Image) -> None:
    second = Image.new("RGB", cat.size, (0, 255, 0))
    data = encode(cat, "GIF", save_all=True, append_images=[second])
    decoded = decode(data)
    assert decoded.format == "GIF"
    # The first frame is the cat (palette-quantised), not the green second frame.
    assert decoded.rgb[:, :, 1].mean() < 200
    assert _close(decoded.rgb, np.asarray(cat), tolerance=20)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1"])
def test_other_modes_become_rgb(cat: Image.Image, mode: str) -> None:
    decoded = decode(encode(cat.convert(mode), "PNG"))
    assert decoded.rgb.shape == (cat.height, cat.width, 3)
    assert decoded.rgb.dtype == np.uint8


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    assert decode(encode(image, "PNG")).rgb.min() == 255


def test_16_bit_grayscale_is_stretched_to_8_bits() -> None:
    # 12 bits of data in 16-bit samples, as scientific cameras write them.
    ramp = np.tile(np.linspace(0, 4095, 256, dtype=np.uint16), (64, 1))
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    decoded = decode(encode(image, "PNG"))
    assert decoded.rgb.shape == (64, 256, 3)
    assert decoded.rgb.min() == 0 and decoded.rgb.max() == 255


def test_cmyk_jpeg(cat: Image.Image) -> None:
    decoded = decode(encode(cat.convert("CMYK"), "JPEG", quality=95))
    assert _close(decoded.rgb, np.asarray(cat), tolerance=20)


def test_exif_orientation_is_applied(cat: Image.Image) -> None:
    decoded = decode(exif_rotated_jpeg(cat))
    assert (decoded.width, decoded.height) == cat.size
    assert _close(decoded.rgb, np.asarray(cat))


def test_large_images_are_downscaled_and_say_so() -> None:
    big = Image.new("RGB", (12_000, 3_000), (10, 20, 30))
    decoded = decode(encode(big, "JPEG", quality=80))
    assert max(decoded.rgb.shape[:2]) <= ANALYSIS_MAX_SIDE
    assert (decoded.width, decoded.height) == (12_000, 3_000)
    assert "downscaled from 12000x3000" in decoded.notes[0]


# -- bad input: each has a message that says what was wrong and what to do ----------------


def test_zero_byte_file() -> None:
    with pytest.raises(EmptyImageError, match=r"empty \(0 bytes\).*upload the image again"):
        decode(b"")


def test_truncated_jpeg(cat: Image.Image) -> None:
    data = encode(cat, "JPEG")
    with pytest.raises(UnreadableImageError, match=r"JPEG data is truncated or corrupt.*upload"):
        decode(data[: len(data) // 2])


def test_text_file_named_jpg() -> None:
    with pytest.raises(
        UnreadableImageError,
        match=r"not an image \(27 bytes, it starts with text 'hello, this '\): upload a JPEG",
    ):
        decode(b"hello, this is not a photo\n")


def test_image_under_32_pixels() -> None:
    with pytest.raises(ImageTooSmallError, match=r"20x100 px; rudolph needs at least 32 px"):
        decode(encode(Image.new("RGB", (20, 100)), "PNG"))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A 1-bit PNG of 20,000 x 20,000 px is tiny on disk and 400 megapixels decoded.
    data = encode(Image.new("1", (20_000, 20_000)), "PNG", optimize=True)
    assert len(data) < 200_000
    with pytest.raises(ImageTooLargeError, match=r"20000x20000 px .* over the 250 megapixel"):
        decode(data)


def test_an_image_over_the_memory_budget_is_refused_before_decoding(tmp_path: Path) -> None:
    # 6000 x 6000 RGBA: 137 MB decoded from a few KB; the budget says 100 MB.
    data = png_bomb(tmp_path / "bomb.png", 6000, 6000, RGBA).read_bytes()
    started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageTooLargeError, match=r"would take 137 MB of memory, over the 100 MB"):
        decode(data, budget_mb=100)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - started < 50_000  # KB


@pytest.mark.parametrize(
    ("colour", "depth"), [(RGBA, 8), (GRAY, 16), (PALETTE, 8), (RGB, 8)], ids=str
)
def test_a_large_image_is_reduced_right_after_decoding(
    tmp_path: Path, colour: int, depth: int
) -> None:
    """No conversion (alpha, palette, 16-bit) runs at full size: a 9000 x 9000 image costs
    about its decoded size, not several copies of it (16-bit once went through float64)."""
    data = png_bomb(tmp_path / "big.png", 9000, 9000, colour, depth).read_bytes()
    script = (
        "import resource, sys\n"
        "from rudolph.images import decode\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "image = decode(sys.stdin.buffer.read())\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(grown * 1024, image.rgb.shape[0], image.rgb.shape[1], image.width)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, check=True, timeout=120
    )
    grown, rows, columns, width = map(int, done.stdout.split())
    decoded = 9000 * 9000 * (1 if colour in (GRAY, PALETTE) and depth == 8 else 4)
    if depth == 16:
        decoded = 9000 * 9000 * 2
    assert (rows, columns, width) == (ANALYSIS_MAX_SIDE, ANALYSIS_MAX_SIDE, 9000)
    assert grown < decoded + 120 * 2**20, f"{grown / 2**20:.0f} MB for {decoded / 2**20:.0f}"


def test_a_large_transparent_image_is_still_flattened_on_white() -> None:
    palette = Image.new("P", (9000, 4500), 0)
    palette.putpalette([0, 0, 0] * 256)  # every colour black, and colour 0 transparent
    palette.paste(1, (3000, 1500, 6000, 3000))
    image = decode(encode(palette, "PNG", transparency=0))
    assert image.rgb.shape == (1024, 2048, 3)
    assert image.rgb[10, 10].tolist() == [255, 255, 255]
    assert image.rgb[512, 1024].tolist() == [0, 0, 0]
