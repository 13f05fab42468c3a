"""The local backend's plumbing: models load once, and results map to the record's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from rudolph.analysis import analyze
from rudolph.backends import get_analyzer
from rudolph.backends.local import OBJECTS_MODEL, LocalAnalyzer, text_detections
from rudolph.enrich import derived_labels, merge_labels
from rudolph.models import mtcnn, nanodet, ocr
from rudolph.models.ocr import OcrLine, OcrWord
from rudolph.record import Box, Face, Instance, Label, TextDetection
from rudolph.settings import Settings
from rudolph.source import ImageInput
from rudolph.vocabulary import FEATURES
from tests.analyze_cli import analyze_json
from tests.photos import PHOTOS, encode, group_picture, person_and_cat_picture


def test_models_load_once_per_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built: list[str] = []
    for module, name in ((mtcnn, "MTCNN"), (ocr, "TextReader")):
        original = getattr(module, name)

        class Counting(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args: object, _name: str = name, **kwargs: object) -> None:
                built.append(_name)
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(f"rudolph.backends.local.{name}", Counting)
    # The object detector as setup built it: test_nanodet covers its conversion.
    (tmp_path / OBJECTS_MODEL).symlink_to(nanodet.ensure_onnx(Settings().model_dir / OBJECTS_MODEL))
    settings = Settings(model_dir=tmp_path)  # a fresh settings object: a fresh analyzer
    analyzer = get_analyzer(settings)
    assert get_analyzer(settings) is analyzer
    for name in ("chelsea", "astronaut", "page"):
        record = analyze(ImageInput.from_path(PHOTOS[name]), analyzer, FEATURES)
        assert record.status == "done"
    assert sorted(built) == ["MTCNN", "TextReader"]
    # The labels model was derived into RUDOLPH_MODEL_DIR on first use.
    assert (tmp_path / "efficientnet-lite0.onnx").stat().st_size > 10_000_000


def test_a_worker_for_one_feature_loads_only_that_model(tmp_path: Path) -> None:
    analyzer = LocalAnalyzer(Settings(model_dir=tmp_path))
    analyzer.load(("faces",))
    assert {"detector", "expressions"} <= set(vars(analyzer))
    assert not {"reader", "classifier"} & set(vars(analyzer))
    assert (tmp_path / "fer-emotion-mini-xception.onnx").is_file()


def test_faces_carry_smile_emotions_pose_and_quality_in_rekognitions_shape(
    tmp_path: Path,
) -> None:
    """The group picture: the astronaut (smiling), Grace Hopper (composed), the astronaut
    mirrored, left to right."""
    analyzer = LocalAnalyzer(Settings(model_dir=tmp_path, threads=1))
    image = ImageInput.from_bytes(encode(group_picture(), "PNG"))
    faces = sorted(analyzer.faces(image), key=lambda face: face.box.left)
    assert len(faces) == 3
    astronaut, _hopper, mirrored = faces
    assert [f.smile.value for f in faces if f.smile] == [True, False, True]
    assert [f.emotions[0].type for f in faces if f.emotions] == ["HAPPY", "CALM", "HAPPY"]
    for face in faces:
        assert face.emotions is not None and len(face.emotions) == 7
        assert face.pose is not None and face.quality is not None
        assert abs(face.pose.yaw) < 15 and abs(face.pose.roll) < 15
        assert 20 < face.quality.brightness < 90 and face.quality.sharpness > 50
        dumped = face.model_dump()
        assert set(dumped["smile"]) == {"value", "confidence"}
        assert set(dumped["pose"]) == {"roll", "yaw", "pitch"}
        assert set(dumped["quality"]) == {"brightness", "sharpness"}
        assert set(dumped["emotions"][0]) == {"type", "confidence"}
    assert astronaut.pose and mirrored.pose
    assert mirrored.pose.roll == pytest.approx(-astronaut.pose.roll, abs=3)


def test_text_lines_come_first_and_words_point_at_them() -> None:
    quad = ((10.0, 10.0), (90.0, 10.0), (90.0, 30.0), (10.0, 30.0))
    words = (OcrWord("NO", 0.99, quad), OcrWord("PARKING", 0.98, quad))
    lines = [OcrLine("NO PARKING", 0.97, quad, words), OcrLine("TOW ZONE", 0.9, quad, ())]
    detections = text_detections(lines, width=200, height=100)
    assert [(d.text, d.type, d.id, d.parent_id) for d in detections] == [
        ("NO PARKING", "LINE", 0, None),
        ("TOW ZONE", "LINE", 1, None),
        ("NO", "WORD", 2, 0),
        ("PARKING", "WORD", 3, 0),
    ]
    assert detections[0].confidence == pytest.approx(97.0)
    assert detections[0].box == Box(left=0.05, top=0.1, width=0.4, height=0.2)


def test_boxes_are_clipped_to_the_image() -> None:
    quad = ((-5.0, -5.0), (250.0, -5.0), (250.0, 50.0), (-5.0, 50.0))
    (line,) = text_detections([OcrLine("EDGE", 0.9, quad, ())], width=200, height=100)
    assert line.box == Box(left=0.0, top=0.0, width=1.0, height=0.5)


BOX = Box(left=0.1, top=0.1, width=0.2, height=0.2)


def test_people_and_text_become_labels_once() -> None:
    faces = [Face(confidence=99.5, box=BOX), Face(confidence=97.0, box=BOX)]
    text = [TextDetection(text="STOP", type="LINE", confidence=92.0, id=0, box=BOX)]
    labels = derived_labels([Label(name="Car", confidence=80.0)], text, faces)
    assert [(label.name, label.confidence) for label in labels] == [
        ("Face", 99.5),
        ("Person", 99.5),
        ("Text", 92.0),
        ("Car", 80.0),
    ]
    # The labels already say Person: no duplicate, and the best confidence of the two sources.
    again = derived_labels([Label(name="Person", confidence=98.0)], [], faces)
    assert [(label.name, label.confidence) for label in again] == [("Face", 99.5), ("Person", 99.5)]
    lower = derived_labels([Label(name="Person", confidence=99.9, aliases=["Human"])], [], faces)
    assert [(label.name, label.confidence) for label in lower] == [("Person", 99.9), ("Face", 99.5)]
    assert lower[0].aliases == ["Human"]


def test_nothing_found_adds_nothing() -> None:
    assert derived_labels([], [], []) == []


def test_analyze_json_boxes_the_person_and_the_animal(tmp_path: Path) -> None:
    """What a user runs: `rudolph analyze --json` on a photo of a person beside a cat."""
    picture = person_and_cat_picture()
    path = tmp_path / "person-and-cat.jpg"
    path.write_bytes(encode(picture, "JPEG", quality=92))
    (record,) = analyze_json([path], timeout=300)
    labels = {label["name"]: label for label in record["labels"]}
    (person,) = labels["Person"]["instances"]
    (cat,) = labels["Cat"]["instances"]
    # Boxes are ratios of the image: the person on the left part, the cat on the right.
    assert person["box"]["left"] + person["box"]["width"] < 0.45
    assert cat["box"]["left"] > 0.3 and cat["box"]["height"] > 0.7
    assert 45 <= cat["confidence"] <= labels["Cat"]["confidence"] <= 100
    # The cat's parents are labels too, each once.
    assert {"Feline", "Mammal", "Animal"} <= set(labels["Cat"]["parents"]) & set(labels)
    names = [label["name"] for label in record["labels"]]
    assert len(names) == len(set(names))


def test_sources_merge_into_one_label_with_the_best_confidence() -> None:
    box = Instance(confidence=70.0, box=BOX)
    classified = [Label(name="Dog", confidence=40.0, parents=["Canine", "Pet"])]
    detected = [
        Label(name="Dog", confidence=70.0, parents=["Pet", "Mammal"], instances=[box]),
        Label(name="Mammal", confidence=70.0),
    ]
    merged = merge_labels(classified, detected)
    assert [(label.name, label.confidence) for label in merged] == [("Dog", 70.0), ("Mammal", 70.0)]
    assert merged[0].parents == ["Canine", "Pet", "Mammal"]
    assert merged[0].instances == [box]


def _char(ch: str, left: float, width: float = 20.0) -> tuple[str, float, ocr.Quad]:
    return (ch, 0.9, ((left, 10.0), (left + width, 10.0), (left + width, 40.0), (left, 40.0)))


LINE = ((0.0, 10.0), (400.0, 10.0), (400.0, 40.0), (0.0, 40.0))  # 30 px high


def test_evenly_spaced_letters_split_where_the_gap_is_wide() -> None:
    # N O at a 40 px pitch, then a 70 px gap, then P A R K at 40 px: no space in the text.
    lefts = [0, 40, 110, 150, 190, 230]
    chars = [_char(ch, x) for ch, x in zip("NOPARK", lefts, strict=True)]
    words = ocr.split_words("NOPARK", chars, LINE)
    assert [w.text for w in words] == ["NO", "PARK"]
    assert words[1].quad[0] == (110.0, 10.0) and words[1].quad[2] == (250.0, 40.0)
    # The same letters tightly spaced stay one word, however wide a letter is.
    tight = [_char(ch, x, 28) for ch, x in zip("MWMW", [0, 25, 58, 83], strict=True)]
    assert [w.text for w in ocr.split_words("MWMW", tight, LINE)] == ["MWMW"]


def test_the_recognizers_spaces_split_words_too() -> None:
    chars = [_char(ch, 22.0 * i) for i, ch in enumerate("ABCD")]
    assert [w.text for w in ocr.split_words("AB CD", chars, LINE)] == ["AB", "CD"]
    # Characters that do not match the text: words by length along the line.
    words = ocr.split_words("AB CD", chars[:3], LINE)
    assert [w.text for w in words] == ["AB", "CD"]
    assert words[1].quad[0][0] == pytest.approx(240.0)


def test_analyze_prints_each_faces_attributes() -> None:
    """`rudolph analyze` and `rudolph show` print a record alike (cli._print_record)."""
    from click.testing import CliRunner

    from rudolph.cli import _face_line, main

    result = CliRunner().invoke(main, ["analyze", "--features", "faces", str(PHOTOS["astronaut"])])
    assert result.exit_code == 0, result.output
    (line,) = [row for row in result.stdout.splitlines() if "face 1" in row]
    assert "smiling 100%" in line and "happy 100%" in line
    assert "roll " in line and "degrees" in line and "sharpness " in line
    # a face some backend described with nothing but its confidence
    assert _face_line(Face(confidence=97.2, box=Box(left=0, top=0, width=1, height=1))) == "97%"
