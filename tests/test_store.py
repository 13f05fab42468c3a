"""The table's ordered writes against moto's DynamoDB: duplicates and out-of-order events
converge on what the newest event says."""

from __future__ import annotations

import time
import uuid

import pytest

from producer.reconcile import reconcile
from rudolph.events import ObjectRef
from rudolph.record import Label, Record, image_id
from rudolph.settings import Settings
from rudolph.store import RecordStore


@pytest.fixture
def store(moto_url: str) -> RecordStore:
    store = RecordStore(Settings(aws_endpoint_url=moto_url, table=f"t-{uuid.uuid4().hex[:8]}"))
    assert store.ensure() is True
    assert store.ensure() is False  # idempotent
    return store


def _ref(sequencer: str, key: str = "a.jpg") -> ObjectRef:
    return ObjectRef(bucket="b", key=key, etag="e" + sequencer, sequencer=sequencer)


def _done(ref: ObjectRef, label: str) -> Record:
    return Record(
        image_id=image_id(ref.bucket, ref.key),
        bucket=ref.bucket,
        key=ref.key,
        status="done",
        labels=[Label(name=label, confidence=90.0)],
        etag=ref.etag,
        sequencer=ref.sequencer,
    )


def test_sequencers_compare_after_right_padding() -> None:
    # S3: compare after right-padding the shorter sequencer with zeros.
    assert _ref("0055AED6DCD90281E5").order < _ref("0055AED6DCD90281E6").order
    assert _ref("0055AED6DCD9028").order < _ref("0055AED6DCD90281").order
    assert _ref("ff").order == ObjectRef(bucket="b", key="a.jpg", sequencer="FF").order
    no_sequencer = ObjectRef(bucket="b", key="k", event_time="2026-11-25T10:00:00.000Z")
    later = ObjectRef(bucket="b", key="k", event_time="2026-11-25T10:00:00.001Z")
    assert no_sequencer.order < later.order


def test_a_created_event_claims_the_record_once(store: RecordStore) -> None:
    first = _ref("10")
    assert store.mark_pending(first)
    assert store.mark_pending(first), "still pending: a redelivery may dispatch again"
    revision = store.put_final(_done(first, "Cat"), first.order)
    assert revision is not None
    assert not store.mark_pending(first), "a duplicate of a recorded event dispatches nothing"
    assert store.put_final(_done(first, "Cat"), first.order) == revision + 1  # same again: fine
    record = store.get(image_id("b", "a.jpg"))
    assert record is not None and record.status == "done" and record.labels[0].name == "Cat"


def test_a_stale_result_does_not_overwrite_a_newer_upload(store: RecordStore) -> None:
    old, new = _ref("10"), _ref("20")
    assert store.mark_pending(old) and store.mark_pending(new)
    assert not store.mark_pending(old), "an older event cannot claim it back"
    assert store.put_final(_done(new, "Dog"), new.order) is not None
    assert store.put_final(_done(old, "Cat"), old.order) is None
    record = store.get(image_id("b", "a.jpg"))
    assert record is not None and record.labels[0].name == "Dog"


def test_a_delete_before_its_create_is_not_resurrected(store: RecordStore) -> None:
    created, removed = _ref("10"), _ref("20")
    assert store.tombstone(removed) is not None  # the delete arrives first
    assert not store.mark_pending(created)
    assert store.put_final(_done(created, "Cat"), created.order) is None
    assert store.get(image_id("b", "a.jpg")) is None
    assert list(store.scan()) == []


def test_a_stale_delete_changes_nothing(store: RecordStore) -> None:
    removed, created = _ref("10"), _ref("20")
    store.mark_pending(created)
    store.put_final(_done(created, "Cat"), created.order)
    assert store.tombstone(removed) is None
    assert store.get(image_id("b", "a.jpg")) is not None


def test_a_new_upload_after_a_delete_comes_back(store: RecordStore) -> None:
    store.tombstone(_ref("10"))
    again = _ref("20")
    assert store.mark_pending(again)
    assert store.put_final(_done(again, "Cat"), again.order) is not None
    assert store.get(image_id("b", "a.jpg")) is not None


class Dispatched:
    def __init__(self) -> None:
        self.refs: list[ObjectRef] = []

    def created(self, ref: ObjectRef) -> str:
        self.refs.append(ref)
        return "id"


def test_reconcile_dispatches_old_pending_records_once(store: RecordStore) -> None:
    stuck, fresh, finished = _ref("10", "stuck.jpg"), _ref("11", "fresh.jpg"), _ref("12", "f.jpg")
    store.mark_pending(stuck, since="2020-01-01T00:00:00.000+00:00")
    store.mark_pending(fresh)
    store.mark_pending(finished, since="2020-01-01T00:00:00.000+00:00")
    store.put_final(_done(finished, "Cat"), finished.order)
    first, second = Dispatched(), Dispatched()
    assert reconcile(store, first, older_than=60) == 1
    assert [ref.key for ref in first.refs] == ["stuck.jpg"]
    assert first.refs[0] == stuck  # the whole reference comes back, sequencer included
    # The clock restarted: a second reconciler right after finds nothing to do.
    assert reconcile(store, second, older_than=60) == 0
    time.sleep(0.01)
    assert reconcile(store, second, older_than=0) == 2  # stuck and fresh, both pending
