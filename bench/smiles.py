"""How well the local backend tells a smile (and what it calls the rest), on real faces.

    .venv/bin/python bench/smiles.py

Two sets, both real photographs shipped in PyPI packages (tests/photos.py):

* the portraits of tests/photos.py: the astronaut (smiling), Grace Hopper and the cameraman
  (not), each as it is and mirrored, found by MTCNN as the backend finds them;
* scikit-image's ``lfw_subset``: the first 100 of its arrays are faces from Labeled Faces in
  the Wild, 25x25 grey, cropped tight. LFW has no expression labels: ``SMILING`` and
  ``NOT_SMILING`` below were labelled by eye (2026-12-02, on the faces shown 3x), and the 24
  faces that were not clearly one or the other are left out. At 25 px these are much smaller
  than the faces of a photo, so they are the harder test.

Prints, per set, the smile accuracy, the confusion (said/truth), and how often each emotion is
the likeliest one (the other emotions have no truth to compare with here).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import skimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rudolph.backends.local import EXPRESSION_MODEL  # noqa: E402
from rudolph.models import emotions  # noqa: E402
from rudolph.models.mtcnn import MTCNN  # noqa: E402
from rudolph.settings import get_settings  # noqa: E402
from tests.photos import portrait  # noqa: E402

SMILING = (
    1, 2, 11, 13, 18, 19, 21, 22, 23, 27, 31, 36, 37, 38, 45, 46,
    50, 52, 53, 69, 74, 75, 79, 81, 82, 84, 85, 91, 93, 94, 96,
)  # fmt: skip
NOT_SMILING = (
    0, 3, 4, 5, 12, 14, 16, 17, 20, 24, 25, 28, 29, 30, 32, 33, 35, 39, 40, 42, 44, 49,
    51, 54, 55, 56, 57, 58, 60, 62, 65, 66, 67, 71, 72, 76, 77, 78, 80, 83, 86, 87, 92, 97, 98,
)  # fmt: skip
PORTRAITS = {"astronaut": True, "grace_hopper": False, "camera": False}


def report(name: str, truth: list[bool], said: list[emotions.Expression]) -> None:
    smiles = [expression.smile[0] for expression in said]
    right = sum(s == t for s, t in zip(smiles, truth, strict=True))
    confusion = Counter(zip(smiles, truth, strict=True))
    print(f"{name}: smile right {right}/{len(truth)} ({100 * right / len(truth):.0f}%)")
    print(
        f"  said smiling: {confusion[True, True]} smiling, {confusion[True, False]} not; "
        f"said not: {confusion[False, False]} not, {confusion[False, True]} smiling"
    )
    for smiling in (True, False):
        top = Counter(e.emotions()[0][0] for e, t in zip(said, truth, strict=True) if t == smiling)
        print(f"  likeliest emotion, {'smiling' if smiling else 'not smiling'}: {dict(top)}")


def main() -> None:
    cv2.setNumThreads(1)
    path = emotions.ensure_onnx(get_settings().model_dir / EXPRESSION_MODEL)
    classifier = emotions.ExpressionClassifier(path, threads=1)

    detector = MTCNN(threads=1)
    truth, said = [], []
    for name, smiling in PORTRAITS.items():
        for mirrored in (False, True):
            rgb = portrait(name, mirrored)
            (face,) = detector.detect(rgb)
            said += classifier.classify(emotions.grey(rgb), [face.box])
            truth.append(smiling)
    report("portraits (tests/photos.py, as is and mirrored)", truth, said)

    faces = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")
    truth, said = [], []
    for index in (*SMILING, *NOT_SMILING):
        grey = np.round(faces[index] * 255).astype(np.uint8)
        # the crop is the face: a box that, widened as fer widens it, is the whole crop
        inner = 25 / (1 + 2 * emotions.OFFSET)
        margin = (25 - inner) / 2
        said += classifier.classify(grey, [(margin, margin, inner, inner)])
        truth.append(index in SMILING)
    report("lfw_subset, 25x25 (labelled by eye)", truth, said)


if __name__ == "__main__":
    main()
