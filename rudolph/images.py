"""Turn image bytes as they come into upright 8-bit RGB pixels, or a clear ImageError.

Accepts JPEG (including CMYK), PNG, WebP, TIFF, BMP and GIF (first frame); grayscale, palette,
alpha and 16-bit images; applies EXIF orientation. Large images are decoded at reduced size
(JPEG draft mode) and downscaled, because no model here gains from more than a few megapixels.
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

MIN_SIDE = 32
# Decompression-bomb guard: beyond this many pixels decoding alone could exhaust a worker.
MAX_PIXELS = 250_000_000
# Longest side the local models look at; OCR and MTCNN work on downscaled copies anyway.
ANALYSIS_MAX_SIDE = 2048
ACCEPTED = "JPEG, PNG, WebP, TIFF, BMP or GIF"

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


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode, compositing transparency on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Stretch 16/32-bit data to the 8-bit range by its own extremes (a PNG with 12 bits
        # of data in 16-bit samples would otherwise come out nearly black).
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = Image.fromarray(((array - low) * scale).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image


def decode(data: bytes, max_side: int = ANALYSIS_MAX_SIDE) -> DecodedImage:
    """Decode, orient and downscale image bytes for analysis."""
    image = open_image(data)
    fmt = image.format or "unknown"
    orientation = image.getexif().get(0x0112, 1)
    swapped = orientation in (5, 6, 7, 8)
    width, height = (image.height, image.width) if swapped else image.size
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmallError(
            f"image is {width}x{height} px; rudolph needs at least {MIN_SIDE} px a side "
            "to find anything in it: upload a larger image"
        )
    notes: list[str] = []
    if fmt == "JPEG" and max(width, height) > 2 * max_side:
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster and smaller in memory.
        image.draft("RGB", (max_side, max_side))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.seek(0)  # first frame of an animation
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(
            f"the {fmt} data is truncated or corrupt ({exc}): re-export or upload the file again"
        ) from None
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
