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
