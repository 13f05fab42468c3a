"""What the backfill does with each listed image, from what the table holds for it
(`RecordStore.states`): skip it (and say why), publish it as new work, or rerun it at the
event its record was written for (`--all`, `--missing FEATURE`)."""

from __future__ import annotations

from dataclasses import dataclass

from producer.backfill.options import Options
from rudolph.events import ObjectRef
from rudolph.store import ImageState
from rudolph.vocabulary import FEATURES, FINAL_STATUSES, PENDING, Feature

PROCESSED = frozenset(FINAL_STATUSES)
# Claimed at this etag and not analysed yet: its pipeline is in flight (`reconcile` re-sends
# lost ones), so sending it again would only double the work.
IN_FLIGHT = PENDING


@dataclass(frozen=True)
class Work:
    ref: ObjectRef
    features: tuple[Feature, ...]
    kind: str  # "new" (no item at this event yet), "rerun" (analysed at it: reclaim)


def decide(options: Options, ref: ObjectRef, item: ImageState | None) -> Work | str:
    """What to do with a listed image, or why it is skipped."""
    present = item is not None and not item.deleted
    status = item.status if item and present else None
    etag = item.at_etag if item and present else None
    same = etag is not None and etag.strip('"') == ref.etag
    if same and status == IN_FLIGHT:
        return "in flight"
    processed = same and status in PROCESSED
    kind = "new"
    if options.missing:
        if not processed or item is None:
            return "not analysed yet (a run without --missing does that)"
        if not item.lacks(options.missing):
            return f"has {options.missing}"
        stored = item.stored_ref(ref.bucket, ref.key)
        if stored is None:
            return "stored event unknown (re-upload it)"
        return Work(stored, (options.missing,), "rerun")
    if processed and item is not None:
        if not options.force:
            return "already processed"
        stored = item.stored_ref(ref.bucket, ref.key)
        if stored is not None:
            return Work(stored, FEATURES, "rerun")
    return Work(ref, FEATURES, kind)
