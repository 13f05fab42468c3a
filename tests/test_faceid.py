"""Face embeddings: dlib's ResNet read from its .dat and rebuilt in ONNX (proven against dlib
itself), faces aligned from MTCNN's landmarks, and the same person told from another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rudolph.models import dlib_resnet, faceid
from rudolph.models.mtcnn import LANDMARK_NAMES, MTCNN
from tests.photos import as_array, load

FIXTURE = Path(__file__).parent / "fixtures" / "faces" / "dlib_reference.npz"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> faceid.FaceEmbedder:
    """Converted here, from the installed .dat, so the tests cover the conversion itself."""
    path = tmp_path_factory.mktemp("dlib") / "dlib-face-resnet.onnx"
    dlib_resnet.build_onnx(dlib_resnet.default_dat_path(), path)
    return faceid.FaceEmbedder(path, threads=1)


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN(threads=1)


def test_the_onnx_model_computes_what_dlib_computes(embedder: faceid.FaceEmbedder) -> None:
    """Reference: dlib 20.0.1's compute_face_descriptor on three chips
    (scripts/dlib_face_reference.py)."""
    reference = np.load(FIXTURE)
    ours = embedder.embed_chips(reference["chips"])
    assert ours.shape == (3, 128)
    np.testing.assert_allclose(ours, reference["embeddings"], rtol=0, atol=2e-6)


def test_the_reader_refuses_what_is_not_the_network(tmp_path: Path) -> None:
    data = dlib_resnet.default_dat_path().read_bytes()
    with pytest.raises(dlib_resnet.DlibFormatError, match="truncated"):
        dlib_resnet.read_dat(data[: len(data) // 2])
    with pytest.raises(dlib_resnet.DlibFormatError, match="left after"):
        dlib_resnet.read_dat(data + b"\x00")
    with pytest.raises(dlib_resnet.DlibFormatError):
        dlib_resnet.read_dat(b"\x01\x01\x01\x0closs_mmod_\x00\x00")


def test_ensure_onnx_builds_once_and_then_reuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "models" / "face.onnx"
    assert dlib_resnet.ensure_onnx(path) == path
    built = path.stat().st_mtime_ns
    assert dlib_resnet.ensure_onnx(path) == path
    assert path.stat().st_mtime_ns == built


def test_alignment_puts_the_landmarks_where_dlibs_chip_has_them(detector: MTCNN) -> None:
    rgb = as_array(load("astronaut"))
    (face,) = detector.detect(rgb)
    src = np.array([face.landmarks[n] for n in LANDMARK_NAMES]) - 0.5
    matrix = faceid.similarity(src, faceid.CHIP_POINTS)
    mapped = src @ matrix[:, :2].T + matrix[:, 2]
    # A similarity cannot fit five points exactly; a face's own proportions stay.
    assert np.abs(mapped - faceid.CHIP_POINTS).max() < 8  # px of 150 (a smile: 6.2)
    chip = faceid.align(rgb, face.landmarks)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    # The transform of a known similarity is recovered exactly.
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = src @ (scale * rotation).T + shift
    np.testing.assert_allclose(
        faceid.similarity(src, moved), np.hstack([scale * rotation, shift[:, None]]), atol=1e-9
    )


def _variants() -> dict[str, Image.Image]:
    astronaut, hopper = load("astronaut"), load("grace_hopper")
    mirror = Image.Transpose.FLIP_LEFT_RIGHT
    return {
        "astronaut": astronaut,
        "astronaut mirrored": astronaut.transpose(mirror),
        "astronaut small": astronaut.resize((256, 256), Image.Resampling.BILINEAR),
        "astronaut turned 15°": astronaut.rotate(15, Image.Resampling.BICUBIC, expand=True),
        "hopper": hopper,
        "hopper mirrored": hopper.transpose(mirror),
        "hopper large": hopper.resize((hopper.width * 3, hopper.height * 3)),
    }


def test_the_same_person_is_near_and_another_far(
    detector: MTCNN, embedder: faceid.FaceEmbedder
) -> None:
    embeddings = {}
    for name, image in _variants().items():
        rgb = as_array(image)
        faces = detector.detect(rgb)
        assert len(faces) == 1, name
        (embeddings[name],) = embedder.embed(rgb, [faces[0].landmarks])
    same, different = [], []
    names = list(embeddings)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            d = faceid.distance(embeddings[a], embeddings[b])
            (same if a.split()[0] == b.split()[0] else different).append(d)
    # Measured: same person 0.09-0.26, different people 0.65-0.71.
    assert max(same) < 0.4 < 0.6 < min(different)


def test_the_stored_form_is_compact_and_close(embedder: faceid.FaceEmbedder) -> None:
    reference = np.load(FIXTURE)
    embeddings = reference["embeddings"]
    text = faceid.encode(embeddings[0])
    assert len(text) == 344 and text.isascii()
    back = faceid.decode(text)
    assert back.dtype == np.float32 and back.shape == (128,)
    assert faceid.distance(back, embeddings[0]) < 2e-3
    d_stored = faceid.distance(faceid.decode(faceid.encode(embeddings[1])), back)
    assert abs(d_stored - faceid.distance(embeddings[1], embeddings[0])) < 2e-3
