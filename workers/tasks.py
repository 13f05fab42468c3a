"""The fleet's tasks: thin wrappers that call the rudolph library.

labels, text, faces: one feature of one S3 object each (queues of the same names); they
return an outcome, an error outcome when they fail for good, so the chord's aggregate always
runs. aggregate: merges the outcomes into the record and saves it. remove: forgets a deleted
object. reject: records what the door refused. backfill_batch: expands a `rudolph backfill`
batch into pipelines. Their names come from rudolph.vocabulary, which producers publish by.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from rudolph import stages
from rudolph.analysis import FeatureOutcome
from rudolph.batches import expand_batch
from rudolph.events import ObjectRef
from rudolph.publishing import CeleryPublisher
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
# backend. The chord gathers its header's outcomes in a list of its own (Celery's Redis chord
# runs on_chord_part_return whether or not a result is stored), and Flower shows results from
# events. Storing them cost a SET and a PUBLISH per task (bench/pipeline.py) and kept every
# outcome in Redis for result_expires (a day). The aggregate's (a few fields) and
# backfill_batch's are kept: `rudolph backfill` counts done and failed images from the
# aggregates' results (producer/progress.py) and polls its batches'.


#: Task name -> the feature it runs.
_FEATURE_OF_TASK: dict[str, Feature] = {feature_task(feature): feature for feature in FEATURES}


def _give_up(task: Task[Any, Any], exc: BaseException) -> dict[str, Any]:
    feature = _FEATURE_OF_TASK[task.name]
    return stages.gave_up(feature, exc, task.request.retries + 1).model_dump(mode="json")


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
def labels(self: Task[Any, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return _feature("labels", ref)


@app.task(bind=True, name=feature_task("text"), max_retries=FEATURE_RETRIES, ignore_result=True)
@retry_with_backoff(give_up=_give_up)
def text(self: Task[Any, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return _feature("text", ref)


@app.task(bind=True, name=feature_task("faces"), max_retries=FEATURE_RETRIES, ignore_result=True)
@retry_with_backoff(give_up=_give_up)
def faces(self: Task[Any, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return _feature("faces", ref)


@app.task(bind=True, name=AGGREGATE_TASK, max_retries=AGGREGATE_RETRIES)
@retry_with_backoff()
def aggregate(
    self: Task[Any, Any],
    outcomes: list[dict[str, Any]],
    ref: dict[str, Any],
    rerun: list[Feature] | None = None,
) -> dict[str, Any]:
    parsed = [FeatureOutcome.model_validate(o) for o in outcomes]
    if rerun:  # only these features ran: the others come from the stored record
        parsed += stages.stored_outcomes(ObjectRef(**ref), get_settings(), rerun)
    record = stages.aggregate(parsed, ObjectRef(**ref), get_settings())
    if record is None:
        return {"image_id": None, "status": "gone"}
    return {"image_id": record.image_id, "status": record.status, "key": record.key}


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
