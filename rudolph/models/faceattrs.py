"""Pose (roll, yaw, pitch) from MTCNN's five landmarks and Quality (brightness, sharpness) from
the face's pixels, in Rekognition's DetectFaces units and signs. No model: geometry and numpy.

Pose, in degrees, Rekognition's conventions (checked on a real DetectFaces response: its
landmarks give these signs, tests/test_faceattrs.py):

* **Roll**: the angle of the line from the eye on the image's left to the other one, clockwise
  positive as the image is seen (y down): the right-hand eye lower than the left-hand one is
  positive. Exact up to the landmarks' error.
* **Yaw**: positive when the nose sits right of the line through the middle of the eyes and the
  middle of the mouth (the face turned towards the image's right). ``asin`` of that offset
  over the eye distance times :data:`NOSE_DEPTH` (how far the nose tip stands out, in eye
  distances): a rough figure, ±10° against Rekognition.
* **Pitch**: positive when the face looks up: the nose tip rises towards the eyes, from where
  it sits on dlib's mean frontal face (:data:`NOSE_HEIGHT` of the way from the eyes to the
  mouth). Rougher still: five points say little of pitch.

Quality, 0-100 as Rekognition's:

* **Brightness**: the mean luma of the face's box, as a percentage of white.
* **Sharpness**: the variance of the Laplacian of the face resized to
  :data:`QUALITY_SIZE` square (so that a face's size does not change it, but a small face
  blown up is soft, as it is to a reader), mapped onto 0-100 by ``100 (1 - exp(-v / K))``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: Where the nose tip sits on a frontal face, as a fraction of the way from the eyes' middle
#: down to the mouth's: dlib's 68-point mean face (the eye centres, point 30, points 48/54).
NOSE_HEIGHT = (0.515625 - 0.230653) / (0.780233 - 0.230653)
#: How far the nose tip stands out of the eyes' and mouth's plane, in eye distances (generic
#: head model: ~27 mm out, ~65 mm between the eyes' centres).
NOSE_DEPTH = 0.41
#: The same depth over the eyes-to-mouth distance (~70 mm).
NOSE_DEPTH_VERTICAL = 0.38
QUALITY_SIZE = 96
#: Laplacian variance (on 0..255 grey at QUALITY_SIZE) at which Sharpness reaches 63.
SHARPNESS_SCALE = 150.0


@dataclass(frozen=True)
class Pose:
    roll: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Quality:
    brightness: float
    sharpness: float


def _asin_degrees(value: float) -> float:
    return math.degrees(math.asin(max(-1.0, min(1.0, value))))


def pose(landmarks: Mapping[str, tuple[float, float]]) -> Pose:
    """The pose of a face from its five landmarks in pixels (eyeLeft, eyeRight, nose,
    mouthLeft, mouthRight: MTCNN's names, Rekognition's)."""
    left, right, nose, mouth_left, mouth_right = (
        np.asarray(landmarks[name], dtype=np.float64)
        for name in ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
    )
    across = right - left
    roll = math.degrees(math.atan2(across[1], across[0]))
    eye_distance = float(np.hypot(*across))
    # Into the face's frame: eyes' middle at the origin, the eye line along +x, y down.
    cos, sin = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    upright = np.array([[cos, sin], [-sin, cos]])
    middle = (left + right) / 2
    nose_at = upright @ (nose - middle)
    mouth_at = upright @ ((mouth_left + mouth_right) / 2 - middle)
    if eye_distance < 1e-6 or mouth_at[1] < 1e-6:  # degenerate (or upside down) landmarks
        return Pose(roll=roll, yaw=0.0, pitch=0.0)
    # the midline, from the eyes' middle to the mouth's, at the nose's height
    midline_x = mouth_at[0] * nose_at[1] / mouth_at[1]
    yaw = _asin_degrees((nose_at[0] - midline_x) / (NOSE_DEPTH * eye_distance))
    height = nose_at[1] / mouth_at[1]
    pitch = _asin_degrees((NOSE_HEIGHT - height) / NOSE_DEPTH_VERTICAL)
    return Pose(roll=roll, yaw=yaw, pitch=pitch)


def quality(grey: np.ndarray, box: Sequence[float]) -> Quality:
    """Brightness and sharpness of the face in ``box`` (left, top, width, height in pixels) of
    a uint8 grey image; the part of the box inside the image."""
    height, width = grey.shape[:2]
    left, top, w, h = (float(v) for v in box)
    x0, y0 = max(0, math.floor(left)), max(0, math.floor(top))
    x1, y1 = min(width, math.ceil(left + w)), min(height, math.ceil(top + h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return Quality(brightness=0.0, sharpness=0.0)
    face = grey[y0:y1, x0:x1]
    brightness = float(face.mean()) / 255 * 100
    shrinking = (x1 - x0) > QUALITY_SIZE
    resized = cv2.resize(
        face,
        (QUALITY_SIZE, QUALITY_SIZE),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    variance = float(cv2.Laplacian(resized.astype(np.float32), cv2.CV_32F).var())
    sharpness = 100 * (1 - math.exp(-variance / SHARPNESS_SCALE))
    return Quality(brightness=brightness, sharpness=sharpness)
