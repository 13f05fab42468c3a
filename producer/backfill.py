"""`rudolph backfill s3://bucket[/prefix]`: feed objects already in a bucket into the pipeline.

The listing (or an S3 Inventory report, `inventory`) is streamed page by page, never held
whole. Per page, the table is asked in BatchGetItem chunks of 100 what it holds for each image:
images analysed at the same etag are skipped (re-run with `force`; `missing` re-runs one
feature where it is absent or failed), pending ones are in flight. The rest are published in
batches of up to `batch` refs, one light `rudolph.backfill_batch` task each (aggregate queue), which
a worker expands: door check, conditional claim, pipeline (rudolph/batches.py). Before each
batch the Celery queues' depth plus the refs of batches not expanded yet is held under
`max_queued` (backpressure); `rate` spaces the objects. After each batch the last key sent is
written atomically to the checkpoint (with the run id), from which `resume` restarts: a crash
re-sends at most the batches after it, and their claims refuse what was sent already.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producer import inventory
from rudolph import aws, buckets
from rudolph.batches import batch_item, claim_name
from rudolph.door import refusal
from rudolph.events import ObjectRef, has_image_suffix
from rudolph.record import image_id
from rudolph.settings import FEATURES, Feature, Settings
from rudolph.store import ImageState, RecordStore
from rudolph.vocabulary import FINAL_STATUSES, PENDING

log = logging.getLogger("rudolph.backfill")

PROCESSED = frozenset(FINAL_STATUSES)
# Claimed at this etag and not analysed yet: its pipeline is in flight (`reconcile` re-sends
# lost ones), so sending it again would only double the work.
IN_FLIGHT = PENDING
POLL_SECONDS = 0.5

#: (batch items, features, run id) -> the batch task's id.
Publish = Callable[[list[dict[str, Any]], tuple[Feature, ...], str], str]


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


def estimate_path(checkpoint: Path) -> Path:
    """Where a dry run leaves its count, for the real run's ETA."""
    return checkpoint.with_name(checkpoint.name + ".estimate")


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
    #: Re-run every feature of every image, even analysed at the same etag (--all, --force).
    force: bool = False
    #: Re-run only this feature, of images whose record lacks it or has it failed.
    missing: Feature | None = None
    dry_run: bool = False
    max_queued: int = 1000
    rate: float | None = None
    checkpoint: Path | None = None
    resume: bool = False
    page_size: int = 1000
    #: Refs per batch task.
    batch: int = 100
    #: s3://bucket/path/manifest.json of an S3 Inventory report to read instead of listing.
    inventory: str | None = None


@dataclass
class Report:
    listed: int = 0
    enqueued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    last_key: str | None = None
    started_after: str | None = None
    interrupted: bool = False
    #: Pipelines finished so far (from the Celery results): done or partial, and failed.
    done: int = 0
    failed: int = 0
    #: What a dry run counted before (its ETA basis), when known.
    expected: int | None = None
    #: Share of an inventory report read (by compressed bytes), when reading one.
    fraction: float | None = None
    position: inventory.Position | None = None

    @property
    def rate(self) -> float:
        return self.enqueued / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, from the rate so far and what is left when that is known."""
        if self.fraction:
            return self.seconds * (1 - self.fraction) / self.fraction
        if self.expected is not None and self.rate > 0:
            return max(0, self.expected - self.enqueued) / self.rate
        return None


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a temporary file in the same directory, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
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


def write_checkpoint(
    path: Path,
    options: Options,
    last_key: str | None,
    done: bool,
    position: inventory.Position | None = None,
    run_id: str | None = None,
) -> None:
    data = {
        "run_id": run_id,
        "bucket": options.bucket,
        "prefix": options.prefix,
        "inventory": options.inventory,
        "last_key": last_key,
        "position": list(position) if position else None,
        "complete": done,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(path, data)


def _celery_depth() -> int:
    from rudolph import operations
    from workers.celery_app import app

    return sum(operations.queue_depths(app).values())


def _celery_publish(items: list[dict[str, Any]], features: tuple[Feature, ...], run: str) -> str:
    from rudolph.publishing import CeleryPublisher
    from workers.celery_app import app

    result = CeleryPublisher(app).backfill_batch(items, features, run)
    # Stop listening for its result now, and keep AsyncResult.__del__ from doing it again at
    # interpreter exit (where its Redis reconnect printed an ImportError traceback).
    result.backend.remove_pending_result(result)
    result.backend = None
    return str(result.id)


def _celery_ready(task_id: str) -> bool:
    from celery import states

    from workers.celery_app import app

    return app.backend.get_task_meta(task_id).get("status") in states.READY_STATES


def listed_ref(bucket: str, obj: dict[str, Any]) -> ObjectRef:
    """The ref of a listed object (a list_objects_v2 entry, or an inventory row as one)."""
    etag = obj.get("ETag")
    modified = obj.get("LastModified")
    return ObjectRef(
        bucket=bucket,
        key=str(obj["Key"]),
        version_id=obj.get("VersionId"),
        etag=str(etag).strip('"') if etag else None,
        size=obj.get("Size"),
        event_time=event_time(modified) if modified else None,
    )


@dataclass(frozen=True)
class Work:
    ref: ObjectRef
    features: tuple[Feature, ...]
    kind: str  # "new" (no item at this event yet), "rerun" (analysed at it: reclaim)


class Backfill:
    def __init__(
        self,
        settings: Settings,
        options: Options,
        publish: Publish = _celery_publish,
        ready: Callable[[str], bool] = _celery_ready,
        depth: Callable[[], int] = _celery_depth,
        progress: Callable[[Report], None] | None = None,
        max_wait: float | None = None,
        outcomes: Callable[[list[str]], tuple[int, int, list[str]]] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.depth = depth
        self.progress = progress or (lambda _: None)
        self.max_wait = max_wait
        self.outcomes = outcomes
        self.s3 = aws.client("s3", settings)
        self.store = RecordStore(settings)
        self.publish = publish
        self.ready = ready
        self.report = Report()
        self._started = 0.0
        self._next_enqueue = 0.0
        self.run_id = uuid.uuid4().hex
        self.features: tuple[Feature, ...] = (options.missing,) if options.missing else FEATURES
        self._batch: list[ObjectRef] = []
        self._kinds: list[str] = []
        self._refused: list[bool] = []
        #: (batch task id, refs in it) of batches not known expanded yet (backpressure).
        self._unexpanded: list[tuple[str, int]] = []
        #: Aggregate task ids not known finished yet (for done/failed).
        self._outstanding: list[str] = []
        self._last_outcomes = 0.0
        #: Set (e.g. by a SIGINT handler) to stop cleanly at the next object.
        self.stopping = threading.Event()

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Report:
        """List, filter, skip and publish batches; KeyboardInterrupt keeps the checkpoint of
        the last batch published and propagates (the report says how far it went)."""
        options = self.options
        self._started = time.monotonic()
        saved = read_checkpoint(options.checkpoint) if options.checkpoint else {}
        if not options.resume:
            saved = {}
        start_after = saved.get("last_key") or None
        self.run_id = saved.get("run_id") or self.run_id
        position = tuple(saved["position"]) if saved.get("position") else None
        self.report.started_after = start_after
        self.report.last_key = start_after
        self.report.position = position
        if options.checkpoint is not None:
            self.report.expected = self._estimate(options.checkpoint)
        try:
            for page, at, fraction in self._pages(start_after, position):
                self._page(page)
                if at is not None:
                    self.report.position, self.report.fraction = at, fraction
                self._save(done=False)
                self._tick()
            self._save(done=True)
            if options.dry_run and options.checkpoint is not None:
                _write_json(estimate_path(options.checkpoint), {"enqueued": self.report.enqueued})
        except KeyboardInterrupt:
            self.report.interrupted = True  # the checkpoint is that of the last batch sent
            raise
        finally:
            self._tick(force=True)
        return self.report

    def _estimate(self, checkpoint: Path) -> int | None:
        try:
            return int(json.loads(estimate_path(checkpoint).read_text())["enqueued"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _tick(self, force: bool = False) -> None:
        self.report.seconds = time.monotonic() - self._started
        now = time.monotonic()
        if self.outcomes and self._outstanding and (force or now - self._last_outcomes >= 1.0):
            self._last_outcomes = now
            done, failed, self._outstanding = self.outcomes(self._outstanding)
            self.report.done += done
            self.report.failed += failed
        self.progress(self.report)

    def _save(self, done: bool) -> None:
        if self.options.checkpoint is None or self.options.dry_run:
            return
        report = self.report
        write_checkpoint(
            self.options.checkpoint,
            self.options,
            report.last_key,
            done,
            report.position,
            self.run_id,
        )

    def _pages(
        self, start_after: str | None, position: tuple[int, int] | None
    ) -> Iterator[tuple[list[dict[str, Any]], inventory.Position | None, float | None]]:
        """(objects, inventory position after them, share of the report read) per page."""
        if self.options.inventory:
            yield from self._inventory_pages(position or (0, 0))
            return
        kwargs: dict[str, Any] = {
            "Bucket": self.options.bucket,
            "Prefix": self.options.prefix,
            "PaginationConfig": {"PageSize": self.options.page_size},
        }
        if start_after:
            kwargs["StartAfter"] = start_after
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kwargs):
            yield list(page.get("Contents", [])), None, None

    def _inventory_pages(
        self, start: tuple[int, int]
    ) -> Iterator[tuple[list[dict[str, Any]], inventory.Position, float | None]]:
        """Pages of an inventory report's rows (in the bucket and under the prefix)."""
        bucket, key = parse_s3_url(self.options.inventory or "")
        manifest = inventory.read_manifest(self.s3, bucket, key)
        if manifest.source_bucket and manifest.source_bucket != self.options.bucket:
            raise inventory.InventoryError(
                f"{self.options.inventory} is the inventory of s3://{manifest.source_bucket}, "
                f"not of s3://{self.options.bucket}"
            )
        total = manifest.total_bytes or 1
        page: list[dict[str, Any]] = []
        at = start
        for position, done_bytes, entry in inventory.rows(self.s3, manifest, start):
            at = position
            if entry is not None and entry["Key"].startswith(self.options.prefix):
                page.append(entry)
            if len(page) >= self.options.page_size:
                yield page, at, min(1.0, done_bytes / total) or None
                page = []
        yield page, at, 1.0

    def _page(self, objects: list[dict[str, Any]]) -> None:
        report = self.report
        report.listed += len(objects)
        candidates: list[ObjectRef] = []
        for obj in objects:
            reason = self._filtered(obj)
            if reason:
                report.skipped[reason] += 1
            else:
                candidates.append(listed_ref(self.options.bucket, obj))
        states = self.store.states(
            [image_id(r.bucket, r.key) for r in candidates], features=bool(self.options.missing)
        )
        work: list[Work] = []
        for ref in candidates:
            decided = self._decide(ref, states.get(image_id(ref.bucket, ref.key)))
            if isinstance(decided, str):
                report.skipped[decided] += 1
            else:
                work.append(decided)
        for one in work:
            if self.stopping.is_set():
                raise KeyboardInterrupt
            self._one(one)
        self._flush()
        if objects and not self.options.inventory:
            report.last_key = str(objects[-1]["Key"])

    def _decide(self, ref: ObjectRef, item: ImageState | None) -> Work | str:
        """What to do with a listed image, or why it is skipped."""
        options = self.options
        present = item is not None and not item.deleted
        status = item.status if item and present else None
        etag = item.at_etag if item and present else None
        same = etag is not None and etag.strip('"') == ref.etag
        if same and status == IN_FLIGHT:
            return "in flight"
        processed = same and status in PROCESSED
        kind = "new"
        if options.missing:
            if not processed or item is None:
                return "not analysed yet (a run without --missing does that)"
            if not item.lacks(options.missing):
                return f"has {options.missing}"
            stored = item.stored_ref(ref.bucket, ref.key)
            if stored is None:
                return "stored event unknown (re-upload it)"
            return Work(stored, (options.missing,), "rerun")
        if processed and item is not None:
            if not options.force:
                return "already processed"
            stored = item.stored_ref(ref.bucket, ref.key)
            if stored is not None:
                return Work(stored, FEATURES, "rerun")
        return Work(ref, FEATURES, kind)

    def _filtered(self, obj: dict[str, Any]) -> str | None:
        key = str(obj["Key"])
        options = self.options
        if key.endswith("/") or not has_image_suffix(key):
            return "not an image"
        if not buckets.admitted(self.settings.buckets, options.bucket, key):
            return f"outside {self.settings.buckets_setting}"
        if options.suffixes and not key.lower().endswith(options.suffixes):
            return "suffix filter"
        if options.max_size is not None and int(obj.get("Size", 0)) > options.max_size:
            return "over --max-size"
        modified = obj.get("LastModified")
        if options.modified_since is not None and modified and modified < options.modified_since:
            return "modified before --modified-since"
        return None

    # -- batches ----------------------------------------------------------------------------

    def _one(self, work: Work) -> None:
        refused = refusal(work.ref, self.settings) is not None
        if refused:
            self.report.skipped["refused at the door"] += 1  # the worker records the refusal
        if self.options.dry_run:
            self.report.enqueued += not refused
            return
        self._space()
        self._batch.append(work.ref)
        self._kinds.append(work.kind)
        self._refused.append(refused)
        if len(self._batch) >= max(1, self.options.batch):
            self._flush()

    def _flush(self) -> None:
        """Publish the batch in hand, then checkpoint after its last key."""
        if not self._batch:
            return
        batch, kinds, refused = self._batch, self._kinds, self._refused
        self._batch, self._kinds, self._refused = [], [], []
        self._wait_for_room()
        items = [batch_item(ref, kind) for ref, kind in zip(batch, kinds, strict=True)]
        task_id = self.publish(items, self.features, self.run_id)
        self._unexpanded.append((task_id, len(batch)))
        sent = [ref for ref, no in zip(batch, refused, strict=True) if not no]
        self.report.enqueued += len(sent)
        if self.outcomes:
            from rudolph.publishing import AGGREGATE, task_ids

            for ref in sent:
                ids = task_ids(claim_name(ref, self.run_id), self.features)
                self._outstanding.append(ids[AGGREGATE])
        if not self.options.inventory:
            self.report.last_key = batch[-1].key  # everything up to it is published
            self._save(done=False)
        self._tick()

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

    def _waiting(self) -> int:
        """Celery queue depth plus what the batches not expanded yet will add: a ref
        counts as the feature tasks it becomes."""
        depth = self.depth()
        waiting = depth + len(self.features) * sum(n for _, n in self._unexpanded)
        if waiting <= self.options.max_queued:
            return waiting  # room even if none was expanded: no need to ask
        self._unexpanded = [(i, n) for i, n in self._unexpanded if not self.ready(i)]
        return depth + len(self.features) * sum(n for _, n in self._unexpanded)

    def _wait_for_room(self) -> None:
        """Block while the queues (and batches on their way) hold more than max_queued
        messages: the queues exceed it by at most one batch."""
        deadline = None if self.max_wait is None else time.monotonic() + self.max_wait
        while self._waiting() > self.options.max_queued:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Celery queues stayed over {self.options.max_queued} messages "
                    f"for {self.max_wait:g} s"
                )
            self._tick()
            if self.stopping.wait(POLL_SECONDS):
                raise KeyboardInterrupt
