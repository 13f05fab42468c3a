"""The DynamoDB table of records: the source of truth (the search index is rebuilt from it).

One item per image, keyed by `image_id`; floats are stored as Decimal, as DynamoDB requires.
Every write is conditional on the event order (`ObjectRef.order`), so duplicate and
out-of-order S3 events converge on what the newest event says:

- `mark_pending`: a created event claims the item (status pending) unless the item already
  reflects this event or a newer one; only then is a pipeline dispatched.
- `put_final`: the aggregate's record lands unless a newer event claimed the item since.
- `tombstone`: a removed event replaces the item with a marker that expires after a week, so
  that a create arriving after its delete cannot resurrect the image.

Each successful write bumps `revision`, which the search index uses as an external version.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from rudolph import aws
from rudolph.errors import (
    ConfigurationError,
    RudolphError,
    StoreRefusedError,
    StoreUnavailableError,
)
from rudolph.events import ObjectRef
from rudolph.record import Record, image_id
from rudolph.settings import Settings
from rudolph.vocabulary import PENDING, STATUSES

PENDING_INDEX = "pending"
#: People's indexes (rudolph/peoplestore.py): face assignments by person, persons by state.
PERSON_INDEX = "person"
PERSONS_INDEX = "persons"
TOMBSTONE_DAYS = 7
#: Keys per BatchGetItem (DynamoDB's maximum), and rounds of retrying its UnprocessedKeys.
BATCH_GET = 100
MAX_BATCH_GET_ROUNDS = 10
#: The table's shape, as `ensure` creates it (deploy/aws/build.py declares the same one):
#: on-demand, key image_id, a sparse index of pending records, people's two sparse indexes,
#: a TTL on deletion markers.
KEY_SCHEMA: list[dict[str, str]] = [{"AttributeName": "image_id", "KeyType": "HASH"}]
ATTRIBUTE_DEFINITIONS: list[dict[str, str]] = [
    {"AttributeName": "image_id", "AttributeType": "S"},
    {"AttributeName": "pending", "AttributeType": "S"},
    {"AttributeName": "pending_since", "AttributeType": "S"},
    {"AttributeName": "person_id", "AttributeType": "S"},
    {"AttributeName": "person_state", "AttributeType": "S"},
]
PENDING_INDEX_SPEC: dict[str, Any] = {
    "IndexName": PENDING_INDEX,
    "KeySchema": [
        {"AttributeName": "pending", "KeyType": "HASH"},
        {"AttributeName": "pending_since", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["ref", "order"]},
}
#: The faces of a person: every item with a `person_id` (face assignments, and persons
#: themselves, told apart by the `face#` key prefix), by person then face key. Sparse: records
#: have no `person_id`, so the index holds people's items only.
PERSON_INDEX_SPEC: dict[str, Any] = {
    "IndexName": PERSON_INDEX,
    "KeySchema": [
        {"AttributeName": "person_id", "KeyType": "HASH"},
        {"AttributeName": "image_id", "KeyType": "RANGE"},
    ],
    "Projection": {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["face_image", "face", "order", "face_id"],
    },
}
#: Persons by state: `live`, or `merged#<into>` for one merged into another (only person items
#: carry `person_state`, so the index is sparse).
PERSONS_INDEX_SPEC: dict[str, Any] = {
    "IndexName": PERSONS_INDEX,
    "KeySchema": [
        {"AttributeName": "person_state", "KeyType": "HASH"},
        {"AttributeName": "person_id", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name", "merged_into"]},
}
#: Every global secondary index of the table, as `ensure` and deploy/aws create them.
GLOBAL_INDEXES: list[dict[str, Any]] = [PENDING_INDEX_SPEC, PERSON_INDEX_SPEC, PERSONS_INDEX_SPEC]
#: How long `ensure` waits for an index it added to an existing table to become active.
INDEX_BUILD_SECONDS = 600
BILLING_MODE = "PAY_PER_REQUEST"
TTL_ATTRIBUTE = "expires_at"
# Bookkeeping attributes of an item that are not part of the record.
_INTERNAL = (
    "order",
    "revision",
    "pending",
    "pending_since",
    "deleted",
    "expires_at",
    "ref",
    "backfill_run",
)
_DESERIALIZE = TypeDeserializer()
_RECORD_FIELDS = tuple(name for name in Record.model_fields if name != "image_id")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def to_item(record: Record) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(record.model_dump_json(), parse_float=Decimal)
    return {k: v for k, v in item.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value % 1 == 0 else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def from_attribute_values(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level item (`{"S": ...}` values, as BatchGetItem answers) as the table resource
    gives it (numbers as Decimal)."""
    return {k: _DESERIALIZE.deserialize(v) for k, v in item.items()}


def from_item(item: dict[str, Any]) -> Record:
    return Record.model_validate({k: _plain(v) for k, v in item.items() if k not in _INTERNAL})


class _Update:
    """An UpdateItem expression built attribute by attribute, with safe placeholders."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: Any) -> None:
        self.sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def remove(self, attribute: str) -> None:
        self.removes.append(self.name(attribute))

    def bump_revision(self) -> None:
        revision = self.name("revision")
        self.sets.append(
            f"{revision} = if_not_exists({revision}, {self.value(0)}) + {self.value(1)}"
        )

    def params(self, condition: str, returns: str = "UPDATED_NEW") -> dict[str, Any]:
        expression = "SET " + ", ".join(self.sets)
        if self.removes:
            expression += " REMOVE " + ", ".join(self.removes)
        return {
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
            "ReturnValues": returns,
        }


class RecordStore:
    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.client = client or aws.client("dynamodb", settings)
        self.table_name = settings.table
        self._table: Any = None
        #: The indexes the last `ensure` added to an existing table (an upgrade's follow-ups).
        self.added_indexes: list[str] = []

    @property
    def table(self) -> Any:
        if self._table is None:
            import boto3

            resource = boto3.session.Session().resource(
                "dynamodb",
                region_name=self.settings.aws_region,
                endpoint_url=self.settings.aws_endpoint_url,
            )
            self._table = resource.Table(self.table_name)
        return self._table

    # -- provisioning ---------------------------------------------------------------------

    def ensure(self) -> bool:
        """Create the table (on-demand, key image_id, the pending and people's indexes, and a
        TTL for tombstones) if missing, and add any index an older table lacks; True when the
        table was created."""
        created = True
        self.added_indexes = []
        try:
            self.client.create_table(
                TableName=self.table_name,
                KeySchema=KEY_SCHEMA,
                AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
                GlobalSecondaryIndexes=GLOBAL_INDEXES,
                BillingMode=BILLING_MODE,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            created = False
        self.client.get_waiter("table_exists").wait(
            TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        if not created:
            self._add_missing_indexes()
        ttl = self.client.describe_time_to_live(TableName=self.table_name)
        if ttl["TimeToLiveDescription"].get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            self.client.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        return created

    def _add_missing_indexes(self) -> None:
        """Add the indexes a table made by an older rudolph lacks, one at a time: DynamoDB
        builds one new index of a table at once."""
        for spec in GLOBAL_INDEXES:
            described = self.client.describe_table(TableName=self.table_name)["Table"]
            names = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
            if spec["IndexName"] in names:
                continue
            self.client.update_table(
                TableName=self.table_name,
                AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
                GlobalSecondaryIndexUpdates=[{"Create": spec}],
            )
            self._wait_for_index(spec["IndexName"])
            self.added_indexes.append(spec["IndexName"])

    def _wait_for_index(self, name: str) -> None:
        deadline = time.monotonic() + INDEX_BUILD_SECONDS
        while time.monotonic() < deadline:
            described = self.client.describe_table(TableName=self.table_name)["Table"]
            status = {
                i["IndexName"]: i.get("IndexStatus")
                for i in described.get("GlobalSecondaryIndexes", [])
            }
            if status.get(name) == "ACTIVE":
                return
            time.sleep(2)
        raise StoreUnavailableError(
            f"index {name!r} of table {self.table_name!r} is still being built after "
            f"{INDEX_BUILD_SECONDS} s: run `rudolph init` again once it is ACTIVE"
        )

    # -- ordered writes -------------------------------------------------------------------

    def mark_pending(self, ref: ObjectRef, since: str | None = None) -> bool:
        """Claim the item for this created event; False when it already reflects this event
        (and is not pending) or a newer one: then there is nothing to dispatch."""
        update = _Update()
        for attribute, value in (
            ("bucket", ref.bucket),
            ("key", ref.key),
            ("status", PENDING),
            ("order", ref.order),
            ("pending", "1"),
            ("pending_since", since or _now()),
            ("ref", ref.model_dump(mode="json", exclude_none=True)),
        ):
            update.set(attribute, value)
        update.bump_revision()
        for attribute in ("deleted", "expires_at"):
            update.remove(attribute)
        order, status = update.name("order"), update.name("status")
        new_order, pending = update.value(ref.order), update.value("pending")
        condition = (
            f"attribute_not_exists(image_id) OR {order} < {new_order} "
            f"OR ({order} = {new_order} AND {status} = {pending})"
        )
        # Only whether the claim held matters: no attributes back (the ref is the bulk of them).
        key = image_id(ref.bucket, ref.key)
        return self._conditional(key, update, condition, returns="NONE") is not None

    def put_final(self, record: Record, order: str) -> int | None:
        """Write the analysed record; its revision, or None when a newer event (a re-upload
        or a delete) owns the item now.

        Optimistic: read the item's order and revision, then put the whole record on
        condition that the revision is still the one read (else read again). A put of the
        record costs a third of an update of every attribute that returns them all.
        """
        item = to_item(record)
        key = {"image_id": record.image_id}
        for _ in range(10):
            current = self._call(
                self.table.get_item,
                Key=key,
                ConsistentRead=True,
                ProjectionExpression="#o, revision, deleted, backfill_run",
                ExpressionAttributeNames={"#o": "order"},
            ).get("Item")
            # The backfill run that last claimed the item: kept so a re-sent --all batch of
            # the same run is refused (rudolph/claims.py).
            run = (
                {"backfill_run": current["backfill_run"]}
                if current and "backfill_run" in current
                else {}
            )
            if current and (
                str(current["order"]) > order
                or (str(current["order"]) == order and current.get("deleted"))
            ):
                return None
            seen = current.get("revision") if current else None
            revision = int(seen) + 1 if seen is not None else 1
            if seen is not None:
                condition: dict[str, Any] = {
                    "ConditionExpression": "revision = :seen",
                    "ExpressionAttributeValues": {":seen": seen},
                }
            elif current:
                condition = {"ConditionExpression": "attribute_not_exists(revision)"}
            else:
                condition = {"ConditionExpression": "attribute_not_exists(image_id)"}
            try:
                self._call(
                    self.table.put_item,
                    Item={**item, **run, "order": order, "revision": revision},
                    **condition,
                )
            except _ConditionFailed:
                continue  # another write landed in between: decide again on what it left
            return revision
        raise StoreUnavailableError(
            f"{record.image_id}: the item kept changing under ten writes in a row; will retry"
        )

    def tombstone(self, ref: ObjectRef) -> int | None:
        """Replace the item by a deletion marker; its revision, or None when the item
        already reflects a newer event."""
        update = _Update()
        update.set("order", ref.order)
        update.set("deleted", True)
        update.set("expires_at", int(time.time()) + TOMBSTONE_DAYS * 86400)
        update.bump_revision()
        for attribute in (*_RECORD_FIELDS, "pending", "pending_since", "ref"):
            update.remove(attribute)
        condition = (
            f"attribute_not_exists(image_id) OR {update.name('order')} < {update.value(ref.order)}"
        )
        response = self._conditional(image_id(ref.bucket, ref.key), update, condition)
        return None if response is None else int(response["Attributes"]["revision"])

    def forget_pending(self, ref: ObjectRef) -> None:
        """Drop the pending item of an object that vanished before it could be analysed."""
        with contextlib.suppress(_ConditionFailed):
            self._call(
                self.table.delete_item,
                Key={"image_id": image_id(ref.bucket, ref.key)},
                ConditionExpression="#o = :o AND #s = :p",
                ExpressionAttributeNames={"#o": "order", "#s": "status"},
                ExpressionAttributeValues={":o": ref.order, ":p": PENDING},
            )

    def _conditional(
        self, key: str, update: _Update, condition: str, returns: str = "UPDATED_NEW"
    ) -> dict[str, Any] | None:
        """The UpdateItem response, or None when the condition did not hold."""
        try:
            response: dict[str, Any] = self._call(
                self.table.update_item, Key={"image_id": key}, **update.params(condition, returns)
            )
        except _ConditionFailed:
            return None
        return response

    # -- stuck work -----------------------------------------------------------------------

    def pending_since_before(self, cutoff: str) -> Iterator[tuple[ObjectRef, str]]:
        """(ref, pending_since) of records pending since before `cutoff` (ISO time)."""
        kwargs: dict[str, Any] = {
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "#p = :one AND #s < :cutoff",
            "ExpressionAttributeNames": {"#p": "pending", "#s": "pending_since"},
            "ExpressionAttributeValues": {":one": "1", ":cutoff": cutoff},
        }
        while True:
            page = self._call(self.table.query, **kwargs)
            for item in page.get("Items", []):
                yield ObjectRef.model_validate(_plain(item["ref"])), str(item["pending_since"])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def renew_pending(self, ref: ObjectRef, since: str) -> bool:
        """Restart the clock of a pending record, only if nobody did since we looked (so one
        of several reconcilers re-dispatches it)."""
        try:
            self._call(
                self.table.update_item,
                Key={"image_id": image_id(ref.bucket, ref.key)},
                UpdateExpression="SET #s = :now",
                ConditionExpression="#s = :since AND #o = :order",
                ExpressionAttributeNames={"#s": "pending_since", "#o": "order"},
                ExpressionAttributeValues={":now": _now(), ":since": since, ":order": ref.order},
            )
        except _ConditionFailed:
            return False
        return True

    # -- reads ----------------------------------------------------------------------------

    def get(self, image_id: str) -> Record | None:
        """The record of an image; None when there is none or it was deleted."""
        response = self._call(self.table.get_item, Key={"image_id": image_id}, ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item and not item.get("deleted") else None

    def order_of(self, image_id: str) -> str | None:
        """The event order the item of an image is at (consistent); None without an item."""
        item = self._call(
            self.table.get_item,
            Key={"image_id": image_id},
            ConsistentRead=True,
            ProjectionExpression="#o",
            ExpressionAttributeNames={"#o": "order"},
        ).get("Item")
        return str(item["order"]) if item and "order" in item else None

    def get_items(self, keys: Sequence[str], consistent: bool = False) -> list[dict[str, Any]]:
        """The items of these keys that exist, whole and as the table resource gives them
        (BatchGetItem, 100 keys a call): records, and people's items (rudolph/peoplestore.py)."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET):
            chunk = [{"image_id": {"S": k}} for k in keys[start : start + BATCH_GET]]
            request: dict[str, Any] = {self.table_name: {"Keys": chunk}}
            if consistent:
                request[self.table_name]["ConsistentRead"] = True
            items += map(from_attribute_values, self._batch_items(request))
        return items

    def get_many(self, image_ids: Sequence[str]) -> dict[str, Record]:
        """Image id -> record, for those that have one (the people page's portraits, not one
        read each)."""
        return {
            item["image_id"]: from_item(item)
            for item in self.get_items(image_ids)
            if not item.get("deleted") and not item.get("kind")
        }

    def count_records(self, buckets: Iterable[str] = ()) -> RecordCounts:
        """Records by status (every status present) and by bucket (every one of `buckets`
        present), deletion markers skipped, from one paginated Scan of three attributes."""
        by_status: Counter[str] = Counter({status: 0 for status in STATUSES})
        by_bucket: Counter[str] = Counter({bucket: 0 for bucket in buckets})
        kwargs: dict[str, Any] = {
            "ProjectionExpression": "#s, deleted, #b, #k",
            "ExpressionAttributeNames": {"#s": "status", "#b": "bucket", "#k": "kind"},
        }
        while True:
            page = self._call(self.table.scan, **kwargs)
            for item in page.get("Items", []):
                if not item.get("deleted") and not item.get("kind"):
                    by_status[str(item.get("status", "unknown"))] += 1
                    by_bucket[str(item.get("bucket", "unknown"))] += 1
            if "LastEvaluatedKey" not in page:
                return RecordCounts(dict(by_status), dict(by_bucket))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def states(self, image_ids: Sequence[str], features: bool = False) -> dict[str, ImageState]:
        """Image id -> what the table holds for it (ids it holds nothing for are absent), read
        in BatchGetItem chunks of 100 with the UnprocessedKeys retried a few rounds (ids still
        unprocessed after them are absent too: the claim decides). With `features`, which
        features each record analysed and which failed (for re-running one)."""
        found: dict[str, ImageState] = {}
        for start in range(0, len(image_ids), BATCH_GET):
            for item in self._batch_get(image_ids[start : start + BATCH_GET], features):
                state = ImageState.from_item(item)
                found[state.image_id] = state
        return found

    def _batch_get(self, ids: Sequence[str], features: bool) -> list[dict[str, Any]]:
        # A pending item's etag is in its ref (mark_pending), a record's at the top; the
        # event's fields rebuild a record's ref for re-runs.
        projection = "image_id, etag, #s, deleted, #r.etag, #o, event_time, sequencer, version_id"
        projection += ", #z"
        names = {"#s": "status", "#r": "ref", "#o": "order", "#z": "size"}
        if features:
            projection += ", #e, #a.versions"
            names.update({"#e": "errors", "#a": "analyzer"})
        request: dict[str, Any] = {
            self.table_name: {
                "Keys": [{"image_id": {"S": i}} for i in ids],
                "ProjectionExpression": projection,
                "ExpressionAttributeNames": names,
            }
        }
        return self._batch_items(request)

    def _batch_items(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The items of one BatchGetItem request (low-level form), its UnprocessedKeys asked
        again with backoff a few rounds."""
        items: list[dict[str, Any]] = []
        for attempt in range(MAX_BATCH_GET_ROUNDS):
            response = self._call(self.client.batch_get_item, RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(min(2.0, 0.05 * 2**attempt))
        return items

    def scan(self) -> Iterator[Record]:
        """Every record (not deletion markers), page by page."""
        kwargs: dict[str, Any] = {}
        while True:
            page = self._call(self.table.scan, **kwargs)
            for item in page.get("Items", []):
                # Persons and face assignments (rudolph/peoplestore.py) have a `kind`.
                if not item.get("deleted") and not item.get("kind"):
                    yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def drop_embeddings(self, image_id: str, faces: Sequence[int]) -> bool:
        """Remove the embeddings and FaceIds of some faces of a record (`rudolph people
        forget`); False when there is no such record. Bumps the revision, like every write
        of a record."""
        if not faces:
            return True
        update = _Update()
        update.bump_revision()
        faces_name, embedding = update.name("faces"), update.name("embedding")
        face_id = update.name("face_id")
        update.removes += [
            f"{faces_name}[{int(n)}].{field}"
            for n in sorted(set(faces))
            for field in (embedding, face_id)
        ]
        condition = f"attribute_exists(image_id) AND attribute_not_exists({update.name('deleted')})"
        return self._conditional(image_id, update, condition, returns="NONE") is not None

    def put(self, record: Record) -> None:
        """Write a record unconditionally (tests and tools; the fleet uses put_final)."""
        self._call(self.table.put_item, Item=to_item(record))

    def delete(self, image_id: str) -> None:
        self._call(self.table.delete_item, Key={"image_id": image_id})

    def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed from exc
            raise self._error(exc, code) from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"DynamoDB unreachable ({exc}); check RUDOLPH_AWS_ENDPOINT_URL and the network"
            ) from exc

    def _error(self, exc: ClientError, code: str) -> RudolphError:
        """The error of a failed call, by whether retrying can help."""
        message = exc.response["Error"].get("Message", "")
        table = self.table_name
        if code == "ResourceNotFoundException":
            return ConfigurationError(
                f"DynamoDB table {table!r} does not exist: run `rudolph init`, or set "
                "RUDOLPH_TABLE to the table's name"
            )
        if code in _DENIED:
            return ConfigurationError(
                f"DynamoDB refused access to table {table!r} ({code}: {message}): give this "
                "role the policy in deploy/ for its job, or check its credentials"
            )
        if code == "ValidationException" and "key" in message and "schema" in message:
            return ConfigurationError(
                f"DynamoDB table {table!r} is keyed otherwise than rudolph's tables ({message}): "
                "set RUDOLPH_TABLE to rudolph's table, or let `rudolph init` create one"
            )
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        if code in _THROTTLED or status >= 500:
            return StoreUnavailableError(f"DynamoDB {code}: {message} (table {table!r})")
        return StoreRefusedError(
            f"DynamoDB refused the request ({code}: {message}; table {table!r}): a record "
            "over 400 KB or an invalid value; writing it again will not help"
        )


# DynamoDB's answers that retrying later may turn into a success.
_THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TransactionConflictException",
    }
)
_DENIED = frozenset({"AccessDeniedException", "UnrecognizedClientException"})


@dataclass(frozen=True)
class ImageState:
    """What the table holds for one image, as far as deciding whether to (re)analyse it: its
    status, the etag it was analysed or claimed at, the event it was written for."""

    image_id: str
    status: str | None
    deleted: bool = False
    #: The record's etag, and the one in a pending claim's ref.
    etag: str | None = None
    claimed_etag: str | None = None
    order: str | None = None
    version_id: str | None = None
    event_time: str | None = None
    sequencer: str | None = None
    size: int | None = None
    #: Features the record has a result of (its analyzer versions), and those that failed.
    analysed: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ImageState:
        """From a low-level (attribute-value) item of `RecordStore._batch_get`."""

        def text(value: dict[str, Any] | None) -> str | None:
            found = (value or {}).get("S")
            return str(found) if found is not None else None

        ref = item.get("ref", {}).get("M", {})
        size = item.get("size", {}).get("N")
        versions = item.get("analyzer", {}).get("M", {}).get("versions", {}).get("M", {})
        return cls(
            image_id=str(item["image_id"]["S"]),
            status=text(item.get("status")),
            deleted=bool(item.get("deleted", {}).get("BOOL")),
            etag=text(item.get("etag")),
            claimed_etag=text(ref.get("etag")),
            order=text(item.get("order")),
            version_id=text(item.get("version_id")),
            event_time=text(item.get("event_time")),
            sequencer=text(item.get("sequencer")),
            size=int(size) if size is not None else None,
            analysed=frozenset(versions),
            failed=frozenset(item.get("errors", {}).get("M", {})),
        )

    @property
    def at_etag(self) -> str | None:
        """The object's etag the item is at (a record's, or else a pending claim's)."""
        return self.etag or self.claimed_etag

    def lacks(self, feature: str) -> bool:
        """A record without this feature's result, or with it failed (read with `features`)."""
        return feature in self.failed or feature not in self.analysed

    def stored_ref(self, bucket: str, key: str) -> ObjectRef | None:
        """The ref of the event the record was written for (its order is the stored one), or
        None when it cannot be rebuilt."""
        ref = ObjectRef(
            bucket=bucket,
            key=key,
            version_id=self.version_id,
            etag=self.etag,
            size=self.size,
            event_time=self.event_time,
            sequencer=self.sequencer,
        )
        return ref if ref.order == self.order else None


@dataclass(frozen=True)
class RecordCounts:
    by_status: dict[str, int]
    by_bucket: dict[str, int]


class _ConditionFailed(Exception):
    """A conditional write lost to a newer event (internal: callers get None or False)."""
