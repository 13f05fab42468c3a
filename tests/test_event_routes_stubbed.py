"""The calls `rudolph init --events sns|eventbridge` makes, checked by botocore's Stubber against
the real API models (parameter names, types, required members), which moto's server does not
check: no AWS is reached. Deliveries themselves are tested on moto in test_event_routes.py."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from rudolph import routes
from rudolph.errors import EventRouteError
from rudolph.settings import Settings

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/rudolph-events"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:rudolph-events"
RULE_ARN = "arn:aws:events:eu-west-1:123456789012:rule/rudolph-events-rule"
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:rudolph-events-topic"
SETTINGS = Settings.from_env(
    {"AWS_REGION": "eu-west-1", "RUDOLPH_BUCKETS": "photos-a, s3://photos-b/in/ *.jpg"}
)
OTHER = {
    "QueueConfigurations": [
        {"Id": "audit", "QueueArn": "arn:aws:sqs:eu-west-1:123456789012:audit",
         "Events": ["s3:ObjectRemoved:*"]},
        {"Id": "rudolph", "QueueArn": QUEUE_ARN, "Events": routes.S3_EVENTS},
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    """One for the module: its clients share the API models it loaded (0.3 s a test each)."""
    return boto3.session.Session()


@pytest.fixture
def stubs(
    session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Stubber]]:
    clients = {
        name: session.client(
            name, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        for name in ("s3", "sqs", "sns", "events")
    }
    stubbers = {name: Stubber(client) for name, client in clients.items()}
    monkeypatch.setattr(routes.aws, "client", lambda service, settings: clients[service])
    for stubber in stubbers.values():
        stubber.activate()
    yield stubbers
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def _expect_notifications(s3: Stubber, extra: dict[str, Any]) -> None:
    """Each bucket: read, then put back the others' entries plus the route's."""
    for bucket in ("photos-a", "photos-b"):
        # (a copy: the stubbed response is the very dict the code gets, and changes)
        s3.add_response(
            "get_bucket_notification_configuration", copy.deepcopy(OTHER), {"Bucket": bucket}
        )
        kept = {"QueueConfigurations": OTHER["QueueConfigurations"][:1]}
        configuration = kept | extra
        if "QueueConfigurations" in extra:
            configuration["QueueConfigurations"] = (
                kept["QueueConfigurations"] + extra["QueueConfigurations"]
            )
        s3.add_response(
            "put_bucket_notification_configuration",
            {},
            {"Bucket": bucket, "NotificationConfiguration": configuration},
        )


def _allow(
    sid: str, service: str, action: str, resource: str, condition: dict[str, Any]
) -> dict[str, Any]:
    """The one-statement resource policy init should write, spelled out."""
    statement = {"Sid": sid, "Effect": "Allow", "Principal": {"Service": service},
                 "Action": action, "Resource": resource, "Condition": condition}  # fmt: skip
    return {"Version": "2012-10-17", "Statement": [statement]}


def test_eventbridge_route_calls(stubs: dict[str, Stubber]) -> None:
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": ["photos-a", "photos-b"]}},
    }
    stubs["events"].add_response(
        "put_rule",
        {"RuleArn": RULE_ARN},
        {
            "Name": "rudolph-events-rule",
            "EventPattern": json.dumps(pattern),
            "State": "ENABLED",
            "Description": ANY,
        },
    )
    stubs["events"].add_response(
        "put_targets",
        {"FailedEntryCount": 0, "FailedEntries": []},
        {"Rule": "rudolph-events-rule", "Targets": [{"Id": "rudolph-queue", "Arn": QUEUE_ARN}]},
    )
    policy = _allow(
        "rudolph-eventbridge-events", "events.amazonaws.com", "sqs:SendMessage", QUEUE_ARN,
        {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
    )  # fmt: skip
    stubs["sqs"].add_response(
        "set_queue_attributes",
        {},
        {"QueueUrl": QUEUE_URL, "Attributes": {"Policy": json.dumps(policy)}},
    )
    _expect_notifications(stubs["s3"], {"EventBridgeConfiguration": {}})
    said: list[str] = []
    routes.connect(SETTINGS, "eventbridge", QUEUE_URL, QUEUE_ARN, say=said.append)
    assert any(RULE_ARN in line for line in said)


def test_eventbridge_target_refused_says_why(stubs: dict[str, Stubber]) -> None:
    stubs["events"].add_response("put_rule", {"RuleArn": RULE_ARN}, None)
    stubs["events"].add_response(
        "put_targets",
        {
            "FailedEntryCount": 1,
            "FailedEntries": [
                {"TargetId": "rudolph-queue", "ErrorCode": "X", "ErrorMessage": "no"}
            ],
        },
        None,
    )
    with pytest.raises(EventRouteError, match=r"EventBridge refused the queue.*X: no"):
        routes.connect(SETTINGS, "eventbridge", QUEUE_URL, QUEUE_ARN, say=lambda _: None)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "already-subscribed"])
def test_sns_route_calls(stubs: dict[str, Stubber], existing: bool) -> None:
    sns = stubs["sns"]
    sns.add_response("create_topic", {"TopicArn": TOPIC_ARN}, {"Name": "rudolph-events-topic"})
    topic_policy = _allow(
        "rudolph-s3-publish", "s3.amazonaws.com", "SNS:Publish", TOPIC_ARN,
        {"ArnLike": {"aws:SourceArn": ["arn:aws:s3:::photos-a", "arn:aws:s3:::photos-b"]},
         "StringEquals": {"aws:SourceAccount": "123456789012"}},
    )  # fmt: skip
    sns.add_response(
        "set_topic_attributes",
        {},
        {
            "TopicArn": TOPIC_ARN,
            "AttributeName": "Policy",
            "AttributeValue": json.dumps(topic_policy),
        },
    )
    stubs["sqs"].add_response(
        "set_queue_attributes", {}, {"QueueUrl": QUEUE_URL, "Attributes": ANY}
    )
    subscription = f"{TOPIC_ARN}:c7fe3a54-ab0e-4ec2-88e0-db410a0f2bee"
    listed = [
        {"SubscriptionArn": subscription, "Owner": "123456789012", "Protocol": "sqs",
         "Endpoint": QUEUE_ARN, "TopicArn": TOPIC_ARN}
    ] if existing else []  # fmt: skip
    sns.add_response(
        "list_subscriptions_by_topic", {"Subscriptions": listed}, {"TopicArn": TOPIC_ARN}
    )
    if existing:
        sns.add_response(
            "set_subscription_attributes",
            {},
            {
                "SubscriptionArn": subscription,
                "AttributeName": "RawMessageDelivery",
                "AttributeValue": "true",
            },
        )
    else:
        sns.add_response(
            "subscribe",
            {"SubscriptionArn": subscription},
            {
                "TopicArn": TOPIC_ARN,
                "Protocol": "sqs",
                "Endpoint": QUEUE_ARN,
                "Attributes": {"RawMessageDelivery": "true"},
                "ReturnSubscriptionArn": True,
            },
        )
    _expect_notifications(
        stubs["s3"],
        {
            "TopicConfigurations": [
                {"Id": "rudolph", "TopicArn": TOPIC_ARN, "Events": routes.S3_EVENTS}
            ]
        },
    )
    routes.connect(SETTINGS, "sns", QUEUE_URL, QUEUE_ARN, raw_delivery=True, say=lambda _: None)
