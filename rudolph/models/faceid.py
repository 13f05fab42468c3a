"""Face embeddings: a face aligned from its five landmarks, then dlib's ResNet (128-d).

Alignment: the similarity transform (rotation, uniform scale, shift; Umeyama's least squares)
that best takes MTCNN's five points (eye centres, nose tip, mouth corners) onto where dlib's
mean face has them in a 150x150 chip with 25% padding, i.e. the chip that dlib's
``get_face_chip_details(shape, size=150, padding=0.25)`` cuts (the crop dlib's face
recognition model was trained and evaluated on). Those positions come from dlib's 68-point
mean face shape (dlib/image_transforms/interpolation.h): the mean of each eye's six points,
point 30 (nose tip), points 48 and 54 (mouth corners).

Embedding: :mod:`rudolph.models.dlib_resnet` on onnxruntime. Two faces of one person are
usually less than :data:`SAME_PERSON_DISTANCE` apart (Euclidean), dlib's own threshold.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from rudolph.models.dlib_resnet import CHIP_SIZE, INPUT_NAME, OUTPUT_NAME
from rudolph.models.mtcnn import LANDMARK_NAMES
from rudolph.models.runtime import cpu_session

SAME_PERSON_DISTANCE = 0.6
CHIP_PADDING = 0.25

# dlib's mean face (68-point shape, points 17..67, as fractions of the face box).
_LEFT_EYE = np.array(
    [
        [0.121737, 0.216423],
        [0.187122, 0.178758],
        [0.265825, 0.179852],
        [0.334606, 0.231733],
        [0.260918, 0.245099],
        [0.182743, 0.244077],
    ]
)
_RIGHT_EYE = np.array(
    [
        [0.645647, 0.231733],
        [0.714428, 0.179852],
        [0.793132, 0.178758],
        [0.858516, 0.216423],
        [0.79751, 0.244077],
        [0.719335, 0.245099],
    ]
)
_MEAN_FACE = np.array([
    _LEFT_EYE.mean(axis=0),     # eyeLeft: the eye on the image's left
    _RIGHT_EYE.mean(axis=0),    # eyeRight
    [0.490127, 0.515625],       # nose: point 30, the tip
    [0.254149, 0.780233],       # mouthLeft: point 48
    [0.726104, 0.780233],       # mouthRight: point 54
])  # fmt: skip
#: Where the five landmarks (LANDMARK_NAMES' order) go in the chip, in its pixels.
CHIP_POINTS = (CHIP_PADDING + _MEAN_FACE) / (1 + 2 * CHIP_PADDING) * CHIP_SIZE


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform taking points ``src`` (N, 2) closest to ``dst`` (N, 2) in
    the least-squares sense (Umeyama, 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(covariance)
    sign = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(sign) @ vt
    variance = float((src_c**2).sum()) / len(src)
    if variance == 0:
        raise ValueError("the landmarks are all at one point")
    scale = float((sigma * sign).sum()) / variance
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def align(rgb: np.ndarray, landmarks: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """The 150x150 uint8 RGB chip of one face, from its landmarks in the image's pixels
    (MTCNN's continuous coordinates: pixel i spans [i, i + 1))."""
    points = np.array([landmarks[name] for name in LANDMARK_NAMES], dtype=np.float64) - 0.5
    matrix = similarity(points, CHIP_POINTS)
    scale = float(np.hypot(*matrix[:, 0]))
    image = np.ascontiguousarray(rgb)
    if scale < 0.5:
        # A large face: shrink the region around it by area averaging first (dlib goes down
        # an image pyramid for the same reason), so the warp below does not alias.
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [CHIP_SIZE, 0, 1], [0, CHIP_SIZE, 1],
                            [CHIP_SIZE, CHIP_SIZE, 1]], dtype=np.float64) @ inverse.T  # fmt: skip
        height, width = image.shape[:2]
        left = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width - 1))
        top = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height - 1))
        right = int(np.clip(np.ceil(corners[:, 0].max()) + 2, left + 1, width))
        bottom = int(np.clip(np.ceil(corners[:, 1].max()) + 2, top + 1, height))
        region = image[top:bottom, left:right]
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        image = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        # chip = M @ original; original = (shrunk + 0.5) * f - 0.5 + offset (pixel centres)
        fx, fy = region.shape[1] / size[0], region.shape[0] / size[1]
        to_original = np.array([[fx, 0, 0.5 * fx - 0.5 + left], [0, fy, 0.5 * fy - 0.5 + top],
                                [0, 0, 1]])  # fmt: skip
        matrix = matrix @ to_original
    return cv2.warpAffine(
        image,
        matrix,
        (CHIP_SIZE, CHIP_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


class FaceEmbedder:
    """dlib's face recognition ResNet over onnxruntime (CPU)."""

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        self.session = cpu_session(onnx_path, threads)

    def embed_chips(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """float32 (N, 128) embeddings of aligned uint8 150x150x3 RGB chips."""
        batch = np.asarray(chips, dtype=np.float32).reshape(-1, CHIP_SIZE, CHIP_SIZE, 3)
        if not len(batch):
            return np.empty((0, 128), dtype=np.float32)
        (out,) = self.session.run(
            [OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch.transpose(0, 3, 1, 2))}
        )
        return np.asarray(out, dtype=np.float32)

    def embed(
        self, rgb: np.ndarray, faces: Sequence[Mapping[str, tuple[float, float]]]
    ) -> np.ndarray:
        """float32 (N, 128): one embedding per face, given by its landmarks in pixels."""
        return self.embed_chips([align(rgb, landmarks) for landmarks in faces])


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two embeddings; below SAME_PERSON_DISTANCE: one person."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def encode(embedding: np.ndarray) -> str:
    """An embedding as the record stores it: base64 of 128 little-endian float16 (344 chars;
    float16 moves distances by ~1e-3, far below the 0.6 threshold)."""
    values = np.asarray(embedding, dtype="<f2").ravel()
    return base64.b64encode(values.tobytes()).decode("ascii")


def decode(text: str) -> np.ndarray:
    """The float32 embedding ``encode`` stored."""
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f2").astype(np.float32)
