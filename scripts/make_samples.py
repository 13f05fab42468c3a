"""Write the bundled sample photos (rudolph/data/samples/) from photos shipped in PyPI packages.

    .venv/bin/python scripts/make_samples.py

The demo uploads these; each keeps its source's licence (LICENSES.md beside them).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.photos import load, sign_picture  # noqa: E402

OUT = ROOT / "rudolph" / "data" / "samples"

SAMPLES = {
    "cat.jpg": (lambda: load("chelsea"), "scikit-image `chelsea.png`: CC0, Stefan van der Walt"),
    "coffee.jpg": (lambda: load("coffee"), "scikit-image `coffee.png`: CC0, Rachel Michetti"),
    "astronaut.jpg": (
        lambda: load("astronaut"),
        "scikit-image `astronaut.png`: Eileen Collins, NASA, public domain",
    ),
    "rocket.jpg": (lambda: load("rocket"), "scikit-image `rocket.jpg`: SpaceX, public domain"),
    "cameraman.jpg": (lambda: load("camera"), "scikit-image `camera.png`: CC0, Lav Varshney"),
    "grace hopper.jpg": (
        lambda: load("grace_hopper"),
        "matplotlib `grace_hopper.jpg`: US Navy photograph, public domain",
    ),
    "no parking.jpg": (
        lambda: sign_picture("china", "NO PARKING"),
        "scikit-learn `china.jpg` with a sign drawn on it: CC BY 2.0, danielbuechele on Flickr "
        "(https://www.flickr.com/photos/danielbuechele/6061409035)",
    ),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# Sample photos", "", "Made by `scripts/make_samples.py`. Sources and licences:", ""]
    for name, (make, licence) in SAMPLES.items():
        make().save(OUT / name, format="JPEG", quality=88, optimize=True)
        lines.append(f"- `{name}`: {licence}")
    (OUT / "LICENSES.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(SAMPLES)} samples to {OUT}")


if __name__ == "__main__":
    main()
