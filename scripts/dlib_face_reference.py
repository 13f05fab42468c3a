"""Record the reference embeddings that tests/test_faceid.py checks the converted dlib ResNet
against: dlib itself, on face chips that rudolph aligned.

dlib is a heavy build and never a dependency of the project, so this runs once, by hand, with
dlib's prebuilt wheel in a scratch virtualenv outside the repo:

    python3 -m venv /tmp/dlibref && /tmp/dlibref/bin/pip install dlib-bin==20.0.1.post1 numpy
    .venv/bin/python scripts/dlib_face_reference.py chips /tmp/dlibref/chips.npz
    DAT=$(.venv/bin/python -c 'import rudolph.models.dlib_resnet as d; print(d.default_dat_path())')
    /tmp/dlibref/bin/python scripts/dlib_face_reference.py dlib /tmp/dlibref/chips.npz "$DAT" \
        tests/fixtures/faces/dlib_reference.npz

Recorded with dlib-bin 20.0.1.post1 on 2026-12-02: three 150x150 chips (the astronaut, Grace
Hopper, Grace Hopper mirrored; public-domain photos, see tests/photos.py) and dlib's
``compute_face_descriptor`` of each (float64).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FACES = ("astronaut", "grace_hopper", "grace_hopper_mirrored")


def save_chips(out: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from PIL import Image

    from rudolph.models.faceid import align
    from rudolph.models.mtcnn import MTCNN
    from tests.photos import as_array, load

    detector = MTCNN(threads=1)
    chips = []
    for name in FACES:
        image = load(name.removesuffix("_mirrored"))
        if name.endswith("_mirrored"):
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        rgb = as_array(image)
        (face,) = detector.detect(rgb)
        chips.append(align(rgb, face.landmarks))
    np.savez(out, names=np.array(FACES), chips=np.stack(chips))


def save_reference(chips_npz: str, dat: str, out: str) -> None:
    import dlib  # type: ignore[import-not-found]

    model = dlib.face_recognition_model_v1(dat)
    data = np.load(chips_npz)
    embeddings = np.array(
        [np.array(model.compute_face_descriptor(np.ascontiguousarray(c))) for c in data["chips"]]
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        names=data["names"],
        chips=data["chips"],
        embeddings=embeddings,
        dlib_version=np.array(dlib.__version__),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["chips"] and len(sys.argv) == 3:
        save_chips(sys.argv[2])
    elif sys.argv[1:2] == ["dlib"] and len(sys.argv) == 5:
        save_reference(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
