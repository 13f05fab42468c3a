"""MTCNN face detector on real photos shipped with scikit-image and matplotlib."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rudolph.models.mtcnn import LANDMARK_NAMES, MAX_SIDE, MTCNN, DetectedFace
from tests.photos import MATPLOTLIB, SKIMAGE


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load(SKIMAGE / "astronaut.png")  # 512x512, face around x 180-265, y 60-175


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    return load(MATPLOTLIB / "grace_hopper.jpg")  # 512 wide, 600 high, face around (265, 220)


def check_face(face: DetectedFace, shape: tuple[int, ...]) -> None:
    """A plausible upright frontal face: confident, in the image, landmarks where they go."""
    height, width = shape[:2]
    left, top, w, h = face.box
    assert face.confidence >= 0.9
    assert left >= 0 and top >= 0 and w > 0 and h > 0
    assert left + w <= width and top + h <= height
    assert set(face.landmarks) == set(LANDMARK_NAMES)
    for x, y in face.landmarks.values():
        assert left <= x <= left + w and top <= y <= top + h
    marks = face.landmarks
    # Rekognition's eyeLeft/mouthLeft are on the image's left.
    assert marks["eyeLeft"][0] < marks["nose"][0] < marks["eyeRight"][0]
    assert marks["mouthLeft"][0] < marks["mouthRight"][0]
    assert max(marks["eyeLeft"][1], marks["eyeRight"][1]) < marks["nose"][1]
    assert marks["nose"][1] < min(marks["mouthLeft"][1], marks["mouthRight"][1])


def centre(face: DetectedFace) -> tuple[float, float]:
    left, top, w, h = face.box
    return left + w / 2, top + h / 2


def test_astronaut(detector: MTCNN, astronaut: np.ndarray) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    check_face(face, astronaut.shape)
    _, top, w, h = face.box
    assert top + h < astronaut.shape[0] / 2  # the face is in the upper half
    assert 200 < centre(face)[0] < 245 and 95 < centre(face)[1] < 140
    assert 70 < w < 110 and 90 < h < 140
    assert all(isinstance(v, float) for v in face.box)
    assert isinstance(face.confidence, float)


def test_grace_hopper(detector: MTCNN, grace_hopper: np.ndarray) -> None:
    faces = detector.detect(grace_hopper)
    assert len(faces) == 1
    check_face(faces[0], grace_hopper.shape)
    x, y = centre(faces[0])
    assert 230 < x < 300 and 180 < y < 260
    assert 140 < faces[0].box[2] < 220


def test_grayscale_portrait(detector: MTCNN) -> None:
    camera = np.asarray(Image.open(SKIMAGE / "camera.png").convert("L"))
    assert camera.ndim == 2  # HxW is accepted as well as HxWx3
    faces = detector.detect(camera)
    assert len(faces) == 1
    check_face(faces[0], camera.shape)
    x, y = centre(faces[0])
    assert 200 < x < 260 and 120 < y < 200


@pytest.mark.parametrize("path", ["chelsea.png", "coffee.png", "rocket.jpg"])
def test_no_faces(detector: MTCNN, path: str) -> None:
    assert detector.detect(load(SKIMAGE / path)) == []


def test_group(detector: MTCNN, astronaut: np.ndarray, grace_hopper: np.ndarray) -> None:
    # Astronaut, Grace Hopper and a mirrored astronaut side by side on a white canvas.
    panels = [astronaut, grace_hopper, astronaut[:, ::-1]]
    height = max(p.shape[0] for p in panels)
    canvas = np.full((height, sum(p.shape[1] for p in panels), 3), 255, dtype=np.uint8)
    offsets = np.cumsum([0] + [p.shape[1] for p in panels])
    for panel, x in zip(panels, offsets, strict=False):
        canvas[: panel.shape[0], x : x + panel.shape[1]] = panel

    faces = detector.detect(canvas)
    assert len(faces) == 3
    confidences = [face.confidence for face in faces]
    assert confidences == sorted(confidences, reverse=True)
    for face in faces:
        check_face(face, canvas.shape)
    # One face per panel, each near the middle of the panel's upper part.
    panel_of = sorted(int(np.searchsorted(offsets, centre(f)[0]) - 1) for f in faces)
    assert panel_of == [0, 1, 2]
    by_x = sorted(faces, key=lambda f: f.box[0])
    assert abs(centre(by_x[2])[0] - (canvas.shape[1] - centre(by_x[0])[0])) < 15  # mirror image


def test_large_image_is_mapped_back(detector: MTCNN, astronaut: np.ndarray) -> None:
    big = np.repeat(np.repeat(astronaut, 3, axis=0), 3, axis=1)  # 1536x1536, > MAX_SIDE
    assert max(big.shape) > MAX_SIDE
    [small_face] = detector.detect(astronaut)
    [big_face] = detector.detect(big)
    check_face(big_face, big.shape)
    for small, large in zip(small_face.box, big_face.box, strict=True):
        assert abs(large - 3 * small) < 12


def test_box_is_clipped_to_image(detector: MTCNN, astronaut: np.ndarray) -> None:
    cut = astronaut[90:]  # the top of the head is cut off
    [face] = detector.detect(cut)
    assert face.box[1] == 0.0
    assert face.box[1] + face.box[3] <= cut.shape[0]


def test_tiny_and_blank_images(detector: MTCNN) -> None:
    assert detector.detect(np.zeros((8, 8, 3), dtype=np.uint8)) == []
    assert detector.detect(np.full((300, 400, 3), 128, dtype=np.uint8)) == []


def test_rejects_non_rgb_uint8(detector: MTCNN) -> None:
    with pytest.raises(ValueError):
        detector.detect(np.zeros((64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        detector.detect(np.zeros((64, 64, 4), dtype=np.uint8))


def test_detected_face_is_frozen(detector: MTCNN, astronaut: np.ndarray) -> None:
    [face] = detector.detect(astronaut)
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.confidence = 0.5  # type: ignore[misc]


def test_one_thread(astronaut: np.ndarray) -> None:
    faces = MTCNN(threads=1).detect(astronaut)
    assert len(faces) == 1 and faces[0].confidence >= 0.9
