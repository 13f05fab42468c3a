"""The fleet's tasks: thin wrappers that call the rudolph library.

labels, text, faces: one feature of one S3 object each (queues of the same names); each
puts its outcome (an error outcome when it fails for good) into the pipeline's join
(rudolph.joins), and the last to finish aggregates the image in its own task. aggregate:
merges outcomes into the record and saves it, when an inline aggregate failed (with retries
of its own) or for a chord published before joins. remove: forgets a deleted object.
reject: records what the door refused. backfill_batch: expands a `rudolph backfill` batch
into pipelines. Their names come from rudolph.vocabulary, which producers publish by.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Task, states
from celery.exceptions import SoftTimeLimitExceeded

from rudolph import joins, stages
from rudolph.analysis import FeatureOutcome
from rudolph.batches import expand_batch
from rudolph.events import ObjectRef
from rudolph.publishing import CeleryPublisher
from rudolph.record import Record
from rudolph.settings import get_settings
from rudolph.vocabulary import (
    AGGREGATE_TASK,
    BACKFILL_BATCH_TASK,
    FEATURES,
    REJECT_TASK,
    REMOVE_TASK,
    Feature,
    feature_task,
)
from workers.celery_app import app
from workers.retries import retry_with_backoff

FEATURE_RETRIES = 6
AGGREGATE_RETRIES = 8
# ignore_result: no one reads the feature tasks', reject's or remove's results from the result
# backend: outcomes meet in the join, Flower shows results from events. Storing them cost a
# SET and a PUBLISH per task (bench/pipeline.py) and kept every outcome in Redis for
# result_expires (a day). For a backfill's pipelines the aggregate's summary (a few fields)
# is stored under the pipeline's aggregate id, whoever aggregates, and backfill_batch's
# result is kept: `rudolph backfill` counts done and failed images from the former
# (producer/progress.py) and polls the latter.

log = logging.getLogger(__name__)


#: Task name -> the feature it runs.
_FEATURE_OF_TASK: dict[str, Feature] = {feature_task(feature): feature for feature in FEATURES}


def _give_up(task: Task[Any, Any], exc: BaseException) -> dict[str, Any]:
    feature = _FEATURE_OF_TASK[task.name]
    outcome = stages.gave_up(feature, exc, task.request.retries + 1).model_dump(mode="json")
    ref, join = (task.request.args or [{}])[0], (task.request.kwargs or {}).get("join")
    return _join(task, outcome, ref, join)


def _summary(record: Record | None) -> dict[str, Any]:
    if record is None:
        return {"image_id": None, "status": "gone"}
    return {"image_id": record.image_id, "status": record.status, "key": record.key}


def _join(
    task: Task[Any, Any], outcome: dict[str, Any], ref: dict[str, Any], join: dict[str, Any] | None
) -> dict[str, Any]:
    """Put a feature's outcome into its pipeline's join; the last one in aggregates."""
    if join is None:  # a chord's header task, published before joins: its chord aggregates
        return outcome
    settings = get_settings()
    met = joins.join_for(settings).arrive(
        join["run"], outcome["feature"], json.dumps(outcome), len(join["features"])
    )
    if met is None:
        return outcome
    outcomes = [json.loads(o) for o in met]
    parsed = [FeatureOutcome.model_validate(o) for o in outcomes]
    try:
        record = stages.aggregate_run(parsed, ObjectRef(**ref), settings, join["features"])
    except Exception as exc:
        # The aggregate task takes over with retries of its own (a throttled table, an index
        # that is down), rather than this feature's analysis running again.
        log.warning(
            "aggregating %s in its last feature failed (%s); sent to the aggregate task",
            ref.get("key"),
            exc,
        )
        aggregate.apply_async(
            args=(outcomes, ref),
            kwargs={"rerun": join["features"], "join": join["run"]},
            task_id=join["aggregate"],
        )
        return outcome
    if join.get("report"):  # a backfill's pipeline: its progress counts this summary
        task.backend.store_result(join["aggregate"], _summary(record), states.SUCCESS)
    joins.join_for(settings).finish(join["run"])
    return outcome


def _feature(feature: Feature, ref: dict[str, Any]) -> dict[str, Any]:
    try:
        outcome = stages.analyze_feature(feature, ObjectRef(**ref), get_settings())
    except SoftTimeLimitExceeded:
        outcome = FeatureOutcome(
            feature=feature,
            error=f"TimeLimit: {feature} took longer than {app.conf.task_soft_time_limit} s; "
            "the image may be huge or the worker overloaded",
        )
    return outcome.model_dump(mode="json")


@app.task(bind=True, name=feature_task("labels"), max_retries=FEATURE_RETRIES, ignore_result=True)
@retry_with_backoff(give_up=_give_up)
def labels(
    self: Task[Any, Any], ref: dict[str, Any], join: dict[str, Any] | None = None
) -> dict[str, Any]:
    return _join(self, _feature("labels", ref), ref, join)


@app.task(bind=True, name=feature_task("text"), max_retries=FEATURE_RETRIES, ignore_result=True)
@retry_with_backoff(give_up=_give_up)
def text(
    self: Task[Any, Any], ref: dict[str, Any], join: dict[str, Any] | None = None
) -> dict[str, Any]:
    return _join(self, _feature("text", ref), ref, join)


@app.task(bind=True, name=feature_task("faces"), max_retries=FEATURE_RETRIES, ignore_result=True)
@retry_with_backoff(give_up=_give_up)
def faces(
    self: Task[Any, Any], ref: dict[str, Any], join: dict[str, Any] | None = None
) -> dict[str, Any]:
    return _join(self, _feature("faces", ref), ref, join)


@app.task(bind=True, name=AGGREGATE_TASK, max_retries=AGGREGATE_RETRIES)
@retry_with_backoff()
def aggregate(
    self: Task[Any, Any],
    outcomes: list[dict[str, Any]],
    ref: dict[str, Any],
    rerun: list[Feature] | None = None,
    join: str | None = None,
) -> dict[str, Any]:
    parsed = [FeatureOutcome.model_validate(o) for o in outcomes]
    record = stages.aggregate_run(parsed, ObjectRef(**ref), get_settings(), rerun)
    if join is not None:
        joins.join_for(get_settings()).finish(join)
    return _summary(record)


@app.task(bind=True, name=REJECT_TASK, max_retries=AGGREGATE_RETRIES, ignore_result=True)
@retry_with_backoff()
def reject(self: Task[Any, Any], ref: dict[str, Any], message: str) -> str | None:
    record = stages.reject(ObjectRef(**ref), message, get_settings())
    return record.image_id if record else None


@app.task(bind=True, name=REMOVE_TASK, max_retries=AGGREGATE_RETRIES, ignore_result=True)
@retry_with_backoff()
def remove(self: Task[Any, Any], ref: dict[str, Any]) -> str:
    return stages.remove(ObjectRef(**ref), get_settings())


@app.task(bind=True, name=BACKFILL_BATCH_TASK, max_retries=AGGREGATE_RETRIES)
@retry_with_backoff()
def backfill_batch(
    self: Task[Any, Any], items: list[dict[str, Any]], features: list[Feature], run_id: str
) -> dict[str, int]:
    """A backfill batch: claim and publish each ref's pipeline (a re-run is harmless)."""
    publisher = CeleryPublisher(app)
    return expand_batch(items, tuple(features), run_id, get_settings(), publisher)
