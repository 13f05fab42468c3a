"""`rudolph init`: create, idempotently, everything the fleet needs.

The bucket; the SQS queue S3 notifies, with a dead-letter queue, a redrive policy and a policy
that lets only this bucket send; the bucket's event notifications; the DynamoDB table; the
OpenSearch index behind its alias. Running it again changes nothing that is already right.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from rudolph import aws
from rudolph.index import SearchIndex
from rudolph.settings import Settings
from rudolph.store import RecordStore

MAX_RECEIVES = 5  # then the message goes to the dead-letter queue
VISIBILITY_SECONDS = 120  # the listener enqueues within seconds; this is only a crash margin
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: time to look at what failed
MAX_MESSAGE_BYTES = 262_144  # S3 events are a few KB; SQS's maximum leaves room
NOTIFICATION_ID = "rudolph"


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
    params: dict[str, Any] = {"Bucket": settings.bucket}
    if settings.aws_region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
    try:
        s3.create_bucket(**params)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise


def ensure_queues(sqs: Any, settings: Settings) -> tuple[str, str]:
    """(queue URL, queue ARN) of the event queue, with its dead-letter queue."""
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
    arn = _arn(sqs, url)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "rudolph-s3-events",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{settings.bucket}"}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url, arn


def ensure_notifications(s3: Any, settings: Settings, queue_arn: str) -> None:
    current = s3.get_bucket_notification_configuration(Bucket=settings.bucket)
    current.pop("ResponseMetadata", None)
    # Keep the bucket's other notifications: put_bucket_notification_configuration replaces all.
    queues = [q for q in current.get("QueueConfigurations", []) if q.get("Id") != NOTIFICATION_ID]
    queues.append(
        {
            "Id": NOTIFICATION_ID,
            "QueueArn": queue_arn,
            "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
        }
    )
    current["QueueConfigurations"] = queues
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket, NotificationConfiguration=current
    )


def init(settings: Settings, say: Callable[[str], None] = print) -> None:
    s3, sqs = aws.client("s3", settings), aws.client("sqs", settings)
    ensure_bucket(s3, settings)
    say(f"bucket       s3://{settings.bucket}")
    url, arn = ensure_queues(sqs, settings)
    dlq = f"{settings.queue_name}-dlq"
    say(f"queue        {url} (dead letters: {dlq} after {MAX_RECEIVES} receives)")
    ensure_notifications(s3, settings, arn)
    say("notifications s3:ObjectCreated:*, s3:ObjectRemoved:* -> queue")
    created = RecordStore(settings).ensure()
    say(f"table        {settings.table} ({'created' if created else 'exists'})")
    concrete = SearchIndex(settings).ensure()
    say(f"index        {settings.index} -> {concrete}")
