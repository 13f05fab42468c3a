"""How S3 events reach the SQS queue, set up by `rudolph init --events ROUTE`, idempotently.

- `s3`: each bucket's event notifications send to the queue; the queue policy lets only the
  buckets send.
- `sns`: each bucket's notifications publish to a topic (its policy lets only the buckets, of
  this account, publish); the queue is subscribed to the topic (raw delivery optional) and its
  policy lets only the topic send. Other queues may subscribe to the same topic (fan-out).
- `eventbridge`: each bucket sends all its events to EventBridge; a rule on the default bus
  matches the buckets' Object Created / Object Deleted events and targets the queue, whose
  policy lets only that rule send. Other rules may route the same events elsewhere.

Whichever route, the bucket notification rudolph owns is the one with Id `rudolph`; the
bucket's other notifications are kept. Prefix and suffix filters of RUDOLPH_BUCKETS are applied
by the listener, not at the source (S3's filters cannot express several prefixes per target).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from rudolph import aws
from rudolph.buckets import names
from rudolph.errors import EventRouteError
from rudolph.settings import Settings

Route = Literal["s3", "sns", "eventbridge"]
ROUTES: tuple[Route, ...] = ("s3", "sns", "eventbridge")
NOTIFICATION_ID = "rudolph"
S3_EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
EVENTBRIDGE_DETAIL_TYPES = ["Object Created", "Object Deleted"]
# The service principal that delivers to the queue, by route.
_SENDERS: dict[Route, str] = {
    "s3": "s3.amazonaws.com",
    "sns": "sns.amazonaws.com",
    "eventbridge": "events.amazonaws.com",
}


def topic_name(settings: Settings) -> str:
    return f"{settings.queue_name}-topic"


def rule_name(settings: Settings) -> str:
    return f"{settings.queue_name}-rule"


def bucket_arns(settings: Settings) -> list[str]:
    return [f"arn:aws:s3:::{name}" for name in names(settings.buckets)]


def _account(queue_arn: str) -> str:
    # arn:aws:sqs:REGION:ACCOUNT:NAME: the account that owns the queue owns the route too.
    return queue_arn.split(":")[4]


def _policy(sid: str, service: str, action: str, resource: str, condition: dict[str, Any]) -> str:
    statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": action,
        "Resource": resource,
        "Condition": condition,
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _source(arns: list[str]) -> str | list[str]:
    # One ARN stays a string: a one-bucket policy reads as it always did.
    return arns[0] if len(arns) == 1 else arns


def allow_queue_senders(
    sqs: Any, queue_url: str, queue_arn: str, route: Route, source: list[str]
) -> None:
    """The queue policy: only the route's sender (the buckets, the topic, the rule) may send."""
    service = _SENDERS[route]
    condition = {"ArnLike" if route == "s3" else "ArnEquals": {"aws:SourceArn": _source(source)}}
    policy = _policy(f"rudolph-{route}-events", service, "sqs:SendMessage", queue_arn, condition)
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})


def put_bucket_notification(
    s3: Any, bucket: str, route: Route, target_arn: str | None = None
) -> None:
    """The bucket's rudolph notification for the route, keeping every other notification."""
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    # put_bucket_notification_configuration replaces all: drop only rudolph's own entries.
    for kind in ("QueueConfigurations", "TopicConfigurations"):
        kept = [c for c in current.get(kind, []) if c.get("Id") != NOTIFICATION_ID]
        if kept:
            current[kind] = kept
        else:
            current.pop(kind, None)
    if route == "s3":
        current["QueueConfigurations"] = [
            *current.get("QueueConfigurations", []),
            {"Id": NOTIFICATION_ID, "QueueArn": target_arn, "Events": S3_EVENTS},
        ]
    elif route == "sns":
        current["TopicConfigurations"] = [
            *current.get("TopicConfigurations", []),
            {"Id": NOTIFICATION_ID, "TopicArn": target_arn, "Events": S3_EVENTS},
        ]
    else:  # S3 sends every event of the bucket to EventBridge; rules pick theirs
        current["EventBridgeConfiguration"] = {}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=current)


def ensure_topic(sns: Any, settings: Settings, queue_arn: str) -> str:
    """The topic the buckets publish to, with a policy that lets only them (in this account)."""
    topic_arn: str = sns.create_topic(Name=topic_name(settings))["TopicArn"]
    condition = {
        "ArnLike": {"aws:SourceArn": _source(bucket_arns(settings))},
        "StringEquals": {"aws:SourceAccount": _account(queue_arn)},
    }
    policy = _policy("rudolph-s3-publish", "s3.amazonaws.com", "SNS:Publish", topic_arn, condition)
    sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy", AttributeValue=policy)
    return topic_arn


def ensure_subscription(sns: Any, topic_arn: str, queue_arn: str, raw: bool) -> str:
    """The queue's subscription to the topic, with raw delivery as asked (set, not re-made)."""
    raw_value = "true" if raw else "false"
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    for page in pages:
        for subscription in page["Subscriptions"]:
            if subscription["Protocol"] == "sqs" and subscription["Endpoint"] == queue_arn:
                arn: str = subscription["SubscriptionArn"]
                sns.set_subscription_attributes(
                    SubscriptionArn=arn,
                    AttributeName="RawMessageDelivery",
                    AttributeValue=raw_value,
                )
                return arn
    arn = sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": raw_value},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return arn


def ensure_rule(events: Any, settings: Settings, queue_arn: str) -> str:
    """The rule on the default bus that sends the buckets' object events to the queue."""
    pattern = {
        "source": ["aws.s3"],
        "detail-type": EVENTBRIDGE_DETAIL_TYPES,
        "detail": {"bucket": {"name": names(settings.buckets)}},
    }
    rule_arn: str = events.put_rule(
        Name=rule_name(settings),
        EventPattern=json.dumps(pattern),
        State="ENABLED",
        Description="rudolph: S3 object events of the watched buckets to the SQS queue",
    )["RuleArn"]
    response = events.put_targets(
        Rule=rule_name(settings), Targets=[{"Id": "rudolph-queue", "Arn": queue_arn}]
    )
    if response.get("FailedEntryCount"):
        failure = response["FailedEntries"][0]
        raise EventRouteError(
            f"EventBridge refused the queue as the target of {rule_name(settings)}: "
            f"{failure.get('ErrorCode')}: {failure.get('ErrorMessage')} (check that "
            f"{queue_arn} is a queue of this account and region, then run init again)"
        )
    return rule_arn


def connect(
    settings: Settings,
    route: Route,
    queue_url: str,
    queue_arn: str,
    raw_delivery: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """Route the watched buckets' events to the queue by `route`."""
    s3, sqs = aws.client("s3", settings), aws.client("sqs", settings)
    buckets = names(settings.buckets)
    if route == "s3":
        # The policy first: S3 checks it may send when the notification is put.
        allow_queue_senders(sqs, queue_url, queue_arn, route, bucket_arns(settings))
        for bucket in buckets:
            put_bucket_notification(s3, bucket, route, queue_arn)
        say(f"notifications {', '.join(S3_EVENTS)} of {', '.join(buckets)} -> queue")
    elif route == "sns":
        sns = aws.client("sns", settings)
        topic_arn = ensure_topic(sns, settings, queue_arn)
        allow_queue_senders(sqs, queue_url, queue_arn, route, [topic_arn])
        ensure_subscription(sns, topic_arn, queue_arn, raw_delivery)
        for bucket in buckets:
            put_bucket_notification(s3, bucket, route, topic_arn)
        raw = "raw delivery" if raw_delivery else "SNS envelope"
        say(f"notifications {', '.join(S3_EVENTS)} of {', '.join(buckets)} -> topic")
        say(f"topic        {topic_arn} -> queue ({raw})")
    else:
        rule_arn = ensure_rule(aws.client("events", settings), settings, queue_arn)
        allow_queue_senders(sqs, queue_url, queue_arn, route, [rule_arn])
        for bucket in buckets:
            put_bucket_notification(s3, bucket, route)
        say(f"eventbridge  {', '.join(buckets)} -> default bus")
        say(f"rule         {rule_arn} (Object Created, Object Deleted) -> queue")
