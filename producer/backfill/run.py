"""The backfill run: page by page, filter the listing (listing.py), ask the table what it holds
for the page's images (`RecordStore.states`), decide each (decisions.py), and publish the work
in batches, one light `rudolph.backfill_batch` task each, paced (pacing.py) and checkpointed
after each batch (checkpoint.py)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from producer.backfill import checkpoint, listing
from producer.backfill.decisions import Work, decide
from producer.backfill.options import Options, Report
from producer.backfill.pacing import Pacing
from rudolph import aws
from rudolph.batches import batch_item, claim_name
from rudolph.door import refusal
from rudolph.events import ObjectRef
from rudolph.record import image_id
from rudolph.settings import Settings
from rudolph.store import RecordStore
from rudolph.vocabulary import FEATURES, Feature

log = logging.getLogger("rudolph.backfill")

#: (batch items, features, run id) -> the batch task's id.
Publish = Callable[[list[dict[str, Any]], tuple[Feature, ...], str], str]


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
        self.progress = progress or (lambda _: None)
        self.outcomes = outcomes
        self.s3 = aws.client("s3", settings)
        self.store = RecordStore(settings)
        self.publish = publish
        self.report = Report()
        self._started = 0.0
        self.run_id = uuid.uuid4().hex
        self.features: tuple[Feature, ...] = (options.missing,) if options.missing else FEATURES
        self._batch: list[ObjectRef] = []
        self._kinds: list[str] = []
        self._refused: list[bool] = []
        #: Aggregate task ids not known finished yet (for done/failed).
        self._outstanding: list[str] = []
        self._last_outcomes = 0.0
        #: Set (e.g. by a SIGINT handler) to stop cleanly at the next object.
        self.stopping = threading.Event()
        self.pacing = Pacing(
            options.rate,
            options.max_queued,
            len(self.features),
            depth,
            ready,
            self.stopping,
            self._tick,
            max_wait,
        )

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Report:
        """List, filter, skip and publish batches; KeyboardInterrupt keeps the checkpoint of
        the last batch published and propagates (the report says how far it went)."""
        options = self.options
        self._started = time.monotonic()
        saved = checkpoint.read_checkpoint(options.checkpoint) if options.checkpoint else {}
        if not options.resume:
            saved = {}
        start_after = saved.get("last_key") or None
        self.run_id = saved.get("run_id") or self.run_id
        position = tuple(saved["position"]) if saved.get("position") else None
        self.report.started_after = start_after
        self.report.last_key = start_after
        self.report.position = position
        if options.checkpoint is not None:
            self.report.expected = checkpoint.read_estimate(options.checkpoint)
        try:
            for page, at, fraction in listing.pages(self.s3, options, start_after, position):
                self._page(page)
                if at is not None:
                    self.report.position, self.report.fraction = at, fraction
                self._save(done=False)
                self._tick()
            self._save(done=True)
            if options.dry_run and options.checkpoint is not None:
                checkpoint.write_estimate(options.checkpoint, self.report.enqueued)
        except KeyboardInterrupt:
            self.report.interrupted = True  # the checkpoint is that of the last batch sent
            raise
        finally:
            self._tick(force=True)
        return self.report

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
        checkpoint.write_checkpoint(
            self.options.checkpoint,
            self.options,
            report.last_key,
            done,
            report.position,
            self.run_id,
        )

    def _page(self, objects: list[dict[str, Any]]) -> None:
        report = self.report
        report.listed += len(objects)
        candidates: list[ObjectRef] = []
        for obj in objects:
            reason = listing.filtered(self.settings, self.options, obj)
            if reason:
                report.skipped[reason] += 1
            else:
                candidates.append(listing.listed_ref(self.options.bucket, obj))
        states = self.store.states(
            [image_id(r.bucket, r.key) for r in candidates], features=bool(self.options.missing)
        )
        work: list[Work] = []
        for ref in candidates:
            decided = decide(self.options, ref, states.get(image_id(ref.bucket, ref.key)))
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

    # -- batches ----------------------------------------------------------------------------

    def _one(self, work: Work) -> None:
        refused = refusal(work.ref, self.settings) is not None
        if refused:
            self.report.skipped["refused at the door"] += 1  # the worker records the refusal
        if self.options.dry_run:
            self.report.enqueued += not refused
            return
        self.pacing.space()
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
        self.pacing.wait_for_room()
        items = [batch_item(ref, kind) for ref, kind in zip(batch, kinds, strict=True)]
        task_id = self.publish(items, self.features, self.run_id)
        self.pacing.sent(task_id, len(batch))
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
