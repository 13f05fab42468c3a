"""The fleet's words, spelled once: the features, the Celery queues and task names, and the
statuses of a record. Celery's queues and routes (celeryconfig.py), the CLI's choices,
`rudolph status`, the publisher and the tests all derive from these.

Task names are the wire protocol between producers and workers: producers publish by name,
so neither side imports the other's code.
"""

from __future__ import annotations

from typing import Literal

Feature = Literal["labels", "text", "faces"]
FEATURES: tuple[Feature, ...] = ("labels", "text", "faces")

#: The queue of the bookkeeping tasks: aggregate, remove, reject and backfill batches.
AGGREGATE_QUEUE = "aggregate"
#: Every Celery queue: one per feature, so each scales and is rate-limited on its own.
QUEUES: tuple[str, ...] = (*FEATURES, AGGREGATE_QUEUE)

#: The SQS queues an operator may name (`rudolph purge`): S3's events and their dead letters.
SQS_QUEUES: tuple[str, ...] = ("events", "dead-letters")

AGGREGATE_TASK = "rudolph.aggregate"
REMOVE_TASK = "rudolph.remove"
REJECT_TASK = "rudolph.reject"
BACKFILL_BATCH_TASK = "rudolph.backfill_batch"


def feature_task(feature: Feature) -> str:
    """The name of the task that runs one feature (on the queue of the same name)."""
    return f"rudolph.{feature}"


#: Task name -> the queue it runs on.
TASK_QUEUES: dict[str, str] = {
    **{feature_task(feature): feature for feature in FEATURES},
    AGGREGATE_TASK: AGGREGATE_QUEUE,
    REMOVE_TASK: AGGREGATE_QUEUE,
    REJECT_TASK: AGGREGATE_QUEUE,
    # Bookkeeping like the aggregate: it needs no queue of its own to plumb through.
    BACKFILL_BATCH_TASK: AGGREGATE_QUEUE,
}

Status = Literal["done", "partial", "failed", "pending"]
#: Every requested feature succeeded.
DONE: Status = "done"
#: Some features failed, some succeeded (the record's `errors` say which).
PARTIAL: Status = "partial"
#: Every requested feature failed, or the door refused the object.
FAILED: Status = "failed"
#: Claimed, its pipeline published and not finished yet.
PENDING: Status = "pending"
#: A record's status once its pipeline finished: such records are indexed and searchable.
FINAL_STATUSES: tuple[Status, ...] = (DONE, PARTIAL, FAILED)
STATUSES: tuple[Status, ...] = (*FINAL_STATUSES, PENDING)
