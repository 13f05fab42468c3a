"""`rudolph listen`: long-poll the SQS queue S3 notifies and enqueue one pipeline per image.

A message is deleted only after every pipeline in it was enqueued, so a crash in between
redelivers it (duplicates are the aggregate's problem, by design: S3 delivers at least once).
A message that cannot be parsed stays, and after the queue's maxReceiveCount SQS moves it to
the dead-letter queue. SIGTERM finishes the current batch, then exits.

Before dispatching, the image's record is claimed as `pending` for this event (conditional on
the event order): a duplicate or stale event claims nothing and dispatches nothing. Objects
refused at the door (empty, too large) get a failed record instead of a pipeline. Every
`reconcile_every` seconds the listener also re-dispatches records left pending too long.
A broker outage does not stop it: it waits, receiving nothing, until Redis answers again, then
releases the messages the outage left in hand (`_wait_for_broker`).
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from producer.reconcile import reconcile
from rudolph import aws, buckets
from rudolph.analysis import feature_error
from rudolph.door import refusal
from rudolph.errors import BrokerUnavailableError, MalformedEventError
from rudolph.events import (
    ObjectEvent,
    ObjectRef,
    has_image_suffix,
    is_image_content_type,
    parse_message,
)
from rudolph.settings import Settings
from rudolph.store import RecordStore

log = logging.getLogger("rudolph.listen")

WAIT_SECONDS = 20  # SQS long polling maximum: fewest empty receives
BATCH = 10  # SQS maximum per receive


RECONCILE_EVERY = 300.0
BROKER_WAIT_CAP = 30.0  # seconds between checks of a broker that is down


class Publisher(Protocol):
    """Where the listener sends work (rudolph.publishing.CeleryPublisher in the fleet)."""

    def created(self, ref: ObjectRef) -> str: ...

    def removed(self, ref: ObjectRef) -> str: ...

    def rejected(self, ref: ObjectRef, message: str) -> str: ...

    def reachable(self) -> bool: ...


@dataclass
class BatchStats:
    received: int = 0
    dispatched: int = 0
    removed: int = 0
    refused: int = 0
    duplicates: int = 0
    skipped: int = 0
    malformed: int = 0
    deleted: int = 0
    reasons: list[str] = field(default_factory=list)


class Listener:
    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        wait_seconds: int = WAIT_SECONDS,
        reconcile_every: float = RECONCILE_EVERY,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.wait_seconds = wait_seconds
        self.reconcile_every = reconcile_every
        self.store = RecordStore(settings)
        self._last_reconcile = time.monotonic()
        self.sqs = aws.client("sqs", settings)
        self.s3 = aws.client("s3", settings)
        self.queue_url: str = self.sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
        self.stopping = threading.Event()
        self._polling = False
        self._held: list[dict[str, Any]] = []

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Poll until SIGTERM or SIGINT; the batch in hand is always finished first."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        log.info("listening on %s for %s", self.queue_url, buckets.describe(self.settings.buckets))
        try:
            while not self.stopping.is_set():
                try:
                    self.poll_once()
                    if time.monotonic() - self._last_reconcile > self.reconcile_every:
                        self._last_reconcile = time.monotonic()
                        reconcile(self.store, self.publisher, self.settings.pending_after)
                except _Interrupted:
                    break
                except BrokerUnavailableError as exc:
                    self._wait_for_broker(exc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        # Waiting on an empty long poll holds no work: leave now rather than in up to 20 s.
        # Anything received but not yet handled becomes visible again after the timeout.
        if self._polling:
            raise _Interrupted

    def poll_once(self) -> BatchStats:
        self._polling = True
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=self.wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        finally:
            self._polling = False
        stats = BatchStats()
        messages = response.get("Messages", [])
        done: list[dict[str, Any]] = []
        try:
            for n, message in enumerate(messages):
                stats.received += 1
                try:
                    handled = self.handle(message, stats)
                except BrokerUnavailableError:
                    self._held = messages[n:]  # released once the broker is back
                    raise
                if handled:
                    done.append(message)
        finally:  # the broker failing mid-batch keeps only the messages not yet handled
            if done:
                stats.deleted = self._delete(done)
        return stats

    def _wait_for_broker(self, error: BrokerUnavailableError) -> None:
        """Wait, without receiving, until the broker answers again; then release the messages
        the outage left in hand, so they come back now instead of after the visibility timeout.

        Not receiving meanwhile costs each message one receive per outage, not one per retry,
        so a long outage does not walk good messages into the dead-letter queue.
        """
        held, self._held = self._held, []
        log.warning(
            "%s; %d message(s) wait in SQS; receiving again once the broker answers",
            error,
            len(held),
        )
        started = time.monotonic()
        for attempt in itertools.count():
            if self.stopping.wait(min(BROKER_WAIT_CAP, 2.0**attempt)):
                break
            if self.publisher.reachable():
                log.info("the broker answers again after %.0f s", time.monotonic() - started)
                break
        self._release(held)

    def _release(self, messages: list[dict[str, Any]]) -> None:
        """Make received messages visible again at once (one request; at most a batch)."""
        if not messages:
            return
        response = self.sqs.change_message_visibility_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, message in enumerate(messages)
            ],
        )
        # A message whose visibility timeout ran out meanwhile is simply back already.
        for failure in response.get("Failed", []):
            log.info("message %s not released (%s)", failure.get("Id"), failure.get("Code"))

    def _delete(self, messages: list[dict[str, Any]]) -> int:
        """Delete the handled messages in one request (SQS bills per request); how many went.

        One that fails to go comes back after the visibility timeout: an event already
        recorded claims nothing then (mark_pending), one still pending is analysed twice and
        written once. So a failure is logged, not retried here.
        """
        response = self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(messages)
            ],
        )
        for failure in response.get("Failed", []):
            log.warning(
                "message %s not deleted (%s: %s); it will be received again",
                messages[int(failure["Id"])].get("MessageId"),
                failure.get("Code"),
                failure.get("Message"),
            )
        return len(response.get("Successful", []))

    # -- one message ----------------------------------------------------------------------

    def handle(self, message: dict[str, Any], stats: BatchStats) -> bool:
        """Enqueue what the message asks for; True when it may be deleted."""
        try:
            events = parse_message(message.get("Body", ""))
        except MalformedEventError as exc:
            receives = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
            log.warning(
                "message %s left for the dead-letter queue (receive %s): %s",
                message.get("MessageId"),
                receives,
                exc,
            )
            stats.malformed += 1
            return False
        for event in events:
            self._route(event, stats)
        return True

    def _route(self, event: ObjectEvent, stats: BatchStats) -> None:
        ref = event.ref
        if not buckets.admitted(self.settings.buckets, ref.bucket, ref.key):
            self._skip(stats, self._not_watched(ref))
        elif event.kind == "removed":
            self.publisher.removed(ref)
            stats.removed += 1
            log.info("%s removed: forgetting it", ref.uri)
        elif not self._is_image(ref):
            self._skip(stats, f"{ref.uri}: not an image (by extension and content type)")
        elif (refused := refusal(ref, self.settings)) is not None:
            self.publisher.rejected(ref, feature_error(refused))
            stats.refused += 1
            log.info("%s refused: %s", ref.uri, refused)
        elif not self.store.mark_pending(ref):
            stats.duplicates += 1
            log.info("%s: this event or a newer one is already recorded; skipped", ref.uri)
        else:
            task_id = self.publisher.created(ref)
            stats.dispatched += 1
            log.info("%s: pipeline %s enqueued", ref.uri, task_id)

    def _not_watched(self, ref: ObjectRef) -> str:
        """Why the event is skipped, naming the setting that would admit it."""
        setting = self.settings.buckets_setting
        watched = buckets.describe(self.settings.buckets)
        if ref.bucket in buckets.names(self.settings.buckets):
            return (
                f"{ref.uri}: outside the prefix and suffixes {setting} gives its bucket "
                f"({watched}); widen that entry of RUDOLPH_BUCKETS to analyse it"
            )
        return (
            f"{ref.uri}: event for another bucket than the watched ones ({setting}: {watched}); "
            f"add {ref.bucket} to RUDOLPH_BUCKETS to analyse it"
        )

    def _is_image(self, ref: ObjectRef) -> bool:
        if has_image_suffix(ref.key):
            return True
        # No telling extension: ask S3 for the content type the uploader set.
        try:
            head = self.s3.head_object(Bucket=ref.bucket, Key=ref.key)
        except (ClientError, BotoCoreError):
            return False  # gone already, or unreadable: nothing to analyse
        return is_image_content_type(head.get("ContentType"))

    @staticmethod
    def _skip(stats: BatchStats, reason: str) -> None:
        stats.skipped += 1
        stats.reasons.append(reason)
        log.info("skipped %s", reason)


class _Interrupted(BaseException):
    """Raised by the signal handler to leave an idle long poll at once (a BaseException, so
    botocore's and urllib3's `except Exception` retry paths let it through)."""
