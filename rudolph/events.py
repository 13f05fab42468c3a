"""S3 event notifications (as SQS delivers them) parsed into the references tasks carry.

Task messages carry an `ObjectRef` (bucket, key, etag, version, event time), never image bytes.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, ValidationError

from rudolph.errors import MalformedEventError
from rudolph.source import S3Location

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})


class ObjectRef(BaseModel):
    """Which object version an analysis is about; JSON-serialisable for Celery messages."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    event_time: str | None = None
    sequencer: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def order(self) -> str:
        """Sorts the events of one key by when they happened.

        S3's `sequencer` is a hex string that grows per key; sequencers of different lengths
        compare after right-padding the shorter with zeros (S3 User Guide, event ordering).
        Without one (emulators), the event time, then the etag, decide.
        """
        if self.sequencer:
            return "s" + self.sequencer.upper().ljust(32, "0")
        return f"t{self.event_time or ''}|{self.etag or ''}"

    def location(self) -> S3Location:
        return S3Location(self.bucket, self.key, self.version_id, self.size)


class ObjectEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["created", "removed"]
    name: str  # S3's eventName, e.g. ObjectCreated:Put
    ref: ObjectRef


def has_image_suffix(key: str) -> bool:
    return PurePosixPath(key).suffix.lower() in IMAGE_SUFFIXES


def is_image_content_type(content_type: str | None) -> bool:
    return bool(content_type) and str(content_type).lower().startswith("image/")


def _record_event(record: dict[str, Any]) -> ObjectEvent | None:
    name = str(record.get("eventName", ""))
    if name.startswith("ObjectCreated:"):
        kind: Literal["created", "removed"] = "created"
    elif name.startswith("ObjectRemoved:"):
        kind = "removed"
    else:
        return None  # restore, replication, lifecycle...: nothing for rudolph to do
    s3 = record["s3"]
    obj = s3["object"]
    etag = obj.get("eTag") or obj.get("etag")
    return ObjectEvent(
        kind=kind,
        name=name,
        ref=ObjectRef(
            bucket=s3["bucket"]["name"],
            # S3 URL-encodes keys in events with quote_plus: "red car.jpg" -> "red+car.jpg".
            key=unquote_plus(obj["key"]),
            version_id=obj.get("versionId") or None,
            etag=etag.strip('"') if etag else None,
            size=obj.get("size"),
            event_time=record.get("eventTime"),
            sequencer=obj.get("sequencer"),
        ),
    )


def parse_message(body: str) -> list[ObjectEvent]:
    """The object events in one SQS message body; [] for S3's test event.

    Raises MalformedEventError for anything that is not an S3 event notification.
    """
    try:
        message = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise MalformedEventError(
            f"message body is not JSON ({exc}): only S3 event notifications belong on this queue"
        ) from None
    if not isinstance(message, dict):
        raise MalformedEventError("message body is JSON but not an object: not an S3 event")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise MalformedEventError(
            "message has no 'Records' list: not an S3 event notification "
            "(SNS- or EventBridge-wrapped events need raw message delivery)"
        )
    events = []
    for i, record in enumerate(records):
        try:
            event = _record_event(record)
        except (KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise MalformedEventError(
                f"record {i} is not a well-formed S3 event (missing or bad {exc})"
            ) from None
        if event is not None:
            events.append(event)
    return events
