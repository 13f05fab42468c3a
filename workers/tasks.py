"""The fleet's tasks: thin wrappers that call the rudolph library.

labels, text, faces: one feature of one S3 object each (queues of the same names); they
return an outcome, an error outcome when they fail for good, so the chord's aggregate always
runs. aggregate: merges the outcomes into the record and saves it. remove: forgets a deleted
object. dispatch: expands a `rudolph backfill` batch into pipelines.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from producer import dispatch as backfill_batch
from rudolph import pipeline
from rudolph.analysis import FeatureOutcome
from rudolph.events import ObjectRef
from rudolph.settings import Feature, get_settings
from workers import app
from workers.retries import retry_with_backoff

FEATURE_RETRIES = 6
AGGREGATE_RETRIES = 8


def _give_up(task: Task, exc: BaseException) -> dict[str, Any]:
    feature: Feature = task.name.removeprefix("rudolph.")
    return pipeline.gave_up(feature, exc, task.request.retries + 1).model_dump(mode="json")


def _feature(feature: Feature, ref: dict[str, Any]) -> dict[str, Any]:
    try:
        outcome = pipeline.analyze_feature(feature, ObjectRef(**ref), get_settings())
    except SoftTimeLimitExceeded:
        outcome = FeatureOutcome(
            feature=feature,
            error=f"TimeLimit: {feature} took longer than {app.conf.task_soft_time_limit} s; "
            "the image may be huge or the worker overloaded",
        )
    return outcome.model_dump(mode="json")


@app.task(bind=True, name="rudolph.labels", max_retries=FEATURE_RETRIES)
@retry_with_backoff(give_up=_give_up)
def labels(self: Task, ref: dict[str, Any]) -> dict[str, Any]:
    return _feature("labels", ref)


@app.task(bind=True, name="rudolph.text", max_retries=FEATURE_RETRIES)
@retry_with_backoff(give_up=_give_up)
def text(self: Task, ref: dict[str, Any]) -> dict[str, Any]:
    return _feature("text", ref)


@app.task(bind=True, name="rudolph.faces", max_retries=FEATURE_RETRIES)
@retry_with_backoff(give_up=_give_up)
def faces(self: Task, ref: dict[str, Any]) -> dict[str, Any]:
    return _feature("faces", ref)


@app.task(bind=True, name="rudolph.aggregate", max_retries=AGGREGATE_RETRIES)
@retry_with_backoff()
def aggregate(
    self: Task,
    outcomes: list[dict[str, Any]],
    ref: dict[str, Any],
    rerun: list[Feature] | None = None,
) -> dict[str, Any]:
    parsed = [FeatureOutcome.model_validate(o) for o in outcomes]
    if rerun:  # only these features ran: the others come from the stored record
        parsed += pipeline.stored_outcomes(ObjectRef(**ref), get_settings(), rerun)
    record = pipeline.aggregate(parsed, ObjectRef(**ref), get_settings())
    if record is None:
        return {"image_id": None, "status": "gone"}
    return {"image_id": record.image_id, "status": record.status, "key": record.key}


@app.task(bind=True, name="rudolph.reject", max_retries=AGGREGATE_RETRIES)
@retry_with_backoff()
def reject(self: Task, ref: dict[str, Any], message: str) -> str | None:
    record = pipeline.reject(ObjectRef(**ref), message, get_settings())
    return record.image_id if record else None


@app.task(bind=True, name="rudolph.remove", max_retries=AGGREGATE_RETRIES)
@retry_with_backoff()
def remove(self: Task, ref: dict[str, Any]) -> str:
    return pipeline.remove(ObjectRef(**ref), get_settings())


@app.task(bind=True, name="rudolph.dispatch", max_retries=AGGREGATE_RETRIES)
@retry_with_backoff()
def dispatch(
    self: Task, items: list[dict[str, Any]], features: list[Feature], run_id: str
) -> dict[str, int]:
    """A backfill batch: claim and publish each ref's pipeline (a re-run is harmless)."""
    return backfill_batch.dispatch(items, tuple(features), run_id, get_settings())
