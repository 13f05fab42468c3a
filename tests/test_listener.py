"""The SQS listener against moto's server: real S3 event notifications delivered to SQS."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from producer.listener import Listener
from rudolph import aws
from rudolph.events import ObjectRef
from rudolph.provision import ensure_bucket, ensure_notifications, ensure_queues
from rudolph.settings import Settings


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.created: list[ObjectRef] = []
        self.removed: list[ObjectRef] = []
        self.fail = fail

    def dispatch(self, ref: ObjectRef) -> str:
        if self.fail:
            raise ConnectionError("broker down")
        self.created.append(ref)
        return "task-id"

    def dispatch_removal(self, ref: ObjectRef) -> str:
        self.removed.append(ref)
        return "task-id"


@pytest.fixture
def settings(moto_url: str) -> Settings:
    name = f"t-{uuid.uuid4().hex[:8]}"
    settings = Settings(aws_endpoint_url=moto_url, bucket=name, queue_name=name)
    s3, sqs = aws.client("s3", settings), aws.client("sqs", settings)
    ensure_bucket(s3, settings)
    _, arn = ensure_queues(sqs, settings)
    ensure_notifications(s3, settings, arn)
    return settings


def _drain(listener: Listener, until: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the listener did not get there in time"
        listener.poll_once()


def _visible(settings: Settings, queue: str) -> int:
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


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
    listener = Listener(settings, recorder.dispatch, recorder.dispatch_removal, wait_seconds=1)
    _drain(listener, lambda: len(recorder.created) == len(keys))
    assert sorted(ref.key for ref in recorder.created) == sorted(keys)
    assert all(ref.bucket == settings.bucket and ref.etag for ref in recorder.created)
    assert _visible(settings, settings.queue_name) == 0, "handled messages are deleted"


def test_non_images_are_skipped_by_extension_and_content_type(settings: Settings) -> None:
    s3 = aws.client("s3", settings)
    s3.put_object(Bucket=settings.bucket, Key="notes.txt", Body=b"hello")
    s3.put_object(Bucket=settings.bucket, Key="no-extension", Body=b"x", ContentType="text/plain")
    s3.put_object(Bucket=settings.bucket, Key="camera-upload", Body=b"x", ContentType="image/jpeg")
    recorder = Recorder()
    listener = Listener(settings, recorder.dispatch, recorder.dispatch_removal, wait_seconds=1)
    reasons: list[str] = []
    deadline = time.monotonic() + 20
    while len(reasons) < 2 or not recorder.created:
        assert time.monotonic() < deadline
        reasons += listener.poll_once().reasons
    assert [ref.key for ref in recorder.created] == ["camera-upload"]
    assert sorted(reasons) == [
        f"s3://{settings.bucket}/no-extension: not an image (by extension and content type)",
        f"s3://{settings.bucket}/notes.txt: not an image (by extension and content type)",
    ]


def test_deletes_are_dispatched_as_removals(settings: Settings) -> None:
    s3 = aws.client("s3", settings)
    s3.put_object(Bucket=settings.bucket, Key="gone.jpg", Body=b"x")
    s3.delete_object(Bucket=settings.bucket, Key="gone.jpg")
    recorder = Recorder()
    listener = Listener(settings, recorder.dispatch, recorder.dispatch_removal, wait_seconds=1)
    _drain(listener, lambda: recorder.removed and recorder.created)
    assert [ref.key for ref in recorder.removed] == ["gone.jpg"]


def test_a_message_is_kept_when_its_pipeline_cannot_be_enqueued(settings: Settings) -> None:
    aws.client("s3", settings).put_object(Bucket=settings.bucket, Key="a.jpg", Body=b"x")
    listener = Listener(
        settings, Recorder(fail=True).dispatch, Recorder().dispatch_removal, wait_seconds=1
    )
    deadline = time.monotonic() + 20
    while True:  # the test event comes first
        try:
            listener.poll_once()
        except ConnectionError:
            break
        assert time.monotonic() < deadline
    assert _visible(settings, settings.queue_name) == 1, "not deleted: it will come back"


def test_unparseable_messages_end_in_the_dead_letter_queue(settings: Settings) -> None:
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"hello": "world"}))
    recorder = Recorder()
    listener = Listener(settings, recorder.dispatch, recorder.dispatch_removal, wait_seconds=1)
    _drain(listener, lambda: _visible(settings, f"{settings.queue_name}-dlq") == 1, timeout=30)
    assert _visible(settings, settings.queue_name) == 0
    assert not recorder.created
