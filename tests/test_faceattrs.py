"""Pose from MTCNN's landmarks and Quality from the face's pixels, on real photos turned,
mirrored, blurred and darkened, and against the signs of a real Rekognition response."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rudolph.models import faceattrs
from rudolph.models.emotions import grey
from rudolph.models.mtcnn import MTCNN, DetectedFace
from tests.photos import as_array, portrait

REKOGNITION = Path(__file__).parent / "fixtures" / "rekognition"
PORTRAITS = ("astronaut", "grace_hopper", "camera")


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN(threads=1)


def _face(detector: MTCNN, rgb: np.ndarray) -> DetectedFace:
    faces = detector.detect(rgb)
    assert faces, "no face found"
    return faces[0]


def _image(name: str, turn: float = 0.0, mirrored: bool = False) -> np.ndarray:
    if not turn:
        return portrait(name, mirrored)
    # PIL turns counter-clockwise: the eye line then rises to the right, roll goes down
    image = Image.fromarray(portrait(name, mirrored))
    return as_array(image.rotate(turn, resample=Image.Resampling.BICUBIC, expand=True))


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("turn", [15.0, -15.0, 30.0])
def test_turning_the_photo_turns_the_roll_by_as_much(
    detector: MTCNN, name: str, turn: float
) -> None:
    upright = faceattrs.pose(_face(detector, _image(name)).landmarks)
    turned = faceattrs.pose(_face(detector, _image(name, turn=turn)).landmarks)
    assert turned.roll - upright.roll == pytest.approx(-turn, abs=6)


@pytest.mark.parametrize("name", PORTRAITS)
def test_a_mirrored_face_has_the_opposite_roll_and_yaw(detector: MTCNN, name: str) -> None:
    plain = faceattrs.pose(_face(detector, _image(name)).landmarks)
    mirrored = faceattrs.pose(_face(detector, _image(name, mirrored=True)).landmarks)
    assert mirrored.roll == pytest.approx(-plain.roll, abs=3)
    assert mirrored.yaw == pytest.approx(-plain.yaw, abs=10)


def test_frontal_faces_have_little_yaw_and_a_profile_much(detector: MTCNN) -> None:
    for name in ("astronaut", "grace_hopper"):  # both look at the camera
        assert abs(faceattrs.pose(_face(detector, _image(name)).landmarks).yaw) < 10
    # The cameraman is nearly in profile, looking towards the image's right: positive yaw in
    # Rekognition's convention (the nose right of the midline), negative when mirrored.
    assert faceattrs.pose(_face(detector, _image("camera")).landmarks).yaw > 45
    assert faceattrs.pose(_face(detector, _image("camera", mirrored=True)).landmarks).yaw < -45


def test_the_signs_are_rekognitions_on_its_own_landmarks() -> None:
    """A real DetectFaces response: its three faces' landmarks (ratios; the photo was ~3:2)
    through our geometry give Rekognition's signs of roll and yaw, and of pitch where it is
    clearly not level."""
    response = json.loads((REKOGNITION / "detect_faces_three_people_2018.json").read_text())
    for detail in response["FaceDetails"]:
        points = {m["Type"]: (m["X"] * 1500, m["Y"] * 1000) for m in detail["Landmarks"]}
        ours = faceattrs.pose(points)
        theirs = detail["Pose"]
        assert np.sign(ours.roll) == np.sign(theirs["Roll"])
        assert ours.roll == pytest.approx(theirs["Roll"], abs=7)
        assert np.sign(ours.yaw) == np.sign(theirs["Yaw"])
        if abs(theirs["Pitch"]) > 10:
            assert np.sign(ours.pitch) == np.sign(theirs["Pitch"])


def test_degenerate_landmarks_give_a_pose_not_an_error() -> None:
    same = dict.fromkeys(("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"), (5.0, 5.0))
    assert faceattrs.pose(same) == faceattrs.Pose(roll=0.0, yaw=0.0, pitch=0.0)


@pytest.mark.parametrize("name", PORTRAITS)
def test_blur_lowers_sharpness_and_darkness_brightness(detector: MTCNN, name: str) -> None:
    rgb = _image(name)
    box = _face(detector, rgb).box
    sharp = faceattrs.quality(grey(rgb), box)
    assert 0 <= sharp.brightness <= 100 and 0 <= sharp.sharpness <= 100
    assert sharp.sharpness > 60  # three sharp photographs
    blurred = [
        faceattrs.quality(grey(cv2.GaussianBlur(rgb, (0, 0), sigma)), box).sharpness
        for sigma in (1.5, 4.0)
    ]
    assert sharp.sharpness > blurred[0] > blurred[1]
    assert blurred[1] < 25
    dark = faceattrs.quality(grey((rgb * 0.4).astype(np.uint8)), box)
    assert dark.brightness == pytest.approx(sharp.brightness * 0.4, abs=1)
    white = faceattrs.quality(np.full_like(grey(rgb), 255), box)
    assert white == faceattrs.Quality(brightness=100.0, sharpness=0.0)


def test_a_box_outside_the_image_has_no_quality_rather_than_an_error() -> None:
    image = np.zeros((50, 50), dtype=np.uint8)
    assert faceattrs.quality(image, (60.0, 60.0, 20.0, 20.0)) == faceattrs.Quality(0.0, 0.0)
    partly = faceattrs.quality(np.full((50, 50), 128, np.uint8), (-10.0, -10.0, 30.0, 30.0))
    assert partly.brightness == pytest.approx(128 / 255 * 100)
