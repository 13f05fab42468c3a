"""`rudolph init --events s3|sns|eventbridge` against moto's server, end to end: objects put in
two buckets reach the queue by each route, and the bodies moto delivers parse into the events.

moto 5.2.5 delivers all three routes in server mode (S3 -> SQS; S3 -> SNS -> SQS, enveloped or
raw; S3 -> EventBridge -> rule pattern -> SQS), but enforces no resource policy: that only the
buckets, the topic or the rule may send is checked here on the policies init writes, and the
calls are checked against the real API models in tests/test_event_routes_stubbed.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from typing import Any

import pytest

from rudolph import aws, devstack
from rudolph.events import ObjectEvent, parse_message
from rudolph.provision import ensure_bucket, ensure_queues
from rudolph.routes import Route, connect, rule_name, topic_name
from rudolph.settings import Settings
from tests.fleet import RUDOLPH


def _settings(moto_url: str) -> Settings:
    name = f"t-{uuid.uuid4().hex[:8]}"
    return Settings.from_env(
        {
            "RUDOLPH_AWS_ENDPOINT_URL": moto_url,
            "RUDOLPH_BUCKETS": f"{name}-a, s3://{name}-b/in/ *.png",
            "RUDOLPH_QUEUE_NAME": name,
        }
    )


def _provision(settings: Settings, route: Route, raw: bool = False) -> tuple[str, str]:
    url, arn = ensure_queues(aws.client("sqs", settings), settings)
    ensure_bucket(aws.client("s3", settings), settings)
    said: list[str] = []
    connect(settings, route, url, arn, raw_delivery=raw, say=said.append)
    assert said
    return url, arn


def _receive(settings: Settings, url: str, wanted: int, timeout: float = 20.0) -> list[str]:
    """Message bodies, until `wanted` object events are in (or AssertionError)."""
    sqs = aws.client("sqs", settings)
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    while sum(len(parse_message(b)) for b in bodies) < wanted:
        assert time.monotonic() < deadline, f"only {bodies} within {timeout:.0f} s"
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _put_and_delete(settings: Settings) -> None:
    s3 = aws.client("s3", settings)
    a, b = (f.name for f in settings.buckets)
    s3.put_object(Bucket=a, Key="red car + été.jpg", Body=b"one")
    s3.put_object(Bucket=b, Key="in/two.png", Body=b"two!")
    s3.delete_object(Bucket=a, Key="red car + été.jpg")


def _check_events(settings: Settings, events: list[ObjectEvent]) -> None:
    a, b = (f.name for f in settings.buckets)
    # (moto gives a removed object's size, S3 none: only created sizes are compared)
    seen = sorted(
        (e.kind, e.ref.bucket, e.ref.key, e.ref.size if e.kind == "created" else 0) for e in events
    )
    assert seen == sorted(
        [
            ("created", a, "red car + été.jpg", 3),
            ("created", b, "in/two.png", 4),
            ("removed", a, "red car + été.jpg", 0),
        ]
    ), seen


def _policy(settings: Settings, url: str) -> dict[str, Any]:
    attributes = aws.client("sqs", settings).get_queue_attributes(
        QueueUrl=url, AttributeNames=["Policy"]
    )["Attributes"]
    (statement,) = json.loads(attributes["Policy"])["Statement"]
    return dict(statement)


def _rudolph_notifications(settings: Settings, bucket: str) -> dict[str, Any]:
    config = aws.client("s3", settings).get_bucket_notification_configuration(Bucket=bucket)
    return {
        kind: [c for c in config.get(kind, []) if c.get("Id") == "rudolph"]
        for kind in ("QueueConfigurations", "TopicConfigurations")
    }


def _deliver(
    moto_url: str, route: Route, raw: bool = False
) -> tuple[Settings, str, str, list[str]]:
    """Provision the route for two new buckets, put, put and delete there: (settings, queue
    URL, queue ARN, the bodies that reached the queue), their events checked."""
    settings = _settings(moto_url)
    url, arn = _provision(settings, route, raw=raw)
    _put_and_delete(settings)
    bodies = _receive(settings, url, wanted=3)
    _check_events(settings, [e for body in bodies for e in parse_message(body)])
    return settings, url, arn, bodies


def test_s3_route(moto_url: str) -> None:
    settings, url, _, bodies = _deliver(moto_url, "s3")
    assert all("Records" in json.loads(b) or "Event" in json.loads(b) for b in bodies)
    statement = _policy(settings, url)
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert sorted(statement["Condition"]["ArnLike"]["aws:SourceArn"]) == [
        f"arn:aws:s3:::{f.name}" for f in settings.buckets
    ]


@pytest.mark.parametrize("raw", [False, True], ids=["envelope", "raw"])
def test_sns_route(moto_url: str, raw: bool) -> None:
    settings, url, arn, bodies = _deliver(moto_url, "sns", raw=raw)
    envelopes = [json.loads(b).get("Type") == "Notification" for b in bodies]
    assert all(envelopes) if not raw else not any(envelopes)

    sns = aws.client("sns", settings)
    topic_arn = sns.create_topic(Name=topic_name(settings))["TopicArn"]
    statement = _policy(settings, url)
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": topic_arn}}
    topic_policy = json.loads(sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"])
    (publish,) = topic_policy["Statement"]
    assert publish["Principal"] == {"Service": "s3.amazonaws.com"}
    assert publish["Action"] == "SNS:Publish"
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": arn.split(":")[4]}


def test_eventbridge_route(moto_url: str) -> None:
    settings, url, _, bodies = _deliver(moto_url, "eventbridge")
    assert all(json.loads(b)["source"] == "aws.s3" for b in bodies)

    events = aws.client("events", settings)
    rule = events.describe_rule(Name=rule_name(settings))
    statement = _policy(settings, url)
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule["Arn"]}}
    assert json.loads(rule["EventPattern"])["detail"] == {
        "bucket": {"name": [f.name for f in settings.buckets]}
    }


def test_eventbridge_rule_ignores_other_buckets(moto_url: str) -> None:
    settings = _settings(moto_url)
    url, _ = _provision(settings, "eventbridge")
    other = _settings(moto_url)
    ensure_bucket(aws.client("s3", other), other)
    s3 = aws.client("s3", settings)
    for bucket in (f.name for f in other.buckets):
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        s3.put_object(Bucket=bucket, Key="elsewhere.jpg", Body=b"x")
    s3.put_object(Bucket=settings.bucket, Key="here.jpg", Body=b"x")
    (body,) = _receive(settings, url, wanted=1)
    assert parse_message(body)[0].ref.bucket == settings.bucket


@pytest.mark.parametrize("route", ["s3", "sns", "eventbridge"])
def test_init_twice_and_switching_routes_leave_one_route(moto_url: str, route: Route) -> None:
    """Idempotent: again, nothing is added; from another route, its notification is gone."""
    settings = _settings(moto_url)
    s3 = aws.client("s3", settings)
    for bucket in (f.name for f in settings.buckets):  # someone else's notification stays
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "audit",
                        "QueueArn": "arn:aws:sqs:us-east-1:123456789012:audit",
                        "Events": ["s3:ObjectRemoved:*"],
                    }
                ]
            },
        )
    previous: Route = "sns" if route == "s3" else "s3"
    _provision(settings, previous)
    _provision(settings, route)
    _provision(settings, route, raw=route == "sns")
    for bucket in (f.name for f in settings.buckets):
        mine = _rudolph_notifications(settings, bucket)
        assert len(mine["QueueConfigurations"]) == (route == "s3")
        assert len(mine["TopicConfigurations"]) == (route == "sns")
        # (moto's GetBucketNotificationConfiguration never shows EventBridgeConfiguration,
        # though it delivers: test_eventbridge_route; the put is checked in the Stubber test)
        config = s3.get_bucket_notification_configuration(Bucket=bucket)
        assert [c["Id"] for c in config["QueueConfigurations"] if c["Id"] == "audit"] == ["audit"]
    if route == "sns":
        sns = aws.client("sns", settings)
        topic_arn = sns.create_topic(Name=topic_name(settings))["TopicArn"]
        (subscription,) = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        attributes = sns.get_subscription_attributes(
            SubscriptionArn=subscription["SubscriptionArn"]
        )["Attributes"]
        assert attributes["RawMessageDelivery"] == "true"
    if route == "eventbridge":
        targets = aws.client("events", settings).list_targets_by_rule(Rule=rule_name(settings))
        assert len(targets["Targets"]) == 1


def test_the_init_command(moto_url: str, opensearch_url: str, redis_url: str) -> None:
    """`rudolph init --events eventbridge`, twice, as an operator runs it; a flag of another
    route is refused with what to do."""
    name = f"t{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **devstack.stack_env(moto_url, opensearch_url, redis_url, name),
        "RUDOLPH_BUCKETS": f"{name}, {name}-b",
    }

    def init(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RUDOLPH, "init", *args], env=env, capture_output=True, text=True, timeout=120
        )

    for _ in range(2):
        done = init("--events", "eventbridge")
        assert done.returncode == 0, done.stderr
        assert f"eventbridge  {name}, {name}-b -> default bus" in done.stdout, done.stdout
        assert f"rule/{name}-rule (Object Created, Object Deleted) -> queue" in done.stdout
    refused = init("--events", "s3", "--raw-delivery")
    assert refused.returncode == 2 and "only applies with --events sns" in refused.stderr
