"""S3 object events as SQS delivers them by each route (direct, SNS, EventBridge), parsed into
object references."""

from __future__ import annotations

import json
import logging
from pathlib import Path

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
        ('{"Type": "Notification", "TopicArn": "t", "Message": "..."}', "Message is not JSON"),
        ('{"Type": "Notification", "Message": "[]"}', "Message is JSON but not an object"),
        ('{"Type": "Notification", "Message": "{\\"hello\\": 1}"}', "Message is not an S3 event"),
        ('{"hello": "world"}', "the message is not an S3 event notification"),
        ('{"Records": {"a": 1}}', "'Records' is not a list"),
        (
            '{"source": "aws.s3", "detail-type": "Object Created", "detail": {"object": {}}}',
            "EventBridge 'Object Created' event is not well-formed",
        ),
        (
            '{"source": "aws.s3", "detail-type": "Object Created", '
            '"detail": {"bucket": {"name": "b"}, "object": {"key": 7}}}',
            "EventBridge 'Object Created' event is not well-formed",
        ),
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


# -- the published example bodies of each route (tests/fixtures/events/README.md) -----------


def _fixture(fixtures_dir: Path, name: str) -> str:
    return (fixtures_dir / "events" / name).read_text()


def test_published_s3_notification(fixtures_dir: Path) -> None:
    (event,) = parse_message(_fixture(fixtures_dir, "s3-put.json"))
    assert (event.kind, event.name) == ("created", "ObjectCreated:Put")
    ref = event.ref
    assert (ref.bucket, ref.key, ref.size, ref.etag, ref.sequencer, ref.version_id) == (
        "example-bucket", "test/key", 1024, "0123456789abcdef0123456789abcdef",
        "0A1B2C3D4E5F678901", None,
    )  # fmt: skip
    assert ref.event_time == "1970-01-01T00:00:00.000Z"


def test_published_sns_envelope_is_the_same_event(fixtures_dir: Path) -> None:
    direct = parse_message(_fixture(fixtures_dir, "s3-put.json"))
    assert parse_message(_fixture(fixtures_dir, "sns-notification-s3-put.json")) == direct


def test_published_eventbridge_object_created(fixtures_dir: Path) -> None:
    (event,) = parse_message(_fixture(fixtures_dir, "eventbridge-object-created.json"))
    assert (event.kind, event.name) == ("created", "ObjectCreated:PutObject")
    ref = event.ref
    assert (ref.bucket, ref.key, ref.size, ref.etag, ref.version_id, ref.sequencer) == (
        "amzn-s3-demo-bucket1", "example-key", 5, "b1946ac92492d2347c6235b4d2611184",
        "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "617f08299329d189",
    )  # fmt: skip
    assert ref.event_time == "2021-11-12T00:00:00Z"


def test_published_eventbridge_object_deleted(fixtures_dir: Path) -> None:
    created = parse_message(_fixture(fixtures_dir, "eventbridge-object-created.json"))[0]
    (deleted,) = parse_message(_fixture(fixtures_dir, "eventbridge-object-deleted.json"))
    assert (deleted.kind, deleted.name) == ("removed", "ObjectRemoved:DeleteObject")
    assert (deleted.ref.key, deleted.ref.size) == ("example-key", None)
    assert deleted.ref.version_id == "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF"
    # Same ordering guarantee as S3 notifications: the later sequencer sorts after.
    assert deleted.ref.order > created.ref.order


@pytest.mark.parametrize("name", ["s3-test-event.json", "sns-subscription-confirmation.json"])
def test_published_messages_without_events_are_dropped_with_a_log_line(
    fixtures_dir: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="rudolph.events"):
        assert parse_message(_fixture(fixtures_dir, name)) == []
    assert caplog.records and caplog.records[-1].getMessage().startswith("dropped")


def test_s3_test_event_through_sns_is_dropped(fixtures_dir: Path) -> None:
    envelope = json.loads(_fixture(fixtures_dir, "sns-notification-s3-put.json"))
    envelope["Message"] = _fixture(fixtures_dir, "s3-test-event.json")
    assert parse_message(json.dumps(envelope)) == []


def test_eventbridge_keys_are_taken_as_they_are() -> None:
    """EventBridge does not URL-encode keys: '+' and '%2F' in one are the characters."""
    body = json.loads(EVENTBRIDGE_CREATED)
    body["detail"]["object"]["key"] = "cars/red+car %2F été.jpg"
    (event,) = parse_message(json.dumps(body))
    assert event.ref.key == "cars/red+car %2F été.jpg"


def test_eventbridge_event_through_sns_and_other_detail_types() -> None:
    envelope = {"Type": "Notification", "TopicArn": "t", "Message": EVENTBRIDGE_CREATED}
    (event,) = parse_message(json.dumps(envelope))
    assert event.ref.key == "a.jpg"
    tags = json.loads(EVENTBRIDGE_CREATED) | {"detail-type": "Object Tags Added"}
    assert parse_message(json.dumps(tags)) == []


def test_emulator_epoch_time_becomes_iso() -> None:
    body = json.loads(EVENTBRIDGE_CREATED) | {"time": 1764590400.5}
    (event,) = parse_message(json.dumps(body))
    assert event.ref.event_time == "2025-12-01T12:00:00.500Z"
    body["time"] = 1e300  # out of any calendar: no time, still the event
    (event,) = parse_message(json.dumps(body))
    assert event.ref.event_time is None


def test_a_deeply_nested_body_is_a_dead_letter_not_a_crash() -> None:
    with pytest.raises(MalformedEventError, match="nests too deep"):
        parse_message("[" * 200_000 + "]" * 200_000)


def test_an_sns_envelope_inside_an_sns_envelope_is_refused() -> None:
    inner = {"Type": "Notification", "TopicArn": "t", "Message": EVENTBRIDGE_CREATED}
    outer = {"Type": "Notification", "TopicArn": "t", "Message": json.dumps(inner)}
    with pytest.raises(MalformedEventError, match="SNS notification's Message is not"):
        parse_message(json.dumps(outer))


EVENTBRIDGE_CREATED = json.dumps({
    "version": "0", "detail-type": "Object Created", "source": "aws.s3",
    "time": "2026-11-25T17:00:00Z",
    "detail": {"bucket": {"name": "reindeer-dropzone"},
               "object": {"key": "a.jpg", "size": 3, "etag": "e", "sequencer": "01"},
               "reason": "PutObject"},
})  # fmt: skip
