"""The SQS listener against moto's server: real S3 event notifications delivered to SQS."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from producer.listener import Listener
from rudolph import aws
from rudolph.errors import BrokerUnavailableError
from rudolph.events import ObjectRef
from rudolph.operations import sqs_counts
from rudolph.provision import ensure_bucket, ensure_queues
from rudolph.record import image_id
from rudolph.routes import connect
from rudolph.settings import Settings
from rudolph.store import RecordStore
from tests.s3events import eventbridge_event, s3_event, sns_envelope


class Recorder:
    """A publisher that records what it was asked to enqueue."""

    def __init__(self, fail: bool = False) -> None:
        self.created_refs: list[ObjectRef] = []
        self.removed_refs: list[ObjectRef] = []
        self.rejected_refs: list[tuple[ObjectRef, str]] = []
        self.fail = fail

    def created(self, ref: ObjectRef) -> str:
        if self.fail:
            raise BrokerUnavailableError("broker down")
        self.created_refs.append(ref)
        return "task-id"

    def removed(self, ref: ObjectRef) -> str:
        self.removed_refs.append(ref)
        return "task-id"

    def rejected(self, ref: ObjectRef, message: str) -> str:
        self.rejected_refs.append((ref, message))
        return "task-id"

    def reachable(self) -> bool:
        return not self.fail


@pytest.fixture
def settings(moto_url: str) -> Settings:
    name = f"t-{uuid.uuid4().hex[:8]}"
    settings = Settings(aws_endpoint_url=moto_url, bucket=name, queue_name=name)
    s3, sqs = aws.client("s3", settings), aws.client("sqs", settings)
    ensure_bucket(s3, settings)
    url, arn = ensure_queues(sqs, settings)
    connect(settings, "s3", url, arn, say=lambda _: None)
    RecordStore(settings).ensure()
    return settings


def _drain(listener: Listener, until: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the listener did not get there in time"
        listener.poll_once()


def _visible(settings: Settings, queue: str) -> int:
    counts = sqs_counts(settings, queue)
    return counts.visible + counts.in_flight


def test_uploads_become_pipelines_with_their_exact_keys(settings: Settings) -> None:
    s3 = aws.client("s3", settings)
    keys = [
        "plain.jpg",
        "with space/red car.jpg",
        "a+b=c.png",
        "ünïcödé/猫.webp",
        "deep/nested/prefix/x.JPEG",
    ]
    for key in keys:
        s3.put_object(Bucket=settings.bucket, Key=key, Body=b"bytes")
    recorder = Recorder()
    listener = Listener(settings, recorder, wait_seconds=1)
    _drain(listener, lambda: len(recorder.created_refs) == len(keys))
    assert sorted(ref.key for ref in recorder.created_refs) == sorted(keys)
    assert all(ref.bucket == settings.bucket and ref.etag for ref in recorder.created_refs)
    assert _visible(settings, settings.queue_name) == 0, "handled messages are deleted"


def test_non_images_are_skipped_by_extension_and_content_type(settings: Settings) -> None:
    s3 = aws.client("s3", settings)
    s3.put_object(Bucket=settings.bucket, Key="notes.txt", Body=b"hello")
    s3.put_object(Bucket=settings.bucket, Key="no-extension", Body=b"x", ContentType="text/plain")
    s3.put_object(Bucket=settings.bucket, Key="camera-upload", Body=b"x", ContentType="image/jpeg")
    recorder = Recorder()
    listener = Listener(settings, recorder, wait_seconds=1)
    reasons: list[str] = []
    deadline = time.monotonic() + 20
    while len(reasons) < 2 or not recorder.created_refs:
        assert time.monotonic() < deadline
        reasons += listener.poll_once().reasons
    assert [ref.key for ref in recorder.created_refs] == ["camera-upload"]
    assert sorted(reasons) == [
        f"s3://{settings.bucket}/no-extension: not an image (by extension and content type)",
        f"s3://{settings.bucket}/notes.txt: not an image (by extension and content type)",
    ]


def test_deletes_are_dispatched_as_removals(settings: Settings) -> None:
    s3 = aws.client("s3", settings)
    s3.put_object(Bucket=settings.bucket, Key="gone.jpg", Body=b"x")
    s3.delete_object(Bucket=settings.bucket, Key="gone.jpg")
    recorder = Recorder()
    listener = Listener(settings, recorder, wait_seconds=1)
    _drain(listener, lambda: recorder.removed_refs and recorder.created_refs)
    assert [ref.key for ref in recorder.removed_refs] == ["gone.jpg"]


def test_a_message_is_kept_when_its_pipeline_cannot_be_enqueued(settings: Settings) -> None:
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    aws.client("s3", settings).put_object(Bucket=settings.bucket, Key="a.jpg", Body=b"x")
    listener = Listener(settings, Recorder(fail=True), wait_seconds=1)
    deadline = time.monotonic() + 20
    while True:  # the test event comes first
        try:
            listener.poll_once()
        except BrokerUnavailableError:
            break
        assert time.monotonic() < deadline
    assert _visible(settings, settings.queue_name) == 1, "not deleted: it will come back"
    # Redelivered, the event is dispatched: its record is still pending for this very event.
    recorder = Recorder()
    retry = Listener(settings, recorder, wait_seconds=1)
    _drain(retry, lambda: recorder.created_refs)
    assert [ref.key for ref in recorder.created_refs] == ["a.jpg"]


def test_a_duplicate_of_an_event_already_recorded_dispatches_nothing(settings: Settings) -> None:
    s3 = aws.client("s3", settings)
    s3.put_object(Bucket=settings.bucket, Key="once.jpg", Body=b"x")
    recorder = Recorder()
    listener = Listener(settings, recorder, wait_seconds=1)
    _drain(listener, lambda: recorder.created_refs)
    (ref,) = recorder.created_refs
    store = RecordStore(settings)
    record = store.get(image_id(ref.bucket, ref.key))
    assert record is not None and record.status == "pending"
    # The analysis lands; then S3 delivers the same event again.
    done = record.model_copy(update={"status": "done"})
    assert store.put_final(done, ref.order) is not None
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    body = s3_event(ref.bucket, ref.key, event_time=ref.event_time, size=1, eTag=ref.etag)
    sqs.send_message(QueueUrl=url, MessageBody=body)
    stats = listener.poll_once()
    assert (stats.duplicates, stats.dispatched) == (1, 0)
    assert len(recorder.created_refs) == 1


def test_empty_and_oversized_objects_are_refused_at_the_door(settings: Settings) -> None:
    small = settings.model_copy(update={"max_object_mb": 0.001})  # about 1 KB
    s3 = aws.client("s3", settings)
    s3.put_object(Bucket=settings.bucket, Key="empty.jpg", Body=b"")
    s3.put_object(Bucket=settings.bucket, Key="big.jpg", Body=b"x" * 5000)
    s3.put_object(Bucket=settings.bucket, Key="fine.jpg", Body=b"x" * 10)
    recorder = Recorder()
    listener = Listener(small, recorder, wait_seconds=1)
    _drain(listener, lambda: len(recorder.rejected_refs) == 2 and recorder.created_refs)
    messages = {ref.key: message for ref, message in recorder.rejected_refs}
    assert messages["empty.jpg"].startswith("EmptyImage: the object is empty (0 bytes)")
    assert messages["big.jpg"].startswith(
        "ImageTooLarge: the object is 0.0 MB, over the 0.001 MB limit (RUDOLPH_MAX_OBJECT_MB)"
    )
    assert [ref.key for ref in recorder.created_refs] == ["fine.jpg"]


def test_events_for_another_bucket_are_skipped(settings: Settings) -> None:
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    body = s3_event("someone-else", "x.jpg", size=5, eTag="e")
    sqs.send_message(QueueUrl=url, MessageBody=body)
    recorder = Recorder()
    listener = Listener(settings, recorder, wait_seconds=1)
    reasons: list[str] = []
    deadline = time.monotonic() + 20
    while not any("another bucket" in r for r in reasons):
        assert time.monotonic() < deadline
        reasons += listener.poll_once().reasons
    assert not recorder.created_refs


def test_unparseable_messages_end_in_the_dead_letter_queue(settings: Settings) -> None:
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"hello": "world"}))
    recorder = Recorder()
    listener = Listener(settings, recorder, wait_seconds=1)
    _drain(listener, lambda: _visible(settings, f"{settings.queue_name}-dlq") == 1, timeout=30)
    assert _visible(settings, settings.queue_name) == 0
    assert not recorder.created_refs


def test_events_outside_the_watched_buckets_say_which_setting_admits_them(
    settings: Settings,
) -> None:
    """RUDOLPH_BUCKETS with a prefix and a suffix: what it leaves out is skipped, saying so."""
    narrowed = Settings(
        aws_endpoint_url=settings.aws_endpoint_url,
        buckets=f"s3://{settings.bucket}/in/ *.jpg",
        queue_name=settings.queue_name,
        table=settings.table,
    )
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    for bucket, key in ((settings.bucket, "out/x.jpg"), ("someone-else", "in/x.jpg")):
        sqs.send_message(QueueUrl=url, MessageBody=s3_event(bucket, key, size=5, eTag="e"))
    recorder = Recorder()
    listener = Listener(narrowed, recorder, wait_seconds=1)
    reasons: list[str] = []
    deadline = time.monotonic() + 20
    while len(reasons) < 2:
        assert time.monotonic() < deadline, reasons
        reasons += listener.poll_once().reasons
    assert not recorder.created_refs
    watched = f"s3://{settings.bucket}/in/ *.jpg"
    assert sorted(reasons) == [
        f"s3://someone-else/in/x.jpg: event for another bucket than the watched ones "
        f"(RUDOLPH_BUCKETS: {watched}); add someone-else to RUDOLPH_BUCKETS to analyse it",
        f"s3://{settings.bucket}/out/x.jpg: outside the prefix and suffixes RUDOLPH_BUCKETS "
        f"gives its bucket ({watched}); widen that entry of RUDOLPH_BUCKETS to analyse it",
    ]


def test_events_of_every_route_share_one_order(settings: Settings) -> None:
    """Through EventBridge, then an older event of the same key through SNS: stale, nothing is
    dispatched; then the key's delete through EventBridge is a removal."""
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    bucket, key = settings.bucket, "routes/red car.jpg"
    newer = eventbridge_event(bucket, key, size=5, etag="e2", sequencer="0055AED6DCD90281E6")
    older = sns_envelope(
        s3_event(bucket, "routes/red+car.jpg", size=5, eTag="e1", sequencer="0055AED6DCD90281E5")
    )
    gone = eventbridge_event(bucket, key, "Object Deleted", etag="e2", sequencer="0055AED6DCD9029")
    recorder = Recorder()
    listener = Listener(settings, recorder, wait_seconds=1)
    sqs.send_message(QueueUrl=url, MessageBody=newer)
    _drain(listener, lambda: recorder.created_refs)
    assert [(r.key, r.etag) for r in recorder.created_refs] == [(key, "e2")]
    sqs.send_message(QueueUrl=url, MessageBody=older)
    duplicates, deadline = 0, time.monotonic() + 20
    while not duplicates:
        assert time.monotonic() < deadline, "the older event was not taken for stale"
        duplicates += listener.poll_once().duplicates
    assert len(recorder.created_refs) == 1
    sqs.send_message(QueueUrl=url, MessageBody=gone)
    _drain(listener, lambda: recorder.removed_refs)
    assert [r.key for r in recorder.removed_refs] == [key]
