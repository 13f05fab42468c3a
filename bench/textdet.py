"""The 8-bit text detector against the float one it is made from: speed, and the words read.

    .venv/bin/python bench/textdet.py

Speed: the detector alone on a 640x480 photo, one core, one thread (CPU ms, median of 10).
Words: TextReader with each detector over pictures the detector was not calibrated on:
- real photos (tests/photos.py) at their size, and at 640x480 as JPEG quality 70;
- signs pasted on photos (DejaVu Sans Bold, not the calibration font), letters evenly spaced
  or not, at several sizes and places; tight crops of one word;
- lines of DejaVu text in several sizes, dark on light and light on dark, rotated a little and
  saved as JPEG quality 60.
It prints word recall against what was written (where known) for both detectors, and how many
of the float detector's words the 8-bit one also reads.
"""

from __future__ import annotations

import io
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from rudolph.backends.local import TEXT_DETECTOR_MODEL  # noqa: E402
from rudolph.models import textdet  # noqa: E402
from rudolph.models.ocr import TextReader  # noqa: E402
from rudolph.settings import Settings  # noqa: E402
from tests.photos import FONT, PHOTOS, load, sign_picture, word_crop  # noqa: E402

SIGNS = [
    ("china", "NO PARKING", (0.1, 0.6), 0.0),
    ("china", "NO PARKING", (0.1, 0.6), 0.5),
    ("coffee", "OPEN 7 DAYS", (0.05, 0.1), 0.0),
    ("motorcycle", "NDV 9IF", (0.55, 0.75), 0.0),
    ("chelsea", "LOST CAT", (0.2, 0.2), 0.3),
    ("flower", "KEEP OFF THE GRASS", (0.05, 0.8), 0.0),
    ("rocket", "LAUNCH PAD 39A", (0.1, 0.05), 0.2),
    ("astronaut", "EXIT", (0.6, 0.3), 0.0),
]
CROPS = ["PARKING", "EXIT", "STOP", "Bakery", "4711"]
LINES = [
    "Platform 9 departures delayed",
    "Fresh bread daily from 7am",
    "Authorised vehicles only",
    "Emergency exit keep clear",
]


def _words(text: str) -> set[str]:
    return {w for w in (re.sub(r"^\W+|\W+$", "", t).lower() for t in text.split()) if w}


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _text_card(line: str, size: int, dark_on_light: bool, angle: float) -> Image.Image:
    ink, paper = (
        ((25, 25, 25), (240, 236, 228)) if dark_on_light else ((245, 245, 245), (30, 50, 80))
    )
    font = ImageFont.truetype(str(FONT), size=size)
    width = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(line, font=font)) + 2 * size
    image = Image.new("RGB", (max(width, 320), size * 4), paper)
    ImageDraw.Draw(image).text((size, size), line, fill=ink, font=font)
    return _jpeg(image.rotate(angle, expand=True, fillcolor=paper), 60)


def cases() -> list[tuple[str, Image.Image, set[str] | None]]:
    """(name, picture, the words written on it, None where nobody listed them)."""
    made: list[tuple[str, Image.Image, set[str] | None]] = []
    for name in PHOTOS:
        made.append((name, load(name).convert("RGB"), None))
        made.append((f"{name}-640", _jpeg(load(name).resize((640, 480)), 70), None))
    for base, words, where, tracking in SIGNS:
        made.append(
            (f"sign {words!r} on {base}", sign_picture(base, words, where, tracking), _words(words))
        )
    for word in CROPS:
        made.append((f"crop {word}", word_crop(word), _words(word)))
    for i, line in enumerate(LINES):
        for size in (14, 22, 36, 56):
            picture = _text_card(line, size, i % 2 == 0, angle=(-4, 0, 3, 6)[i])
            made.append((f"line {size}px {line!r}", picture, _words(line)))
    return made


def detector_ms(path: Path) -> float:
    """Median CPU ms of the detector alone on a 640x480 input, one thread."""
    from rudolph.models.runtime import cpu_session

    session = cpu_session(path, threads=1)
    name = session.get_inputs()[0].name
    rgb = np.asarray(load("motorcycle").resize((640, 480)).convert("RGB"))
    tensor = textdet._to_input(np.ascontiguousarray(rgb[:, :, ::-1]))
    session.run(None, {name: tensor})
    times = []
    for _ in range(10):
        started = time.process_time()
        session.run(None, {name: tensor})
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    quantized = textdet.ensure_onnx(Settings().model_dir / TEXT_DETECTOR_MODEL)
    floating = textdet.source_path()
    print(
        f"detector alone, 640x480, one thread: float {detector_ms(floating):.0f} ms CPU, "
        f"8-bit {detector_ms(quantized):.0f} ms CPU"
    )

    readers = {"float": TextReader(threads=1), "8-bit": TextReader(threads=1, detector=quantized)}
    written = {k: [0, 0] for k in readers}  # words read, words written
    agree = [0, 0]  # float's words the 8-bit detector also read, float's words
    for name, picture, truth in cases():
        rgb = np.asarray(picture)
        read = {
            k: set().union(*(_words(w.text) for line in r.read(rgb) for w in line.words))
            for k, r in readers.items()
        }
        agree[0] += len(read["float"] & read["8-bit"])
        agree[1] += len(read["float"])
        lost = sorted(read["float"] - read["8-bit"])
        gained = sorted(read["8-bit"] - read["float"])
        if truth:
            for k in readers:
                written[k][0] += len(truth & read[k])
                written[k][1] += len(truth)
        if lost or gained or (truth and truth - read["8-bit"]):
            missing = sorted(truth - read["8-bit"]) if truth else []
            print(f"  {name}: 8-bit lost {lost} gained {gained} missing {missing}")
    for k, (hit, total) in written.items():
        print(f"{k:6s} word recall on written text: {hit}/{total} = {hit / total:.1%}")
    print(
        f"8-bit reads {agree[0]}/{agree[1]} = {agree[0] / max(1, agree[1]):.1%} "
        "of the float detector's words"
    )


if __name__ == "__main__":
    main()
