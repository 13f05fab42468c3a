"""`rudolph init`: create, idempotently, everything the fleet needs.

The watched buckets; the SQS queue their events reach, with a dead-letter queue and a redrive
policy; the route of the events (rudolph/routes.py: S3 notifications, SNS or EventBridge, with
the policies that let only the buckets send); the DynamoDB table; the OpenSearch index behind
its alias. Running it again changes nothing that is already right.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from rudolph import aws
from rudolph.buckets import describe, names
from rudolph.facespace import face_space
from rudolph.index import SearchIndex
from rudolph.peoplestore import PeopleStore
from rudolph.routes import Route, connect
from rudolph.settings import Settings
from rudolph.store import PERSONS_INDEX, RecordStore

MAX_RECEIVES = 5  # then the message goes to the dead-letter queue
VISIBILITY_SECONDS = 120  # the listener enqueues within seconds; this is only a crash margin
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: time to look at what failed
MAX_MESSAGE_BYTES = 262_144  # S3 events are a few KB; SQS's maximum leaves room


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    try:
        url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:
        # An existing queue with other attributes: bring them in line.
        if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def ensure_bucket(s3: Any, settings: Settings) -> None:
    """Every watched bucket, created where missing (one of ours already there is fine)."""
    for name in names(settings.buckets):
        params: dict[str, Any] = {"Bucket": name}
        if settings.aws_region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
        try:
            s3.create_bucket(**params)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise


def ensure_queues(sqs: Any, settings: Settings) -> tuple[str, str]:
    """(queue URL, queue ARN) of the event queue, with its dead-letter queue; the policy of
    who may send to it is the event route's (rudolph/routes.py)."""
    dlq_url = _queue(
        sqs,
        f"{settings.queue_name}-dlq",
        {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
    )
    dlq_arn = _arn(sqs, dlq_url)
    attributes = {
        "VisibilityTimeout": str(VISIBILITY_SECONDS),
        "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
        "ReceiveMessageWaitTimeSeconds": "20",
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
        ),
    }
    url = _queue(sqs, settings.queue_name, attributes)
    return url, _arn(sqs, url)


def init(
    settings: Settings,
    say: Callable[[str], None] = print,
    route: Route = "s3",
    raw_delivery: bool = False,
) -> None:
    s3, sqs = aws.client("s3", settings), aws.client("sqs", settings)
    ensure_bucket(s3, settings)
    say(f"buckets      {describe(settings.buckets)}")
    url, arn = ensure_queues(sqs, settings)
    dlq = f"{settings.queue_name}-dlq"
    say(f"queue        {url} (dead letters: {dlq} after {MAX_RECEIVES} receives)")
    connect(settings, route, url, arn, raw_delivery=raw_delivery, say=say)
    records = RecordStore(settings)
    created = records.ensure()
    say(f"table        {settings.table} ({'created' if created else 'exists'})")
    for added in records.added_indexes:
        say(f"table index  {added} added")
    concrete = SearchIndex(settings).ensure()
    say(f"index        {settings.index} -> {concrete}")
    if settings.people_on:  # face vectors only with RUDOLPH_PEOPLE=on
        people = PeopleStore(settings, records)
        # Persons written before the `persons` index lack its key: one Scan, when it is new.
        if PERSONS_INDEX in records.added_indexes:
            say(f"persons      {people.mark_live()} given their state for the persons index")
        space = face_space(settings, people)
        say(f"faces        {space.ensure()}, RUDOLPH_PEOPLE=on")
