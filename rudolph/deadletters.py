"""`rudolph dlq`: what sits in the dead-letter queue, why, and moving it back.

SQS moves a message of the event queue to `<queue>-dlq` after `MAX_RECEIVES` receives that did
not delete it: the listener could not parse it (it is not an S3 event notification), or it
parsed but its pipelines could not be enqueued (the broker or DynamoDB was down). Each message
is parsed again here with the listener's own parser, so the listing says which of the two.

Looking never loses a message: messages are received with a short visibility timeout, never
deleted, and made visible again as soon as they have been read. (Looking counts as a receive:
SQS's ApproximateReceiveCount grows by one per look.)

Redriving moves every message back to the event queue by hand: SendMessage to the event queue,
then DeleteMessage from the dead-letter queue only once the send succeeded, so a failure in
between duplicates a message (which the listener and the table's ordered writes absorb) but
never loses one. SQS's own StartMessageMoveTask would move them server-side, but moto 5.2.5
(the local stack and the tests) does not implement it (it answers 500), and moving by hand
also tells, message by message, which ones are still malformed and will come back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from rudolph import aws
from rudolph.errors import ConfigurationError, MalformedEventError
from rudolph.events import parse_message
from rudolph.settings import Settings

#: The reason given for a message that parses: it was never the message's fault.
PARSED_FINE = "parsed fine: it failed to enqueue (broker down?) — redrive it"
#: How long a looked-at message stays hidden if we die before making it visible again.
PEEK_VISIBILITY = 30
#: How long a message being moved stays hidden (if the send fails it comes back then).
MOVE_VISIBILITY = 60
#: Long-poll wait per receive: long polling asks every SQS server, so an empty answer means
#: the queue is empty (a short poll samples only some servers).
RECEIVE_WAIT = 1
#: Upper bound of one listing or redrive, whatever the queue holds.
DEFAULT_TIMEOUT = 600.0
PREVIEW_CHARS = 80
_BATCH = 10  # SQS maximum per receive and per batch call


def dlq_name(settings: Settings) -> str:
    return f"{settings.queue_name}-dlq"


def diagnose(body: str) -> tuple[str, bool]:
    """(why the message is in the dead-letter queue, whether it is malformed)."""
    try:
        parse_message(body)
    except MalformedEventError as exc:
        return str(exc), True
    return PARSED_FINE, False


def _preview(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _sent_at(millis: str | None) -> str | None:
    if not millis:
        return None
    try:
        moment = datetime.fromtimestamp(int(millis) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="seconds")


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    #: When the message was first sent (to the event queue: SQS keeps it across the move).
    sent_at: str | None
    #: SQS's ApproximateReceiveCount, including the look that produced this listing.
    receive_count: int | None
    body: str
    reason: str
    malformed: bool

    @property
    def preview(self) -> str:
        return _preview(self.body)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> DeadLetter:
        attributes = message.get("Attributes", {})
        body = str(message.get("Body", ""))
        reason, malformed = diagnose(body)
        count = attributes.get("ApproximateReceiveCount")
        return cls(
            message_id=str(message.get("MessageId", "?")),
            sent_at=_sent_at(attributes.get("SentTimestamp")),
            receive_count=int(count) if count and str(count).isdigit() else None,
            body=body,
            reason=reason,
            malformed=malformed,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "sent_at": self.sent_at,
            "receive_count": self.receive_count,
            "preview": self.preview,
            "reason": self.reason,
            "malformed": self.malformed,
            "body": self.body,
        }


@dataclass
class RedriveReport:
    moved: int = 0
    #: Ids (in the dead-letter queue) of moved messages that are still malformed: the
    #: listener will reject them again and SQS will move them back after MAX_RECEIVES.
    still_malformed: list[str] = field(default_factory=list)
    #: (message id, what went wrong) of messages left in the dead-letter queue.
    failed: list[tuple[str, str]] = field(default_factory=list)


class DeadLetterQueue:
    """The event queue's dead-letter queue, and the way back to the event queue."""

    def __init__(self, settings: Settings, sqs: Any = None) -> None:
        self.settings = settings
        self.sqs = sqs or aws.client("sqs", settings)
        self.name = dlq_name(settings)
        self._urls: dict[str, str] = {}

    def _url(self, name: str) -> str:
        if name not in self._urls:
            try:
                self._urls[name] = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    raise
                raise ConfigurationError(
                    f"SQS queue {name!r} does not exist: run `rudolph init`, or set "
                    "RUDOLPH_QUEUE_NAME to the event queue's name"
                ) from None
        return self._urls[name]

    @property
    def url(self) -> str:
        return self._url(self.name)

    @property
    def source_url(self) -> str:
        return self._url(self.settings.queue_name)

    def approximate_count(self) -> int:
        """Messages in the dead-letter queue, visible or not (SQS's approximation)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def _receive(self, count: int, visibility: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(_BATCH, count)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=RECEIVE_WAIT,
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _release(self, handles: list[str]) -> None:
        """Make received messages visible again now (else they are after their timeout)."""
        for start in range(0, len(handles), _BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + _BATCH])
            ]
            # Best effort: a message not released reappears after its visibility timeout.
            with contextlib.suppress(ClientError):
                self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)

    def _received(
        self, limit: int | None, visibility: int, timeout: float
    ) -> Iterator[dict[str, Any]]:
        """Distinct messages of the dead-letter queue, at most `limit`, for `timeout` s."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while (limit is None or len(seen) < limit) and time.monotonic() < deadline:
            wanted = _BATCH if limit is None else limit - len(seen)
            messages = self._receive(wanted, visibility)
            if not messages:
                return
            for message in messages:
                message_id = str(message.get("MessageId"))
                if message_id in seen:  # a visibility timeout ran out during a long run
                    continue
                seen.add(message_id)
                yield message

    def peek(self, limit: int | None = 100, timeout: float = DEFAULT_TIMEOUT) -> list[DeadLetter]:
        """The messages in the dead-letter queue (at most `limit`), oldest first, left there."""
        handles: list[str] = []
        letters: list[DeadLetter] = []
        try:
            for message in self._received(limit, PEEK_VISIBILITY, timeout):
                handles.append(message["ReceiptHandle"])
                letters.append(DeadLetter.from_message(message))
        finally:
            self._release(handles)
        return sorted(letters, key=lambda letter: (letter.sent_at or "", letter.message_id))

    def redrive(
        self,
        limit: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        on_move: Callable[[DeadLetter], None] | None = None,
    ) -> RedriveReport:
        """Move the dead-letter queue's messages (at most `limit`) back to the event queue."""
        report = RedriveReport()
        unsent: list[str] = []
        try:
            for message in self._received(limit, MOVE_VISIBILITY, timeout):
                letter = DeadLetter.from_message(message)
                send: dict[str, Any] = {"QueueUrl": self.source_url, "MessageBody": letter.body}
                if message.get("MessageAttributes"):
                    send["MessageAttributes"] = message["MessageAttributes"]
                try:
                    self.sqs.send_message(**send)
                except ClientError as exc:
                    # Stays in the dead-letter queue; released below rather than received
                    # again in this run.
                    unsent.append(message["ReceiptHandle"])
                    report.failed.append((letter.message_id, f"not sent: {exc}"))
                    continue
                try:
                    self.sqs.delete_message(
                        QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"]
                    )
                except ClientError as exc:
                    # Sent but not deleted: it will be in both queues (a duplicate, not a loss).
                    report.failed.append((letter.message_id, f"sent, but not deleted: {exc}"))
                report.moved += 1
                if letter.malformed:
                    report.still_malformed.append(letter.message_id)
                if on_move is not None:
                    on_move(letter)
        finally:
            self._release(unsent)
        return report
