"""`rudolph status`, `pause`, `resume` and `purge` against a real fleet, run as the operator
would: subprocesses with the fleet's environment (so the Celery app reads its broker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import redis

from rudolph import aws
from rudolph.deadletters import dlq_name
from rudolph.events import ObjectRef
from rudolph.operations import priority_keys
from rudolph.record import Record, Status
from rudolph.vocabulary import AGGREGATE_QUEUE
from tests.fleet import RUDOLPH, Fleet, fleet, poll
from tests.photos import encode, load


def rudolph(
    running: Fleet, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUDOLPH, *args],
        input=input,
        env={**os.environ, **running.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def status(running: Fleet) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(rudolph(running, "status", "--json").stdout)
    return result


def test_priority_lists_are_kombus() -> None:
    assert priority_keys("labels") == [
        "labels",
        "labels\x06\x163",
        "labels\x06\x166",
        "labels\x06\x169",
    ]


def test_status_counts_what_is_in_each_place(
    moto_url: str, opensearch_url: str, redis_url: str
) -> None:
    with fleet(moto_url, opensearch_url, redis_url, concurrency=1) as running:
        running.group.kill("listener", signal.SIGTERM)  # leave the SQS messages where they are
        bucket = running.settings.bucket
        placed: tuple[tuple[Status, int], ...] = (("done", 3), ("partial", 1), ("failed", 2))
        for name, wanted in placed:
            for n in range(wanted):
                key = f"{name}/{n}.jpg"
                record = Record(image_id=running.image_id(key), bucket=bucket, key=key, status=name)
                running.store.put(record)
                running.index.put(record)
        for n in range(2):
            running.store.mark_pending(ObjectRef(bucket=bucket, key=f"pending/{n}.jpg"))
        running.store.tombstone(ObjectRef(bucket=bucket, key="gone.jpg", sequencer="1"))
        running.index.refresh()

        sqs = aws.client("sqs", running.settings)
        events = sqs.get_queue_url(QueueName=running.settings.queue_name)["QueueUrl"]
        dlq = sqs.get_queue_url(QueueName=dlq_name(running.settings))["QueueUrl"]
        # What the listener left (S3's test event, if it had not taken it yet), then 3 more.
        before = int(
            sqs.get_queue_attributes(
                QueueUrl=events, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
        for n in range(3):
            sqs.send_message(QueueUrl=events, MessageBody=f"event {n}")
        sqs.send_message(QueueUrl=dlq, MessageBody="not an S3 event")

        paused = rudolph(running, "pause", "text").stdout
        assert "1 worker(s) stopped consuming text" in paused, paused
        broker = redis.Redis.from_url(running.broker)
        broker.lpush("text", "task a", "task b")
        broker.lpush("text\x06\x163", "a task of priority 3")

        seen = status(running)
        assert {name: q["depth"] for name, q in seen["celery"].items()} == {
            "labels": 0,
            "text": 3,
            "faces": 0,
            "aggregate": 0,
        }
        assert seen["celery"]["text"]["consumers"] == []
        for queue in ("labels", "faces", AGGREGATE_QUEUE):
            assert len(seen["celery"][queue]["consumers"]) == 1, seen["celery"]
        assert seen["sqs"]["events"] == {
            "name": running.settings.queue_name,
            "visible": before + 3,
            "in_flight": 0,
        }
        assert seen["sqs"]["dead_letters"]["visible"] == 1
        assert seen["records"] == {"done": 3, "partial": 1, "failed": 2, "pending": 2}
        assert seen["index"] == {"documents": 6, "indexed_records": 6, "agrees": True}
        assert seen["search_engine"] == "opensearch 2.5.0"
        assert seen["buckets"] == {"watched": [f"s3://{bucket}/"], "records": {bucket: 8}}

        # A document without its record: they disagree.
        stray = Record(image_id=running.image_id("stray.jpg"), status="done")
        running.index.put(stray)
        running.index.refresh()
        assert status(running)["index"]["agrees"] is False

        text = rudolph(running, "status").stdout
        assert "DISAGREES" in text and "text" in text
        assert "opensearch 2.5.0" in text
        assert f"buckets    s3://{bucket}/ (8 in {bucket})" in text

        assert "3 message(s) removed from text" in rudolph(running, "purge", "text", "--yes").stdout
        assert all(broker.llen(key) == 0 for key in priority_keys("text"))
        removed = rudolph(running, "purge", "dead-letters", "--yes").stdout
        assert "1 message(s) removed from dead-letters" in removed
        refused = rudolph(running, "purge", "events", input="n\n", check=False)
        assert refused.returncode == 1 and f"delete about {before + 3} message(s)" in refused.stdout
        assert "1 worker(s) consume text" in rudolph(running, "resume", "text").stdout
        assert rudolph(running, "pause", "nope", check=False).returncode == 2


def test_a_paused_queue_holds_its_tasks_until_resumed(
    moto_url: str, opensearch_url: str, redis_url: str
) -> None:
    with fleet(moto_url, opensearch_url, redis_url) as running:
        rudolph(running, "pause", "faces")
        broker = redis.Redis.from_url(running.broker)
        keys = ["paused/cat.jpg", "paused/coffee.jpg"]
        running.upload(keys[0], encode(load("chelsea"), "JPEG"))
        running.upload(keys[1], encode(load("coffee"), "JPEG"))

        def faces_waiting() -> bool:
            running.check_alive()
            others = sum(broker.llen(q) for q in ("labels", "text", AGGREGATE_QUEUE))
            # labels and text ran (nothing queued or taken), faces' tasks wait.
            return broker.llen("faces") == len(keys) and others == 0 and not broker.hlen("unacked")

        poll(faces_waiting, 60, "labels and text done, faces waiting")
        assert status(running)["celery"]["faces"] == {"depth": 2, "consumers": []}
        for key in keys:
            record = running.store.get(running.image_id(key))
            assert record is not None and record.status == "pending"

        assert "1 worker(s) consume faces" in rudolph(running, "resume", "faces").stdout
        for key in keys:
            assert running.record(key, timeout=60).status == "done"
        assert status(running)["records"]["done"] == len(keys)
