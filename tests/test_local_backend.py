"""The local backend's plumbing: models load once, and results map to the record's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from rudolph.analysis import analyze
from rudolph.backends import get_analyzer
from rudolph.backends.local import LocalAnalyzer, text_detections
from rudolph.enrich import derived_labels
from rudolph.models import mtcnn, ocr
from rudolph.models.ocr import OcrLine, OcrWord
from rudolph.record import Box, Face, Label, TextDetection
from rudolph.settings import Settings
from rudolph.source import ImageInput
from tests.photos import PHOTOS


def test_models_load_once_per_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built: list[str] = []
    for module, name in ((mtcnn, "MTCNN"), (ocr, "TextReader")):
        original = getattr(module, name)

        class Counting(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args: object, _name: str = name, **kwargs: object) -> None:
                built.append(_name)
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(f"rudolph.backends.local.{name}", Counting)
    settings = Settings(model_dir=tmp_path)  # a fresh settings object: a fresh analyzer
    analyzer = get_analyzer(settings)
    assert get_analyzer(settings) is analyzer
    for name in ("chelsea", "astronaut", "page"):
        record = analyze(ImageInput.from_path(PHOTOS[name]), analyzer, ("labels", "text", "faces"))
        assert record.status == "done"
    assert sorted(built) == ["MTCNN", "TextReader"]
    # The labels model was derived into RUDOLPH_MODEL_DIR on first use.
    assert (tmp_path / "efficientnet-lite0.onnx").stat().st_size > 10_000_000


def test_a_worker_for_one_feature_loads_only_that_model(tmp_path: Path) -> None:
    analyzer = LocalAnalyzer(Settings(model_dir=tmp_path))
    analyzer.load(("faces",))
    assert "detector" in vars(analyzer)
    assert not {"reader", "classifier"} & set(vars(analyzer))


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
    # Rekognition already says Person: no duplicate.
    again = derived_labels([Label(name="Person", confidence=98.0)], [], faces)
    assert [(label.name, label.confidence) for label in again] == [("Face", 99.5), ("Person", 98.0)]


def test_nothing_found_adds_nothing() -> None:
    assert derived_labels([], [], []) == []
