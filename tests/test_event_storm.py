"""200 S3 events with duplicates, reordering, deletes before creates and every bad input,
fed to a real fleet: the final table and index equal what a correct sequential run gives,
checked item by item.

The events are written to the queue by the test (S3's own notifications are switched off),
so they carry real-looking sequencers and can be shuffled and repeated at will.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import cycle

import pytest

from rudolph import aws
from tests.fleet import Fleet, fleet
from tests.photos import encode, load
from tests.s3events import s3_event

SEED = 20261125
BASE_SEQUENCER = 0x0055AED6DCD9028100


@dataclass
class Event:
    key: str
    kind: str  # created | removed
    sequencer: str
    size: int = 0
    etag: str = ""
    bucket: str = ""

    def body(self, bucket: str) -> str:
        name = "ObjectCreated:Put" if self.kind == "created" else "ObjectRemoved:Delete"
        obj = {"key": self.key.replace(" ", "+"), "sequencer": self.sequencer}
        if self.kind == "created":
            obj |= {"size": self.size, "eTag": self.etag}
        return s3_event(self.bucket or bucket, obj.pop("key"), name, **obj)


@dataclass
class Expected:
    status: str | None  # None: no record at all
    etag: str | None = None
    error: str | None = None


class Scenario:
    """Builds objects in S3 and the events that led to them, and what must come out."""

    def __init__(self, running: Fleet) -> None:
        self.running = running
        self.events: list[Event] = []
        self.expected: dict[str, Expected] = {}
        self.bodies: list[str] = []
        self._sequencer = BASE_SEQUENCER
        self._photos = cycle([encode(load(n), "JPEG") for n in ("chelsea", "coffee", "rocket")])

    def next_sequencer(self) -> str:
        self._sequencer += 1
        return f"{self._sequencer:X}"

    def put(self, key: str, body: bytes | None = None) -> Event:
        data = next(self._photos) if body is None else body
        self.running.upload(key, data)
        head = aws.client("s3", self.running.settings).head_object(
            Bucket=self.running.settings.bucket, Key=key
        )
        event = Event(key, "created", self.next_sequencer(), len(data), head["ETag"].strip('"'))
        self.events.append(event)
        return event

    def delete(self, key: str) -> None:
        aws.client("s3", self.running.settings).delete_object(
            Bucket=self.running.settings.bucket, Key=key
        )
        self.events.append(Event(key, "removed", self.next_sequencer()))


@pytest.fixture(scope="module")
def storm(moto_url: str, opensearch_url: str, redis_url: str) -> Iterator[Scenario]:
    with fleet(moto_url, opensearch_url, redis_url, RUDOLPH_MAX_OBJECT_MB="1") as running:
        # Only this test's events: S3's own notifications are switched off.
        aws.client("s3", running.settings).put_bucket_notification_configuration(
            Bucket=running.settings.bucket, NotificationConfiguration={}
        )
        s = Scenario(running)
        for i in range(30):  # uploaded once
            key = f"once/{i:02d} photo.jpg"
            s.expected[key] = Expected("done", s.put(key).etag)
        for i in range(10):  # uploaded twice: the second upload wins
            key = f"twice/{i:02d}.jpg"
            s.put(key)
            s.expected[key] = Expected("done", s.put(key).etag)
        for i in range(10):  # uploaded then deleted
            key = f"deleted/{i:02d}.jpg"
            s.put(key)
            s.delete(key)
            s.expected[key] = Expected(None)
        for i in range(5):  # uploaded, deleted, uploaded again
            key = f"back/{i:02d}.jpg"
            s.put(key)
            s.delete(key)
            s.expected[key] = Expected("done", s.put(key).etag)
        for i in range(3):
            s.put(f"bad/empty {i}.jpg", b"")
            s.expected[f"bad/empty {i}.jpg"] = Expected(
                "failed", error="EmptyImage: the object is empty"
            )
            s.put(f"bad/huge {i}.png", b"\x89PNG" + random.Random(i).randbytes(1_200_000))
            s.expected[f"bad/huge {i}.png"] = Expected(
                "failed", error="ImageTooLarge: the object is 1.1 MB"
            )
            s.put(f"bad/corrupt {i}.jpg", encode(load("chelsea"), "JPEG")[:3000])
            s.expected[f"bad/corrupt {i}.jpg"] = Expected(
                "failed", error="UnreadableImage: the JPEG data is truncated"
            )
            s.put(f"bad/notes {i}.txt", b"not a photo")
            s.expected[f"bad/notes {i}.txt"] = Expected(None)
            # An event whose object is gone before any worker reads it.
            s.events.append(Event(f"bad/vanished {i}.jpg", "created", s.next_sequencer(), 10, "e"))
            s.expected[f"bad/vanished {i}.jpg"] = Expected(None)
            s.events.append(
                Event(
                    f"elsewhere/{i}.jpg",
                    "created",
                    s.next_sequencer(),
                    10,
                    "e",
                    bucket="another-bucket",
                )
            )
        rng = random.Random(SEED)
        bodies = [e.body(running.settings.bucket) for e in s.events]
        bodies += rng.choices(bodies, k=200 - len(bodies) - 3)  # duplicates
        bodies += ["not json", '{"Records": "nope"}', '{"hello": "world"}']  # malformed
        rng.shuffle(bodies)
        assert len(bodies) == 200
        sqs = aws.client("sqs", running.settings)
        url = sqs.get_queue_url(QueueName=running.settings.queue_name)["QueueUrl"]
        # Malformed messages reach the dead-letter queue after 5 receives: seconds, not minutes.
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(n), "MessageBody": body}
                for n, body in enumerate(bodies[start : start + 10])
            ]
            assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        s.bodies = bodies
        yield s


def test_the_table_holds_exactly_what_a_sequential_run_gives(storm: Scenario) -> None:
    running = storm.running
    present = {k: e for k, e in storm.expected.items() if e.status}
    for key in present:
        running.record(key, timeout=240)
    running.idle(timeout=240)
    for key, expected in storm.expected.items():
        record = running.store.get(running.image_id(key))
        if expected.status is None:
            assert record is None, (key, record and record.status)
            continue
        assert record is not None, key
        assert record.status == expected.status, (key, record.errors)
        if expected.etag:
            assert record.etag == expected.etag, f"{key}: not the newest upload's record"
        if expected.error:
            assert set(record.errors) == {"labels", "text", "faces"}
            assert all(m.startswith(expected.error) for m in record.errors.values()), (
                key,
                record.errors,
            )
    assert sorted(r.key for r in running.store.scan() if r.key) == sorted(present)


def test_the_index_holds_exactly_the_records(storm: Scenario) -> None:
    running = storm.running
    running.idle(timeout=240)
    for key, expected in storm.expected.items():
        assert running.documents_for(key) == (1 if expected.status else 0), key
    assert running.index.count() == sum(1 for e in storm.expected.values() if e.status)


def test_malformed_messages_end_in_the_dead_letter_queue(storm: Scenario) -> None:
    storm.running.idle(timeout=240)
    sqs = aws.client("sqs", storm.running.settings)
    url = sqs.get_queue_url(QueueName=f"{storm.running.settings.queue_name}-dlq")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    malformed = sum(1 for body in storm.bodies if not body.startswith('{"Records": [{'))
    assert int(attributes["ApproximateNumberOfMessages"]) == malformed
    log = (storm.running.group.log_dir / "listener.log").read_text()
    assert "event for another bucket" in log
