"""Real photographs that ship inside PyPI packages, and pictures made from them.

Sources and licences (kept with the packages; nothing is copied into this repo):
- scikit-image `skimage/data`: chelsea.png (cat, CC0, Stefan van der Walt), coffee.png (CC0,
  Rachel Michetti), astronaut.png (Eileen Collins, NASA, public domain), rocket.jpg (SpaceX,
  public domain), camera.png (CC0, Lav Varshney), motorcycle_left.png (Middlebury stereo
  dataset), clock_motion.png (public domain, Stefan van der Walt), page.png (scanned page),
  hubble_deep_field.jpg (NASA, public domain).
- matplotlib `mpl-data/sample_data`: grace_hopper.jpg (US Navy photo, public domain).
- scikit-learn `datasets/images`: china.jpg and flower.jpg (CC BY 2.0, danielbuechele and
  vultilion on Flickr, retrieved by Robert Layton; see that folder's README.txt).
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _package_dir(name: str) -> Path:
    """Where an installed package lives, found without importing it (scikit-learn and
    matplotlib take 2 s to import, and only their files are wanted)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


SKIMAGE = _package_dir("skimage") / "data"
MATPLOTLIB = _package_dir("matplotlib") / "mpl-data" / "sample_data"
SKLEARN = _package_dir("sklearn") / "datasets" / "images"
FONT = _package_dir("matplotlib") / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"

PHOTOS = {
    "chelsea": SKIMAGE / "chelsea.png",
    "coffee": SKIMAGE / "coffee.png",
    "astronaut": SKIMAGE / "astronaut.png",
    "rocket": SKIMAGE / "rocket.jpg",
    "camera": SKIMAGE / "camera.png",
    "motorcycle": SKIMAGE / "motorcycle_left.png",
    "clock": SKIMAGE / "clock_motion.png",
    "page": SKIMAGE / "page.png",
    "hubble": SKIMAGE / "hubble_deep_field.jpg",
    "grace_hopper": MATPLOTLIB / "grace_hopper.jpg",
    "china": SKLEARN / "china.jpg",
    "flower": SKLEARN / "flower.jpg",
}


def load(name: str) -> Image.Image:
    return Image.open(PHOTOS[name]).convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def side_by_side(parts: list[Image.Image], height: int = 400) -> Image.Image:
    """Photos scaled to one height, 10 px apart on white."""
    parts = [p.resize((round(p.width * height / p.height), height)) for p in parts]
    gaps = 10 * (len(parts) + 1)
    canvas = Image.new("RGB", (sum(p.width for p in parts) + gaps, height + 20), "white")
    x = 10
    for part in parts:
        canvas.paste(part, (x, 10))
        x += part.width + 10
    return canvas


def group_picture() -> Image.Image:
    """Three real portraits side by side: astronaut, Grace Hopper, mirrored astronaut."""
    flipped = load("astronaut").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return side_by_side([load("astronaut"), load("grace_hopper"), flipped])


def two_people() -> dict[str, tuple[str, Image.Image]]:
    """Photos of two real people (tests/test_persons.py), each under several guises: name ->
    (who, picture). Eileen Collins (skimage's astronaut) and Grace Hopper (matplotlib's),
    as they are, mirrored, scaled, turned and cropped around the face."""
    astronaut, hopper = load("astronaut"), load("grace_hopper")
    mirror = Image.Transpose.FLIP_LEFT_RIGHT
    return {
        "astronaut": ("collins", astronaut),
        "astronaut-mirrored": ("collins", astronaut.transpose(mirror)),
        "astronaut-small": ("collins", astronaut.resize((256, 256), Image.Resampling.BILINEAR)),
        "astronaut-turned": ("collins", astronaut.rotate(15, Image.Resampling.BICUBIC)),
        "astronaut-crop": ("collins", astronaut.crop((120, 10, 360, 260))),
        "hopper": ("hopper", hopper),
        "hopper-mirrored": ("hopper", hopper.transpose(mirror)),
        "hopper-large": ("hopper", hopper.resize((hopper.width * 2, hopper.height * 2))),
        "hopper-crop": ("hopper", hopper.crop((100, 40, 420, 380))),
    }


def person_and_cat_picture() -> Image.Image:
    """Grace Hopper and the cat Chelsea side by side: a person on the left, an animal right."""
    return side_by_side([load("grace_hopper"), load("chelsea")])


def sign_picture(
    base: str, words: str, where: tuple[float, float] = (0.1, 0.6), tracking: float = 0.0
) -> Image.Image:
    """A real photo with a white street sign carrying `words` pasted on it; `tracking` spaces
    the letters evenly apart, by that share of the font size after each (as on many signs)."""
    photo = load(base)
    font = ImageFont.truetype(str(FONT), size=max(18, photo.height // 14))
    draw = ImageDraw.Draw(photo)
    left, top = int(photo.width * where[0]), int(photo.height * where[1])
    places, x = [], float(left)
    for ch in words:
        places.append((x, ch))
        x += draw.textlength(ch, font=font) + tracking * font.size
    text_box = draw.textbbox((left, top), words, font=font)
    right = max(text_box[2], round(x - tracking * font.size))
    pad = font.size // 3
    draw.rectangle(
        (text_box[0] - pad, text_box[1] - pad, right + pad, text_box[3] + pad),
        fill="white",
        outline="black",
        width=3,
    )
    for x_ch, ch in places:
        draw.text((x_ch, top), ch, fill=(180, 0, 0), font=font)
    return photo


def word_crop(word: str, size: tuple[int, int] = (240, 100)) -> Image.Image:
    """A tight crop of one word on a sign in a real photo, the word filling the frame."""
    photo = sign_picture("china", word, where=(0.3, 0.4))
    font_size = max(18, photo.height // 14)
    box = ImageDraw.Draw(photo).textbbox(
        (int(photo.width * 0.3), int(photo.height * 0.4)),
        word,
        font=ImageFont.truetype(str(FONT), size=font_size),
    )
    margin = font_size // 6
    crop = photo.crop((box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin))
    return crop.resize(size, Image.Resampling.BICUBIC)


def exif_rotated_jpeg(image: Image.Image) -> bytes:
    """Pixels stored rotated, with EXIF Orientation=6 saying how to turn them upright."""
    stored = image.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def portrait(name: str, mirrored: bool = False) -> np.ndarray:
    """A photo as an RGB array, mirrored left to right if asked (a face with the opposite roll
    and yaw)."""
    image = load(name)
    if mirrored:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return as_array(image)
