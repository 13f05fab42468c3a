"""Turning object events into Celery work: group(labels, text, faces) per created image, the
last of which to finish aggregates it (rudolph.joins), a removal per deleted one, a rejection
for what the door refused.

Work is published by task name (rudolph.vocabulary) through the Celery app the caller gives
(`workers.app` in the fleet), so nothing here imports worker code."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from celery.canvas import Signature

from rudolph.errors import BrokerUnavailableError
from rudolph.events import ObjectRef
from rudolph.joins import join_spec
from rudolph.operations import broker_calls, check_broker
from rudolph.vocabulary import (
    BACKFILL_BATCH_TASK,
    FEATURES,
    REJECT_TASK,
    REMOVE_TASK,
    Feature,
    feature_task,
)

# Task ids derived from a claim name: the backfill knows its aggregates' ids without a reply.
_IDS = uuid.UUID("5b1f0a52-8f0e-4c55-9d53-2b1c3e1d7a10")
#: The key of the aggregate's id in `task_ids` (beside one per feature).
AGGREGATE = "aggregate"


def task_ids(claim: str, features: Sequence[Feature] = FEATURES) -> dict[str, str]:
    """Feature (and "aggregate") -> the task id of the pipeline published for `claim`."""
    return {name: str(uuid.uuid5(_IDS, f"{claim}/{name}")) for name in (*features, AGGREGATE)}


def pipeline_for(
    app: Any,
    ref: ObjectRef,
    features: Sequence[Feature] = FEATURES,
    claim: str | None = None,
    report: bool = False,
) -> list[Signature]:
    """The feature tasks of `features` (all three by default), which meet in a join
    (rudolph.joins): the last to finish aggregates. With fewer than all three, the aggregate
    takes the others from the stored record. With `claim`, the task ids and the join are
    named after it (`task_ids`); with `report`, the aggregate's summary is stored under the
    aggregate's id, where a backfill's progress reads it."""
    # Task messages carry the reference only; each worker reads the object itself.
    payload = ref.model_dump(mode="json")
    run = claim or uuid.uuid4().hex
    ids = task_ids(run, features)
    join = join_spec(run, features, ids[AGGREGATE], report)
    return [
        app.signature(feature_task(f), args=(payload,), kwargs={"join": join}).set(task_id=ids[f])
        for f in features
    ]


@contextlib.contextmanager
def _publishing(app: Any) -> Iterator[None]:
    """Broker and result-backend failures as BrokerUnavailableError (rudolph.operations)."""
    try:
        with broker_calls(app):
            try:
                yield
            except RuntimeError as exc:
                # Celery's Redis result backend reports a failed reconnect as a RuntimeError
                # caused by the connection error, and reconnects on its next call.
                if isinstance(exc.__cause__, (redis.RedisError, OSError)):
                    raise exc.__cause__ from exc
                raise
    except BrokerUnavailableError:
        raise
    except Exception as exc:
        # kombu, closing channels mid-outage, can fail with errors of its own (seen: an
        # AttributeError on a channel it had closed): while Redis is down, a failure is the outage.
        try:
            check_broker(app)
        except BrokerUnavailableError as down:
            raise down from exc
        raise


class CeleryPublisher:
    """What the listener, `reconcile` and backfill batches call to enqueue work. A broker that
    cannot be reached (after kombu's own publish retries) raises BrokerUnavailableError."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._outage = False

    @contextlib.contextmanager
    def _publish(self) -> Iterator[None]:
        """`_publishing`, on connections that did not live through an outage."""
        if self._outage:
            # Pools that lived through an outage can hold channels kombu half-closed; Celery's
            # own after-fork reset drops every pooled connection, the result backend's too.
            self.app._after_fork()
            consumer = getattr(self.app.backend, "result_consumer", None)
            if consumer is not None:
                consumer._after_fork()
            self._outage = False
        try:
            with _publishing(self.app):
                yield
        except BrokerUnavailableError:
            self._outage = True
            raise

    def created(
        self,
        ref: ObjectRef,
        features: Sequence[Feature] = FEATURES,
        claim: str | None = None,
        report: bool = False,
    ) -> str:
        """Enqueue the pipeline of one created object; returns the aggregate's task id (its
        summary is stored there only with `report`)."""
        name = claim or uuid.uuid4().hex
        # Sent one by one on one producer: a group would also build a GroupResult that
        # subscribes to its tasks' results, which no producer waits for.
        with self._publish(), self.app.producer_or_acquire() as producer:
            for signature in pipeline_for(self.app, ref, features, name, report):
                signature.apply_async(producer=producer)
        return task_ids(name, features)[AGGREGATE]

    def removed(self, ref: ObjectRef) -> str:
        return self._send(REMOVE_TASK, ref.model_dump(mode="json"))

    def rejected(self, ref: ObjectRef, message: str) -> str:
        return self._send(REJECT_TASK, ref.model_dump(mode="json"), message)

    def backfill_batch(
        self, items: list[dict[str, Any]], features: Sequence[Feature], run_id: str
    ) -> Any:
        """Enqueue a backfill batch (expanded by a worker: rudolph.batches); its AsyncResult."""
        with self._publish():
            return self.app.send_task(BACKFILL_BATCH_TASK, args=(items, list(features), run_id))

    def _send(self, task: str, *args: Any) -> str:
        with self._publish():
            return str(self.app.send_task(task, args=args).id)

    def reachable(self) -> bool:
        """Whether the broker answers a ping now."""
        try:
            check_broker(self.app)
        except BrokerUnavailableError:
            return False
        return True
