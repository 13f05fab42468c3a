"""S3 event notifications as SQS delivers them, parsed into object references."""

from __future__ import annotations

import json

import pytest

from rudolph.errors import MalformedEventError
from rudolph.events import has_image_suffix, is_image_content_type, parse_message
from tests.s3events import s3_event


def _event(name: str, key: str, **obj: object) -> str:
    return s3_event("reindeer-dropzone", key, name, "2026-11-25T17:00:00.000Z",
                    size=58364, eTag='"abc123"', **obj)  # fmt: skip


def test_created_event_with_an_encoded_key() -> None:
    body = _event(
        "ObjectCreated:Put",
        "cars%2Fred+car+%2B+%C3%A9t%C3%A9.jpg",
        sequencer="0055AED6DCD90281E5",
        versionId="v1",
    )
    (event,) = parse_message(body)
    assert event.kind == "created" and event.name == "ObjectCreated:Put"
    ref = event.ref
    assert ref.key == "cars/red car + été.jpg"  # quote_plus decoded: '+' is a space
    assert (ref.bucket, ref.size, ref.etag, ref.version_id, ref.sequencer) == (
        "reindeer-dropzone",
        58364,
        "abc123",
        "v1",
        "0055AED6DCD90281E5",
    )
    assert ref.event_time == "2026-11-25T17:00:00.000Z"
    assert ref.uri == "s3://reindeer-dropzone/cars/red car + été.jpg"


def test_removed_event() -> None:
    (event,) = parse_message(_event("ObjectRemoved:Delete", "a.jpg"))
    assert event.kind == "removed"


def test_s3_test_event_is_nothing_to_do() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    assert parse_message(body) == []


def test_other_event_types_are_ignored() -> None:
    assert parse_message(_event("ObjectRestore:Completed", "a.jpg")) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("hello", "message body is not JSON"),
        ("[1, 2]", "not an object"),
        ('{"Type": "Notification", "Message": "..."}', "no 'Records' list"),
        (
            '{"Records": [{"eventName": "ObjectCreated:Put"}]}',
            "record 0 is not a well-formed S3 event",
        ),
    ],
)
def test_malformed_messages_say_what_is_wrong(body: str, message: str) -> None:
    with pytest.raises(MalformedEventError, match=message):
        parse_message(body)


def test_image_by_suffix_and_content_type() -> None:
    assert has_image_suffix("a/b/c.JPG") and has_image_suffix("x.webp")
    assert not has_image_suffix("notes.txt") and not has_image_suffix("README")
    assert is_image_content_type("image/png") and not is_image_content_type("text/plain")
    assert not is_image_content_type(None)
