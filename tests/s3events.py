"""S3 event notification bodies, as S3 sends them to SQS, for tests that write the queue."""

from __future__ import annotations

import json
from typing import Any


def s3_event(
    bucket: str,
    key: str,
    name: str = "ObjectCreated:Put",
    event_time: str | None = "2026-11-25T12:00:00.000Z",
    **obj: Any,
) -> str:
    """One-record message body; `key` goes in as given (S3 encodes it with quote_plus)."""
    return json.dumps({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "eventTime": event_time,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, **obj}},
    }]})  # fmt: skip


def eventbridge_event(
    bucket: str,
    key: str,
    detail_type: str = "Object Created",
    time: str = "2026-11-25T12:00:00Z",
    **obj: Any,
) -> str:
    """An EventBridge event from aws.s3 as its rule delivers it to SQS (`key` not encoded)."""
    return json.dumps({
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type, "source": "aws.s3", "account": "123456789012",
        "time": time, "region": "us-east-1", "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, **obj},
                   "reason": "PutObject" if detail_type == "Object Created" else "DeleteObject"},
    })  # fmt: skip


def sns_envelope(message: str, topic: str = "arn:aws:sns:us-east-1:123456789012:t") -> str:
    """`message` as SNS delivers it to an SQS subscriber without raw delivery."""
    return json.dumps({
        "Type": "Notification", "MessageId": "63a3f6b6-d533-4a47-aef9-fcf5cf758c76",
        "TopicArn": topic, "Message": message, "Timestamp": "2026-11-25T12:00:00.901Z",
        "SignatureVersion": "1", "Signature": "EXAMPLE",
    })  # fmt: skip
