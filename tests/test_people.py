"""RUDOLPH_PEOPLE: face identity embeddings, opt-in. Off: none computed or stored. On: each
face carries one (compactly, at most 100 a record), through the table, never into the search
document."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rudolph.analysis import analyze
from rudolph.backends.local import FACE_EMBEDDING_MODEL, LocalAnalyzer
from rudolph.errors import ConfigurationError
from rudolph.index.documents import to_document
from rudolph.models import faceid
from rudolph.models.mtcnn import LANDMARK_NAMES, DetectedFace
from rudolph.record import (
    EMBEDDING_CHARS,
    MAX_EMBEDDED_FACES,
    Box,
    Face,
    Label,
    Landmark,
    Record,
    TextDetection,
    image_id,
)
from rudolph.settings import Settings
from rudolph.source import ImageInput
from rudolph.store import RecordStore, to_item
from tests.photos import encode, group_picture, load


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def _faces(analyzer: LocalAnalyzer, image: Image.Image) -> Record:
    return analyze(ImageInput.from_bytes(encode(image, "PNG")), analyzer, ("faces",))


def test_people_is_off_unless_set_on() -> None:
    assert Settings.from_env({}).people == "off"
    assert not Settings.from_env({}).people_on
    assert Settings.from_env({"RUDOLPH_PEOPLE": "on"}).people_on
    with pytest.raises(ConfigurationError, match="RUDOLPH_PEOPLE='yes'"):
        Settings.from_env({"RUDOLPH_PEOPLE": "yes"})


def test_off_computes_and_stores_no_embedding(tmp_path: Path) -> None:
    model_dir = tmp_path
    analyzer = LocalAnalyzer(Settings(model_dir=model_dir))
    analyzer.load(("faces",))
    record = _faces(analyzer, group_picture())
    assert len(record.faces) == 3
    assert all(face.embedding is None for face in record.faces)
    assert "embedding" not in record.model_dump_json()
    assert "embedding" not in json.dumps(to_item(record), default=str)
    assert "embedder" not in vars(analyzer), "the model is not even loaded"
    assert not (model_dir / FACE_EMBEDDING_MODEL).exists()
    assert "embeddings" not in analyzer.version("faces")


@pytest.fixture(scope="module")
def people(model_dir: Path) -> LocalAnalyzer:
    analyzer = LocalAnalyzer(Settings(model_dir=model_dir, people="on", threads=1))
    analyzer.load(("faces",))
    assert "embedder" in vars(analyzer)
    return analyzer


def test_on_gives_every_face_its_embedding(people: LocalAnalyzer) -> None:
    # The astronaut, Grace Hopper, the astronaut mirrored (tests/photos.py).
    record = _faces(people, group_picture())
    assert "embeddings: dlib face resnet v1" in people.version("faces")
    by_left = sorted(record.faces, key=lambda face: face.box.left)
    vectors = []
    for face in by_left:
        assert face.embedding is not None and len(face.embedding) == EMBEDDING_CHARS
        vectors.append(faceid.decode(face.embedding))
    astronaut, hopper, mirrored = vectors
    assert faceid.distance(astronaut, mirrored) < faceid.SAME_PERSON_DISTANCE
    assert faceid.distance(astronaut, hopper) > faceid.SAME_PERSON_DISTANCE
    assert faceid.distance(hopper, mirrored) > faceid.SAME_PERSON_DISTANCE
    # The same person in another picture (alone, larger) is near too.
    (alone,) = _faces(people, load("grace_hopper")).faces
    assert alone.embedding is not None
    assert faceid.distance(faceid.decode(alone.embedding), hopper) < 0.4


class _Crowd:
    """A detector that finds the astronaut's face `count` times (a crowd, for the bound)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        points = {
            "eyeLeft": (218.0, 115.0),
            "eyeRight": (257.0, 115.0),
            "nose": (238.0, 137.0),
            "mouthLeft": (220.0, 156.0),
            "mouthRight": (256.0, 156.0),
        }
        return [
            DetectedFace(confidence=1 - i / 1000, box=(190.0, 80.0, 90.0, 110.0), landmarks=points)
            for i in range(self.count)
        ]


def test_at_most_100_faces_carry_an_embedding_the_most_confident(model_dir: Path) -> None:
    analyzer = LocalAnalyzer(Settings(model_dir=model_dir, people="on", threads=1))
    vars(analyzer)["detector"] = _Crowd(MAX_EMBEDDED_FACES + 20)
    record = _faces(analyzer, load("astronaut"))
    assert len(record.faces) == MAX_EMBEDDED_FACES + 20
    carrying = [face.embedding is not None for face in record.faces]
    assert carrying == [True] * MAX_EMBEDDED_FACES + [False] * 20
    with pytest.raises(ValueError, match="at most 100"):
        Record(image_id="x", faces=[record.faces[0]] * (MAX_EMBEDDED_FACES + 1))


def _big_record(embedding: str) -> Record:
    """As large as a record gets with faces: 100 embedded faces, 50 more, 20 labels, 200 OCR
    entries."""
    box = Box(left=0.123456789, top=0.234567891, width=0.0345678912, height=0.0456789123)
    landmarks = [Landmark(type=n, x=0.1234567891, y=0.2345678912) for n in LANDMARK_NAMES]
    faces = [
        Face(
            confidence=99.12345678,
            box=box,
            landmarks=landmarks,
            embedding=embedding if i < MAX_EMBEDDED_FACES else None,
        )
        for i in range(MAX_EMBEDDED_FACES + 50)
    ]
    return Record(
        image_id=image_id("b", "crowd.jpg"),
        bucket="b",
        key="crowd.jpg",
        status="done",
        labels=[Label(name=f"Label {i}", confidence=50.5, parents=["A", "B"]) for i in range(20)],
        text=[
            TextDetection(text="SOME WORDS", type="LINE", confidence=90.1, id=i, box=box)
            for i in range(200)
        ],
        faces=faces,
        etag="e1",
        sequencer="01",
    )


def test_embeddings_round_trip_through_the_table_and_stay_small(moto_url: str) -> None:
    vector = np.random.default_rng(0).normal(0, 0.1, 128)
    record = _big_record(faceid.encode(vector))
    item = to_item(record)
    # DynamoDB's limit is 400 KB an item; JSON text over-counts its numbers, so this bounds it.
    size = len(json.dumps(item, default=str).encode())
    assert size < 200_000, size
    embeddings_size = MAX_EMBEDDED_FACES * (EMBEDDING_CHARS + len("embedding"))
    assert embeddings_size < 36_000

    store = RecordStore(Settings(aws_endpoint_url=moto_url, table=f"t-{uuid.uuid4().hex[:8]}"))
    store.ensure()
    assert store.put_final(record, "01") is not None
    back = store.get(record.image_id)
    assert back is not None
    assert [face.embedding for face in back.faces] == [face.embedding for face in record.faces]
    assert faceid.distance(faceid.decode(back.faces[0].embedding or ""), vector) < 2e-3


def test_embeddings_never_go_into_the_search_document() -> None:
    embedding = faceid.encode(np.ones(128))
    document = to_document(_big_record(embedding))
    text = json.dumps(document, default=str)
    assert "embedding" not in text and embedding[:40] not in text
    assert document["face_count"] == MAX_EMBEDDED_FACES + 50
