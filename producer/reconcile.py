"""`rudolph reconcile`: dispatch again the images whose pipeline was lost.

A pipeline's tasks and join live in Redis; a Redis restarted without persistence, or an expired
result, loses it, and the image stays `pending`. Records pending longer than a threshold are
dispatched again (the listener also runs this periodically). Several reconcilers at once are
fine: each record's clock is restarted conditionally, so only one of them re-dispatches it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol

from rudolph.events import ObjectRef
from rudolph.store import RecordStore

log = logging.getLogger("rudolph.reconcile")


class PublishesPipelines(Protocol):
    def created(self, ref: ObjectRef) -> str: ...


def reconcile(store: RecordStore, publisher: PublishesPipelines, older_than: float) -> int:
    """Re-dispatch records pending for more than `older_than` seconds; how many."""
    cutoff = (datetime.now(UTC) - timedelta(seconds=older_than)).isoformat(timespec="milliseconds")
    count = 0
    for ref, since in store.pending_since_before(cutoff):
        if store.renew_pending(ref, since):
            publisher.created(ref)
            count += 1
            log.info("%s pending since %s: dispatched again", ref.uri, since)
    return count
