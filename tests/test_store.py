"""The table's ordered writes against moto's DynamoDB: duplicates and out-of-order events
converge on what the newest event says."""

from __future__ import annotations

import importlib
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from producer.reconcile import reconcile
from rudolph import errors
from rudolph.errors import (
    ConfigurationError,
    RudolphError,
    StoreRefusedError,
    StoreUnavailableError,
    TransientError,
)
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


# -- what a failure means: retry, or fix something ------------------------------------------


def test_a_missing_table_is_a_configuration_error_not_retried(moto_url: str) -> None:
    missing = RecordStore(Settings(aws_endpoint_url=moto_url, table="no-such-table"))
    with pytest.raises(ConfigurationError, match="does not exist: run `rudolph init`") as caught:
        missing.get("a" * 64)
    assert not caught.value.retryable


def test_a_table_keyed_otherwise_is_a_configuration_error(moto_url: str) -> None:
    """RUDOLPH_TABLE naming someone else's table: DynamoDB's ValidationException says the key
    does not match the schema; the error says which setting to fix and is not retried."""
    settings = Settings(aws_endpoint_url=moto_url, table=f"other-{uuid.uuid4().hex[:8]}")
    RecordStore(settings).client.create_table(
        TableName=settings.table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ConfigurationError, match="set RUDOLPH_TABLE") as caught:
        RecordStore(settings).get("a" * 64)
    assert not caught.value.retryable


def test_a_record_dynamodb_cannot_hold_is_refused_for_good(store: RecordStore) -> None:
    ref = _ref("01")
    assert store.mark_pending(ref)
    huge = _done(ref, "Cat").model_copy(update={"metadata": {"notes": "x" * 500_000}})
    with pytest.raises(StoreRefusedError, match="writing it again will not help") as caught:
        store.put_final(huge, ref.order)
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, StoreUnavailableError),
        ("InternalServerError", 500, StoreUnavailableError),
        ("AccessDeniedException", 400, ConfigurationError),
        ("ValidationException", 400, StoreRefusedError),
    ],
)
def test_dynamodb_errors_are_retried_by_class(
    store: RecordStore, code: str, status: int, expected: type[RudolphError]
) -> None:
    with Stubber(store.table.meta.client) as stub:
        stub.add_client_error("get_item", code, "said by the test", status)
        with pytest.raises(expected) as caught:
            store.get("a" * 64)
    assert caught.value.retryable is issubclass(expected, TransientError)


#: Every module that defines an exception class, imported so that each class exists.
_DEFINING_ERRORS = (
    "rudolph.cli",
    "rudolph.web.app",
    "rudolph.backends.local",
    "rudolph.devstack",
    "producer.backfill",
    "producer.listener",
    "workers",
)


def _subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _ours() -> dict[str, type[BaseException]]:
    """The project's exception classes by name."""
    for module in _DEFINING_ERRORS:
        importlib.import_module(module)
    roots = ("rudolph", "producer", "workers")
    return {
        c.__name__: c for c in _subclasses(BaseException) if c.__module__.split(".")[0] in roots
    }


def test_the_error_tree_lists_every_error_class() -> None:
    """Every exception class of the project is drawn at the top of errors.py, or listed there
    among those that never leave their module."""
    drawn = errors.__doc__ or ""
    missing = {name for name in _ours() if name not in drawn}
    assert not missing, f"add these to the tree in rudolph/errors.py: {sorted(missing)}"


def test_the_error_tree_draws_each_class_under_its_parent() -> None:
    """The drawing at the top of errors.py is the class hierarchy, line by line."""
    ours = _ours()
    blocks = (errors.__doc__ or "").split("\n\n")
    (tree,) = [block for block in blocks if block.strip().startswith("RudolphError")]
    root, *branches = tree.splitlines()
    indent = root.index("RudolphError")
    parents = ["RudolphError"]
    for line in branches:
        branch = re.search(r"[├└]── ", line)
        assert branch, line
        del parents[(branch.start() - indent) // 4 + 1 :]
        names = re.split(r"\s{2,}", line[branch.end() :])[0].split(", ")
        for name in names:
            bases = [base.__name__ for base in ours[name].__bases__]
            assert parents[-1] in bases, f"{name} is drawn under {parents[-1]}, not {bases}"
        parents.append(names[0])
    assert len(branches) > 20


def test_states_reads_many_images_at_once(store: RecordStore) -> None:
    """What backfill decides on: status, etag and the stored event of each image asked for,
    pending claims (their etag in the ref) and absent images (no entry) alike."""
    done, pending = _ref("0A", key="done.jpg"), _ref("0B", key="pending.jpg")
    assert store.mark_pending(done)
    assert store.put_final(_done(done, "Car"), done.order)
    assert store.mark_pending(pending)
    ids = [image_id("b", k) for k in ("done.jpg", "pending.jpg", "absent.jpg")]
    states = store.states(ids, features=True)
    assert set(states) == set(ids[:2])
    finished, claimed = states[ids[0]], states[ids[1]]
    assert (finished.status, finished.at_etag) == ("done", done.etag)
    assert finished.stored_ref("b", "done.jpg") is not None
    assert finished.lacks("faces")  # its record has no analyzer versions
    assert (claimed.status, claimed.at_etag) == ("pending", pending.etag)


def test_states_retries_unprocessed_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchGetItem may answer part of a request: the rest is asked again."""
    monkeypatch.setattr(time, "sleep", lambda _: None)
    table = "t"
    asked: list[list[str]] = []

    class Client:
        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            keys = [k["image_id"]["S"] for k in RequestItems[table]["Keys"]]
            asked.append(keys)
            first, rest = keys[:1], keys[1:]
            unprocessed = {
                table: {**RequestItems[table], "Keys": [{"image_id": {"S": k}} for k in rest]}
            }
            return {
                "Responses": {
                    table: [{"image_id": {"S": k}, "status": {"S": "done"}} for k in first]
                },
                "UnprocessedKeys": unprocessed if rest else {},
            }

    states = RecordStore(Settings(table=table), client=Client()).states(["a", "b", "c"])
    assert asked == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert {i: s.status for i, s in states.items()} == {"a": "done", "b": "done", "c": "done"}
