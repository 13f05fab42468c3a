"""S3 object events, in every shape they reach the SQS queue, parsed into the references
tasks carry.

Three shapes of message body become the same `ObjectEvent`s:
- an S3 event notification (`{"Records": [...]}`), sent by S3 itself, or by SNS with raw
  message delivery; keys are URL-encoded (quote_plus);
- an SNS notification envelope (`{"Type": "Notification", "Message": "<one of the others>"}`);
- an EventBridge event from `aws.s3` (`detail-type` "Object Created" / "Object Deleted"); keys
  are not encoded.
S3's `s3:TestEvent` and SNS's subscription (un)confirmations are recognised and dropped.
Task messages carry an `ObjectRef` (bucket, key, etag, version, event time), never image bytes.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, ValidationError

from rudolph.errors import MalformedEventError
from rudolph.source import S3Location

log = logging.getLogger("rudolph.events")

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


Kind = Literal["created", "removed"]


class ObjectEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    name: str  # S3's eventName, e.g. ObjectCreated:Put (EventBridge: ...:PutObject)
    ref: ObjectRef


def has_image_suffix(key: str) -> bool:
    return PurePosixPath(key).suffix.lower() in IMAGE_SUFFIXES


def is_image_content_type(content_type: str | None) -> bool:
    return bool(content_type) and str(content_type).lower().startswith("image/")


# EventBridge detail-types of aws.s3 that matter here; the others (restore, tags, ACL, storage
# class) are nothing for rudolph to do, like the same S3 notification event types.
_EVENTBRIDGE_KINDS: dict[str, Kind] = {"Object Created": "created", "Object Deleted": "removed"}
# SNS messages that carry no event: sent when a subscription is made or removed.
_SNS_CONFIRMATIONS = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})
_SHAPES = (
    "an S3 event notification ('Records'), an SNS notification whose 'Message' holds one, "
    "or an EventBridge event from aws.s3"
)


def _etag(value: object) -> str | None:
    return str(value).strip('"') if value else None


def _record_event(record: dict[str, Any]) -> ObjectEvent | None:
    name = str(record.get("eventName", ""))
    if name.startswith("ObjectCreated:"):
        kind: Kind = "created"
    elif name.startswith("ObjectRemoved:"):
        kind = "removed"
    else:
        return None  # restore, replication, lifecycle...: nothing for rudolph to do
    s3 = record["s3"]
    obj = s3["object"]
    return ObjectEvent(
        kind=kind,
        name=name,
        ref=ObjectRef(
            bucket=s3["bucket"]["name"],
            # S3 URL-encodes keys in events with quote_plus: "red car.jpg" -> "red+car.jpg".
            key=unquote_plus(obj["key"]),
            version_id=obj.get("versionId") or None,
            etag=_etag(obj.get("eTag") or obj.get("etag")),
            size=obj.get("size"),
            event_time=record.get("eventTime"),
            sequencer=obj.get("sequencer"),
        ),
    )


def _records_events(records: object) -> list[ObjectEvent]:
    if not isinstance(records, list):
        raise MalformedEventError(f"'Records' is not a list: not {_SHAPES}")
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


def _event_time(value: object) -> str | None:
    """EventBridge's `time` (ISO 8601); an emulator's epoch seconds become the same form."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None  # no time rather than a dead letter: ordering has the sequencer
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return str(value) if value else None


def _eventbridge_event(message: dict[str, Any]) -> list[ObjectEvent]:
    detail_type = str(message.get("detail-type"))
    kind = _EVENTBRIDGE_KINDS.get(detail_type)
    if kind is None:
        log.info("dropped an EventBridge %r event: nothing for rudolph to do", detail_type)
        return []
    try:
        detail = message["detail"]
        obj = detail["object"]
        key = obj["key"]
        if not isinstance(key, str):
            raise TypeError("'key'")
        # EventBridge's `reason` (PutObject, DeleteObject...) stands in for the S3 verb.
        verb = "ObjectCreated" if kind == "created" else "ObjectRemoved"
        event = ObjectEvent(
            kind=kind,
            name=f"{verb}:{detail.get('reason') or detail_type}",
            ref=ObjectRef(
                bucket=detail["bucket"]["name"],
                key=key,  # EventBridge does not URL-encode keys
                version_id=obj.get("version-id") or None,
                etag=_etag(obj.get("etag")),
                size=obj.get("size"),
                event_time=_event_time(message.get("time")),
                sequencer=obj.get("sequencer"),
            ),
        )
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise MalformedEventError(
            f"EventBridge {detail_type!r} event is not well-formed (missing or bad {exc})"
        ) from None
    return [event]


def _json_object(text: object, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)  # type: ignore[arg-type]
    except (json.JSONDecodeError, TypeError) as exc:
        raise MalformedEventError(
            f"{what} is not JSON ({exc}): only S3 object events belong on this queue"
        ) from None
    except RecursionError:  # thousands of nested brackets: a hostile body, not an event
        raise MalformedEventError(f"{what} nests too deep to be an S3 object event") from None
    if not isinstance(value, dict):
        raise MalformedEventError(f"{what} is JSON but not an object: not {_SHAPES}")
    return value


def _events(message: dict[str, Any], inside_sns: bool) -> list[ObjectEvent]:
    if message.get("Event") == "s3:TestEvent":
        log.info("dropped S3's test event for bucket %r", message.get("Bucket"))
        return []
    if "Records" in message:
        return _records_events(message["Records"])
    if message.get("source") == "aws.s3" and "detail-type" in message:
        return _eventbridge_event(message)
    sns_type = message.get("Type")
    if not inside_sns and "TopicArn" in message and sns_type in _SNS_CONFIRMATIONS:
        log.info("dropped an SNS %s from %s", sns_type, message.get("TopicArn"))
        return []
    if not inside_sns and sns_type == "Notification" and "Message" in message:
        inner = _json_object(
            message["Message"], f"SNS notification from {message.get('TopicArn')}'s Message"
        )
        return _events(inner, inside_sns=True)
    where = "the SNS notification's Message" if inside_sns else "the message"
    raise MalformedEventError(
        f"{where} is not {_SHAPES} (keys: {', '.join(sorted(map(str, message))[:8]) or 'none'}); "
        "point only S3, its SNS topic or its EventBridge rule at this queue"
    )


def parse_message(body: str) -> list[ObjectEvent]:
    """The object events in one SQS message body, whichever route it came by; [] for S3's
    test event and SNS subscription confirmations.

    Raises MalformedEventError for anything else: it is left for the dead-letter queue.
    """
    return _events(_json_object(body, "message body"), inside_sns=False)
