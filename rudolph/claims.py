"""The backfill's claims: the pending item a backfill batch task writes before it publishes an
image's pipeline. Each is conditional, so a batch re-sent after a crash (the checkpoint is
written after each batch is published) sends nothing twice:

- `claim_new`: no item, or one of an older event (the batched read saw none, or another
  etag). A conditional PutItem when there is no item (moto spends a quarter of an UpdateItem's
  CPU on it), else an UpdateItem conditional on the stored order being older. An item already
  at this event (pending, or analysed since) is refused: someone sent it.
- `reclaim`: re-running an image analysed at this very event (`--all`, `--missing`):
  conditional on the item still being at that order, not pending, and not already claimed by
  this backfill run (`backfill_run`, kept by `RecordStore.put_final`), so a re-sent ref of the
  same run is refused even after its pipeline finished.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from rudolph.events import ObjectRef
from rudolph.record import image_id
from rudolph.store import RecordStore
from rudolph.vocabulary import PENDING


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _conflict(exc: ClientError) -> bool:
    code: str | None = exc.response.get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"


def _pending(ref: ObjectRef, since: str, run_id: str) -> dict[str, Any]:
    return {
        "bucket": ref.bucket,
        "key": ref.key,
        "status": PENDING,
        "order": ref.order,
        "pending": "1",
        "pending_since": since,
        "ref": ref.model_dump(mode="json", exclude_none=True),
        "backfill_run": run_id,
    }


def claim_new(store: RecordStore, ref: ObjectRef, since: str, run_id: str) -> bool:
    """Claim an image whose item is absent or of an older event; False when the item is at
    this event or a newer one already."""
    attributes = _pending(ref, since, run_id)
    try:
        store.table.put_item(
            Item={"image_id": image_id(ref.bucket, ref.key), **attributes, "revision": 1},
            ConditionExpression="attribute_not_exists(image_id)",
        )
        return True
    except ClientError as exc:
        if not _conflict(exc):
            raise
    names = {f"#a{n}": name for n, name in enumerate(attributes)}
    values = {f":a{n}": value for n, value in enumerate(attributes.values())}
    sets = ", ".join(f"#a{n} = :a{n}" for n in range(len(attributes)))
    try:
        store.table.update_item(
            Key={"image_id": image_id(ref.bucket, ref.key)},
            UpdateExpression=f"SET {sets}, revision = if_not_exists(revision, :zero) + :one "
            "REMOVE deleted, expires_at",
            ConditionExpression="#o < :order",
            ExpressionAttributeNames={**names, "#o": "order"},
            ExpressionAttributeValues={**values, ":order": ref.order, ":zero": 0, ":one": 1},
        )
    except ClientError as exc:
        if not _conflict(exc):
            raise
        return False
    return True


def reclaim(store: RecordStore, ref: ObjectRef, since: str, run_id: str) -> bool:
    """Claim an image analysed at exactly this event again (ref.order is the stored order);
    False when a newer event, a pending pipeline or this very run owns it."""
    try:
        store.table.update_item(
            Key={"image_id": image_id(ref.bucket, ref.key)},
            UpdateExpression=(
                "SET #s = :pending, pending = :one, pending_since = :since, #r = :ref, "
                "backfill_run = :run, revision = if_not_exists(revision, :zero) + :one_n"
            ),
            ConditionExpression=(
                "#o = :order AND #s <> :pending AND attribute_not_exists(deleted) "
                "AND (attribute_not_exists(backfill_run) OR backfill_run <> :run)"
            ),
            ExpressionAttributeNames={"#s": "status", "#o": "order", "#r": "ref"},
            ExpressionAttributeValues={
                ":pending": PENDING,
                ":one": "1",
                ":since": since,
                ":ref": ref.model_dump(mode="json", exclude_none=True),
                ":run": run_id,
                ":order": ref.order,
                ":zero": 0,
                ":one_n": 1,
            },
        )
    except ClientError as exc:
        if not _conflict(exc):
            raise
        return False
    return True
