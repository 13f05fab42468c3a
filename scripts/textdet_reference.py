"""Record what the float text detector reads, the reference tests/test_textdet.py holds the
8-bit one to (rudolph.models.textdet quantizes rapidocr's float detector at setup).

    .venv/bin/python scripts/textdet_reference.py tests/fixtures/textdet/float_reference.json

Recorded with rapidocr 3.10.0 (PP-OCRv6 det/rec small) and onnxruntime 1.32.0 on 2026-12-02:
per picture, each line TextReader keeps with the float detector (its text and its four
corners in pixels).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pictures() -> dict[str, np.ndarray]:
    """Real photos with text, text pasted on photos, a tight crop: RGB arrays."""
    from tests.photos import as_array, load, sign_picture, word_crop

    return {
        "page": as_array(load("page")),
        "grace_hopper": as_array(load("grace_hopper")),
        "motorcycle": as_array(load("motorcycle")),
        "no_parking_spaced": as_array(sign_picture("china", "NO PARKING", tracking=0.5)),
        "plate": as_array(sign_picture("motorcycle", "NDV 9IF", where=(0.55, 0.75))),
        "open_7_days": as_array(sign_picture("coffee", "OPEN 7 DAYS", where=(0.05, 0.1))),
        "crop_parking": as_array(word_crop("PARKING")),
    }


def main(out: Path) -> None:
    from rudolph.models.ocr import TextReader

    reader = TextReader(threads=1)  # the wheel's float detector
    recorded = {
        name: [
            {"text": line.text, "quad": [list(p) for p in line.quad]} for line in reader.read(rgb)
        ]
        for name, rgb in pictures().items()
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"{sum(map(len, recorded.values()))} lines on {len(recorded)} pictures -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
