"""`rudolph backfill s3://bucket[/prefix]`: feed objects already in a bucket into the pipeline.

The listing is streamed page by page (never held whole). Per page, the table is asked in
BatchGetItem chunks of 100 which images were already analysed at the same etag (skipped unless
`force`); the rest go through the listener's path: refused at the door -> `rejected`, else
claimed with `mark_pending` and dispatched with `created`. Before each enqueue batch the
Celery queues' total depth is checked against `max_queued` (backpressure); `rate` spaces the
enqueues. After each page the last key handled is written atomically to a checkpoint, from
which `resume` restarts the listing (S3's StartAfter).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rudolph import aws
from rudolph.analysis import feature_error
from rudolph.door import refusal
from rudolph.events import ObjectRef, has_image_suffix
from rudolph.record import image_id
from rudolph.settings import Settings
from rudolph.store import RecordStore

PROCESSED = frozenset({"done", "partial", "failed"})
# Claimed at this etag and not analysed yet: its pipeline is in flight (`reconcile` re-sends
# lost ones), so sending it again would only double the work.
IN_FLIGHT = "pending"
BATCH_GET = 100  # DynamoDB BatchGetItem maximum
POLL_SECONDS = 0.5
MAX_BATCH_GET_ROUNDS = 10


class Dispatcher(Protocol):
    def created(self, ref: ObjectRef) -> str: ...

    def rejected(self, ref: ObjectRef, message: str) -> str: ...


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket[/prefix] -> (bucket, prefix)."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not s3://bucket[/prefix]")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{url!r} names no bucket")
    return bucket, prefix


def default_checkpoint(bucket: str, prefix: str, directory: Path = Path(".rudolph")) -> Path:
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:12]
    return directory / f"backfill-{bucket}-{digest}.json"


def event_time(modified: datetime) -> str:
    """LastModified in S3 event time format (2026-01-02T03:04:05.678Z)."""
    modified = modified.astimezone(UTC)
    return modified.strftime("%Y-%m-%dT%H:%M:%S.") + f"{modified.microsecond // 1000:03d}Z"


@dataclass
class Options:
    bucket: str
    prefix: str = ""
    suffixes: tuple[str, ...] = ()
    modified_since: datetime | None = None
    max_size: int | None = None
    force: bool = False
    dry_run: bool = False
    max_queued: int = 1000
    rate: float | None = None
    checkpoint: Path | None = None
    resume: bool = False
    page_size: int = 1000
    batch: int = 10


@dataclass
class Report:
    listed: int = 0
    enqueued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    last_key: str | None = None
    started_after: str | None = None
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.enqueued / self.seconds if self.seconds > 0 else 0.0


def read_checkpoint(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    last = data.get("last_key")
    return str(last) if last else None


def write_checkpoint(path: Path, options: Options, last_key: str | None, done: bool) -> None:
    """Atomically: a temporary file in the same directory, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "bucket": options.bucket,
        "prefix": options.prefix,
        "last_key": last_key,
        "complete": done,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _celery_depth() -> int:
    from rudolph import operations

    return sum(operations.queue_depths().values())


class Backfill:
    def __init__(
        self,
        settings: Settings,
        options: Options,
        dispatcher: Dispatcher | None = None,
        depth: Callable[[], int] = _celery_depth,
        progress: Callable[[Report], None] | None = None,
        max_wait: float | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.depth = depth
        self.progress = progress or (lambda _: None)
        self.max_wait = max_wait
        self.s3 = aws.client("s3", settings)
        self.dynamodb = aws.client("dynamodb", settings)
        self.store = RecordStore(settings, self.dynamodb)
        if dispatcher is None and not options.dry_run:
            from producer.pipeline import CeleryDispatcher

            dispatcher = CeleryDispatcher()
        self.dispatcher = dispatcher
        self.report = Report()
        self._started = 0.0
        self._next_enqueue = 0.0
        #: Set (e.g. by a SIGINT handler) to stop cleanly at the next object.
        self.stopping = threading.Event()

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Report:
        """List, filter, skip, claim and dispatch; KeyboardInterrupt saves the checkpoint and
        propagates (the report says how far it went)."""
        options = self.options
        self._started = time.monotonic()
        start_after = None
        if options.resume and options.checkpoint is not None:
            start_after = read_checkpoint(options.checkpoint)
        self.report.started_after = start_after
        self.report.last_key = start_after
        try:
            for page in self._pages(start_after):
                self._page(page)
                self._save(done=False)
                self._tick()
            self._save(done=True)
        except KeyboardInterrupt:
            self.report.interrupted = True
            self._save(done=False)
            raise
        finally:
            self._tick()
        return self.report

    def _tick(self) -> None:
        self.report.seconds = time.monotonic() - self._started
        self.progress(self.report)

    def _save(self, done: bool) -> None:
        if self.options.checkpoint is not None and not self.options.dry_run:
            write_checkpoint(self.options.checkpoint, self.options, self.report.last_key, done)

    def _pages(self, start_after: str | None) -> Iterator[list[dict[str, Any]]]:
        kwargs: dict[str, Any] = {
            "Bucket": self.options.bucket,
            "Prefix": self.options.prefix,
            "PaginationConfig": {"PageSize": self.options.page_size},
        }
        if start_after:
            kwargs["StartAfter"] = start_after
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kwargs):
            yield list(page.get("Contents", []))

    def _page(self, objects: list[dict[str, Any]]) -> None:
        report = self.report
        report.listed += len(objects)
        candidates: list[ObjectRef] = []
        for obj in objects:
            reason = self._filtered(obj)
            if reason:
                report.skipped[reason] += 1
            else:
                candidates.append(self._ref(obj))
        if not self.options.force:
            seen = self._processed({image_id(r.bucket, r.key): r.etag for r in candidates})
            kept = []
            for ref in candidates:
                status = seen.get(image_id(ref.bucket, ref.key))
                if status is None:
                    kept.append(ref)
                else:
                    report.skipped["in flight" if status == IN_FLIGHT else "already processed"] += 1
            candidates = kept
        size = max(1, self.options.batch)
        for start in range(0, len(candidates), size):
            if not self.options.dry_run:
                self._wait_for_room()
            for ref in candidates[start : start + size]:
                if self.stopping.is_set():
                    raise KeyboardInterrupt
                self._one(ref)
                report.last_key = ref.key  # only once dispatched: resume never skips it
        if objects:
            report.last_key = str(objects[-1]["Key"])

    def _filtered(self, obj: dict[str, Any]) -> str | None:
        key = str(obj["Key"])
        options = self.options
        if key.endswith("/") or not has_image_suffix(key):
            return "not an image"
        if options.suffixes and not key.lower().endswith(options.suffixes):
            return "suffix filter"
        if options.max_size is not None and int(obj.get("Size", 0)) > options.max_size:
            return "over --max-size"
        modified = obj.get("LastModified")
        if options.modified_since is not None and modified and modified < options.modified_since:
            return "modified before --modified-since"
        return None

    def _ref(self, obj: dict[str, Any]) -> ObjectRef:
        etag = obj.get("ETag")
        modified = obj.get("LastModified")
        return ObjectRef(
            bucket=self.options.bucket,
            key=str(obj["Key"]),
            etag=str(etag).strip('"') if etag else None,
            size=obj.get("Size"),
            event_time=event_time(modified) if modified else None,
        )

    def _processed(self, etags: dict[str, str | None]) -> dict[str, str]:
        """Image id -> status, for items (not deleted) with the same etag that were analysed
        already or are in flight."""
        seen: dict[str, str] = {}
        ids = list(etags)
        for start in range(0, len(ids), BATCH_GET):
            for item in self._batch_get(ids[start : start + BATCH_GET]):
                key = item["image_id"]["S"]
                if item.get("deleted", {}).get("BOOL"):
                    continue
                etag = item.get("etag", {}).get("S") or (
                    item.get("ref", {}).get("M", {}).get("etag", {}).get("S")
                )
                status = item.get("status", {}).get("S")
                same = etag is not None and etag.strip('"') == etags.get(key)
                if same and status is not None and (status in PROCESSED or status == IN_FLIGHT):
                    seen[key] = status
        return seen

    def _batch_get(self, ids: list[str]) -> Iterable[dict[str, Any]]:
        request: dict[str, Any] = {
            self.settings.table: {
                "Keys": [{"image_id": {"S": i}} for i in ids],
                # A pending item's etag is in its ref (mark_pending), a record's at the top.
                "ProjectionExpression": "image_id, etag, #s, deleted, #r.etag",
                "ExpressionAttributeNames": {"#s": "status", "#r": "ref"},
            }
        }
        items: list[dict[str, Any]] = []
        for attempt in range(MAX_BATCH_GET_ROUNDS):
            response = self.dynamodb.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.settings.table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(min(2.0, 0.05 * 2**attempt))
        # Still unprocessed after the retries: treat as not processed (mark_pending decides).
        return items

    def _one(self, ref: ObjectRef) -> None:
        report = self.report
        refused = refusal(ref, self.settings)
        if refused is not None:
            report.skipped["refused at the door"] += 1
            if self.dispatcher is not None and not self.options.dry_run:
                self._space()
                self.dispatcher.rejected(ref, feature_error(refused))
            return
        if self.options.dry_run:
            report.enqueued += 1
            return
        # Paced before the claim: nothing waits (or stops) between a claim and its dispatch.
        self._space()
        if not self.store.mark_pending(ref):
            report.skipped["already recorded (same or newer event)"] += 1
            return
        assert self.dispatcher is not None
        self.dispatcher.created(ref)
        report.enqueued += 1

    # -- pacing -----------------------------------------------------------------------------

    def _space(self) -> None:
        if not self.options.rate:
            return
        now = time.monotonic()
        if now < self._next_enqueue:
            if self.stopping.wait(self._next_enqueue - now):
                raise KeyboardInterrupt
            now = self._next_enqueue
        self._next_enqueue = now + 1.0 / self.options.rate

    def _wait_for_room(self) -> None:
        """Block while the Celery queues hold more than max_queued messages."""
        deadline = None if self.max_wait is None else time.monotonic() + self.max_wait
        while self.depth() > self.options.max_queued:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Celery queues stayed over {self.options.max_queued} messages "
                    f"for {self.max_wait:g} s"
                )
            self._tick()
            if self.stopping.wait(POLL_SECONDS):
                raise KeyboardInterrupt
