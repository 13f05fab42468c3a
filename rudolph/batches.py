"""Expanding a backfill batch in a worker (the `rudolph.backfill_batch` task): per ref the
door check, the claim (rudolph/claims.py) and the pipeline's publish, as the listener does.

The backfill process only lists, skips and publishes one such batch per up to `--batch` refs,
so its own cost per object is a fraction of a pipeline's publish and a DynamoDB write (the way
S3 Batch Operations hands a Lambda a batch of keys). Task ids of a pipeline derive from the
run id and the image (`claim_name`), so the backfill can follow done/failed without a reply.
A worker killed between a claim and its publish leaves that image pending: the redelivered
batch refuses it like a re-sent one, and `rudolph reconcile` sends it (its pending_since ages).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rudolph import claims, stages
from rudolph.analysis import feature_error
from rudolph.door import refusal
from rudolph.events import ObjectRef
from rudolph.publishing import CeleryPublisher
from rudolph.record import image_id
from rudolph.settings import Settings
from rudolph.store import RecordStore
from rudolph.vocabulary import Feature


def claim_name(ref: ObjectRef, run_id: str) -> str:
    """Names an image's pipeline in a run (its task ids derive from it)."""
    return f"{image_id(ref.bucket, ref.key)}@{run_id}"


def batch_item(ref: ObjectRef, kind: str) -> dict[str, Any]:
    """One ref of a batch; kind "new" (no item at this event yet) or "rerun" (analysed at
    exactly this event: --all, --missing)."""
    return {"ref": ref.model_dump(mode="json", exclude_none=True), "kind": kind}


def expand_batch(
    items: list[dict[str, Any]],
    features: tuple[Feature, ...],
    run_id: str,
    settings: Settings,
    publisher: CeleryPublisher,
    store: RecordStore | None = None,
) -> dict[str, int]:
    """Claim and publish each ref of a batch; counts of sent, refused, and not claimed
    (someone sent it already: a re-sent batch, the listener, a newer upload)."""
    store = store or RecordStore(settings)
    counts: Counter[str] = Counter()
    for entry in items:
        ref = ObjectRef.model_validate(entry["ref"])
        refused = refusal(ref, settings)
        if refused is not None:
            stages.reject(ref, feature_error(refused), settings)
            counts["refused"] += 1
            continue
        since = claims.now()
        if entry["kind"] == "rerun":
            claimed = claims.reclaim(store, ref, since, run_id)
        else:
            claimed = claims.claim_new(store, ref, since, run_id)
        if not claimed:
            counts["not claimed"] += 1
            continue
        publisher.created(ref, features, claim_name(ref, run_id), report=True)
        counts["sent"] += 1
    return dict(counts)
