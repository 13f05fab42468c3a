"""The product end to end, through real processes: an upload to the bucket becomes a DynamoDB
item and a search hit (S3 -> SQS -> `rudolph listen` -> `celery worker` -> DynamoDB +
OpenSearch), with moto's server, the OpenSearch-compatible server and Redis."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rudolph import aws
from tests.fleet import RUDOLPH, Fleet, fleet
from tests.photos import encode, load, sign_picture
from tests.rekognition_standin import rekognition_standin, url

CAT = "cats/chelsea the cat.jpg"
COFFEE = "a+b/coffee+cup.png"
ASTRONAUT = "ünïcödé/宇航员 astronaut.jpg"
SIGN = "deep/nested/prefix/no parking.jpg"
CORRUPT = "broken/half a photo.jpg"
NOTES = "docs/notes.txt"


@pytest.fixture(scope="module")
def local_fleet(moto_url: str, opensearch_url: str, redis_url: str) -> Iterator[Fleet]:
    with fleet(moto_url, opensearch_url, redis_url) as running:
        yield running


@pytest.fixture(scope="module")
def uploaded(local_fleet: Fleet) -> Fleet:
    jpeg = encode(load("chelsea"), "JPEG")
    local_fleet.upload(CAT, jpeg, Metadata={"content-id": "cms-1234"})
    local_fleet.upload(COFFEE, encode(load("coffee"), "PNG"))
    local_fleet.upload(ASTRONAUT, encode(load("astronaut"), "JPEG"))
    local_fleet.upload(SIGN, encode(sign_picture("china", "NO PARKING"), "JPEG", quality=92))
    local_fleet.upload(CORRUPT, jpeg[: len(jpeg) // 3])
    local_fleet.upload(NOTES, b"remember the milk", ContentType="text/plain")
    return local_fleet


def test_every_image_becomes_a_record(uploaded: Fleet) -> None:
    cat = uploaded.record(CAT)
    assert cat.status == "done", cat.errors
    assert (cat.bucket, cat.key, cat.width, cat.height) == (uploaded.settings.bucket, CAT, 451, 300)
    assert "Cat" in [label.name for label in cat.labels]
    assert cat.metadata == {"content-id": "cms-1234"}
    assert cat.content_type == "binary/octet-stream" or cat.content_type.startswith("image/")
    assert cat.etag and cat.size and cat.event_time and cat.analyzer
    assert cat.analyzer.backend == "local"
    assert set(cat.analyzer.versions) == {"labels", "text", "faces"}

    astronaut = uploaded.record(ASTRONAUT)
    assert len(astronaut.faces) == 1
    assert "Person" in [label.name for label in astronaut.labels]
    sign = uploaded.record(SIGN)
    assert "NO PARKING" in [t.text for t in sign.text if t.type == "LINE"]
    assert uploaded.record(COFFEE).status == "done"


def test_floats_are_stored_as_dynamodb_numbers(uploaded: Fleet) -> None:
    item = aws.client("dynamodb", uploaded.settings).get_item(
        TableName=uploaded.settings.table, Key={"image_id": {"S": uploaded.image_id(CAT)}}
    )["Item"]
    first_label = item["labels"]["L"][0]["M"]
    assert set(first_label["confidence"]) == {"N"}


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("cat", CAT),
        ("Cats", CAT),
        ("coffee", COFFEE),
        ("person", ASTRONAUT),
        ("no parking", SIGN),
        ("parking", SIGN),
    ],
)
def test_every_image_is_a_search_hit(uploaded: Fleet, query: str, key: str) -> None:
    uploaded.record(key)
    hits = uploaded.index.search(query, limit=3).hits
    assert hits and hits[0].key == key, [(h.key, h.matched) for h in hits]
    assert hits[0].matched


def test_a_corrupt_image_becomes_a_failed_record_with_a_clear_error(uploaded: Fleet) -> None:
    record = uploaded.record(CORRUPT)
    assert record.status == "failed"
    assert set(record.errors) == {"labels", "text", "faces"}
    for message in record.errors.values():
        assert message.startswith("UnreadableImage: the JPEG data is truncated or corrupt")


def test_a_text_file_is_skipped(uploaded: Fleet) -> None:
    uploaded.record(CAT)
    uploaded.idle()
    assert uploaded.store.get(uploaded.image_id(NOTES)) is None
    assert "docs/notes.txt: not an image" in (uploaded.group.log_dir / "listener.log").read_text()


def test_the_same_key_twice_leaves_one_item_and_one_document(uploaded: Fleet) -> None:
    key = "twice/chelsea.jpg"
    photo = encode(load("chelsea"), "JPEG")
    uploaded.upload(key, photo)
    uploaded.upload(key, photo)
    uploaded.record(key)
    uploaded.idle()
    assert uploaded.documents_for(key) == 1
    assert uploaded.items_for(key) == 1


def test_cli_search_and_show(uploaded: Fleet) -> None:
    uploaded.record(CAT)
    env = {**os.environ, **uploaded.env}
    result = subprocess.run(
        [RUDOLPH, "search", "cat", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    hits = json.loads(result.stdout)["hits"]
    assert hits[0]["key"] == CAT and hits[0]["matched"]
    shown = subprocess.run(
        [RUDOLPH, "show", f"s3://{uploaded.settings.bucket}/{CAT}", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(shown.stdout)["image_id"] == hits[0]["image_id"]


# -- the backend switch is one setting ------------------------------------------------------


@pytest.fixture(scope="module")
def faces_fixture(fixtures_dir: Path) -> dict:
    return json.loads(
        (fixtures_dir / "rekognition" / "detect_faces_three_people_2018.json").read_text()
    )


def test_the_rekognition_backend_runs_through_the_same_fleet(
    moto_url: str, opensearch_url: str, redis_url: str, faces_fixture: dict
) -> None:
    # moto's server answers DetectLabels and DetectText; DetectFaces (not in moto) comes from
    # the real recorded response, checked against botocore's model by the stand-in.
    with (
        rekognition_standin(moto_url, {"DetectFaces": faces_fixture}) as standin,
        fleet(
            moto_url,
            opensearch_url,
            redis_url,
            RUDOLPH_ANALYZER="rekognition",
            RUDOLPH_REKOGNITION_ENDPOINT_URL=url(standin),
        ) as running,
    ):
        running.upload("people/three.jpg", encode(load("astronaut"), "JPEG"))
        record = running.record("people/three.jpg")
        assert record.status == "done", record.errors
        assert record.analyzer and record.analyzer.backend == "rekognition"
        assert len(record.faces) == 3
        assert "Mobile Phone" in [label.name for label in record.labels]  # moto's canned label
        assert "Person" in [label.name for label in record.labels]  # derived from the faces
        assert any(t.type == "WORD" for t in record.text)
        assert sorted(set(standin.calls)) == ["DetectFaces", "DetectLabels", "DetectText"]
        assert running.index.search("mobile phone").hits[0].key == "people/three.jpg"
