"""Turn image bytes as they come into upright 8-bit RGB pixels, or a clear ImageError.

Accepts JPEG (including CMYK), PNG, WebP, TIFF, BMP and GIF (first frame); grayscale, palette,
alpha and 16-bit images; applies EXIF orientation. Large images are decoded at reduced size
(JPEG draft mode) and downscaled, because no model here gains from more than a few megapixels.

Memory is bounded whatever the bytes claim: an image whose decoded pixels would exceed the
memory budget is refused before decoding, and a large one is box-reduced strip by strip right
after decoding, so no conversion (palette, 16-bit, alpha) ever runs at full size.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rudolph.errors import (
    EmptyImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    UnreadableImageError,
)
from rudolph.settings import DECODE_BUDGET_MB

MIN_SIDE = 32
# Decompression-bomb guard: beyond this many pixels decoding alone could exhaust a worker.
MAX_PIXELS = 250_000_000
# Longest side the local models look at; OCR and MTCNN work on downscaled copies anyway.
ANALYSIS_MAX_SIDE = 2048
ACCEPTED = "JPEG, PNG, WebP, TIFF, BMP or GIF"
# Pixels of the original converted at once while reducing: a few MB whatever the image.
_STRIP_PIXELS = 1 << 20
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")

Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, with a clearer message


@dataclass(frozen=True)
class DecodedImage:
    """Upright RGB pixels plus what a record needs to know about the original."""

    rgb: np.ndarray  # uint8, H x W x 3, possibly downscaled from the original
    width: int  # upright original width in pixels
    height: int
    format: str  # Pillow's format name: JPEG, PNG, WEBP, ...
    notes: tuple[str, ...] = ()


def _describe_start(data: bytes) -> str:
    head = data[:12]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"it starts with text {head.decode('ascii')!r}"
    return f"it starts with bytes {head.hex(' ')}"


def open_image(data: bytes) -> Image.Image:
    """Open (not decode) an image, raising a clear ImageError for what is not one."""
    if not data:
        raise EmptyImageError(
            "the file is empty (0 bytes): the upload did not complete; upload the image again"
        )
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnreadableImageError(
            f"not an image ({len(data)} bytes, {_describe_start(data)}): upload a {ACCEPTED} file"
        ) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"image is {width}x{height} px ({width * height / 1e6:.0f} megapixels), over the "
            f"{MAX_PIXELS / 1e6:.0f} megapixel limit: downscale it before uploading"
        )
    return image


def decoded_bytes(image: Image.Image) -> int:
    """What Pillow will hold in memory for the decoded pixels of an opened image."""
    mode = image.mode
    if mode in ("1", "L", "P"):
        per_pixel = 1
    elif mode in _SIXTEEN_BIT:
        per_pixel = 2
    else:  # I, F, and every multi-band mode: Pillow stores 3 bands in 4 bytes too
        per_pixel = 4
    return image.width * image.height * per_pixel


def _check_budget(image: Image.Image, fmt: str, budget_mb: int) -> None:
    needed = decoded_bytes(image)
    if needed > budget_mb * 2**20:
        raise ImageTooLargeError(
            f"decoding this {image.width}x{image.height} px {fmt} ({image.mode}) would take "
            f"{needed / 2**20:.0f} MB of memory, over the {budget_mb} MB budget "
            "(RUDOLPH_DECODE_BUDGET_MB): downscale it before uploading, or raise the budget"
        )


def _reducible(strip: Image.Image) -> Image.Image:
    """A strip in a mode Image.reduce() takes (it refuses palette, bilevel and 16-bit)."""
    if strip.mode == "P":
        return strip.convert("RGBA" if "transparency" in strip.info else "RGB")
    if strip.mode == "1":
        return strip.convert("L")
    if strip.mode in _SIXTEEN_BIT:
        return strip.convert("I")
    return strip


def _reduced(image: Image.Image, max_side: int) -> Image.Image:
    """`image` box-reduced by a whole factor to no less than `max_side` (the final
    resampling's input), converted strip by strip so that nothing but the small result is
    ever allocated beside the decoded original."""
    factor = max(image.size) // max_side
    if factor < 2:
        return image
    width, height = image.size
    rows = factor * max(1, _STRIP_PIXELS // (width * factor))
    result: Image.Image | None = None
    for top in range(0, height, rows):
        strip = _reducible(image.crop((0, top, width, min(height, top + rows)))).reduce(factor)
        if result is None:
            result = Image.new(strip.mode, (-(-width // factor), -(-height // factor)))
        result.paste(strip, (0, top // factor))
    assert result is not None
    result.info = image.info
    return result


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode, compositing transparency on white."""
    if image.mode in (*_SIXTEEN_BIT, "I", "F"):
        # Stretch 16/32-bit data to the 8-bit range by its own extremes (a PNG with 12 bits
        # of data in 16-bit samples would otherwise come out nearly black). float32: the
        # image is at most a few megapixels here, and float32 holds every 16-bit value.
        array = np.asarray(image).astype(np.float32)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        array -= low
        array *= scale
        image = Image.fromarray(array.astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image


def decode(
    data: bytes, max_side: int = ANALYSIS_MAX_SIDE, budget_mb: int = DECODE_BUDGET_MB
) -> DecodedImage:
    """Decode, orient and downscale image bytes for analysis, in at most `budget_mb` MB for
    the decoded pixels (ImageTooLargeError beyond, before anything is decoded)."""
    image = open_image(data)
    fmt = image.format or "unknown"
    if min(image.size) < MIN_SIDE:
        raise ImageTooSmallError(
            f"image is {image.width}x{image.height} px; rudolph needs at least {MIN_SIDE} px "
            "a side to find anything in it: upload a larger image"
        )
    stored = image.size
    if fmt == "JPEG" and max(stored) > 2 * max_side:
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster and smaller in memory.
        image.draft("RGB", (max_side, max_side))
    _check_budget(image, fmt, budget_mb)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.seek(0)  # first frame of an animation
            image.load()
            # After load: a PNG's EXIF may follow its pixels, and getexif() would load them.
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(
            f"the {fmt} data is truncated or corrupt ({exc}): re-export or upload the file again"
        ) from None
    width, height = stored[::-1] if orientation in (5, 6, 7, 8) else stored
    notes: list[str] = []
    image = _reduced(image, max_side)
    image = ImageOps.exif_transpose(image) or image
    image = _to_rgb(image)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        notes.append(
            f"downscaled from {width}x{height} to {image.width}x{image.height} px for analysis"
        )
    return DecodedImage(
        rgb=np.asarray(image, dtype=np.uint8),
        width=width,
        height=height,
        format=fmt,
        notes=tuple(notes),
    )


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
