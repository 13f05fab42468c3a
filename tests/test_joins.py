"""The pipeline's join (rudolph.joins) on a real Redis: the last feature in gets every
outcome, a redelivery before the aggregate is marked done gets them again, a late copy after
it gets nothing, and among tasks finishing at once exactly one is last."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
import redis
from celery import Celery

from rudolph import joins
from rudolph.settings import Settings


@pytest.fixture
def join(redis_url: str) -> joins.Join:
    return joins.Join(redis.Redis.from_url(redis_url))


def _outcome(feature: str) -> str:
    return json.dumps({"feature": feature, "labels": [], "text": [], "faces": []})


def test_the_last_feature_in_gets_every_outcome(join: joins.Join) -> None:
    run = uuid.uuid4().hex
    assert join.arrive(run, "labels", _outcome("labels"), 3) is None
    assert join.arrive(run, "text", _outcome("text"), 3) is None
    met = join.arrive(run, "faces", _outcome("faces"), 3)
    assert met is not None
    assert sorted(json.loads(o)["feature"] for o in met) == ["faces", "labels", "text"]
    ttl = join.redis.ttl(joins.KEY_PREFIX + run)
    assert 0 < ttl <= joins.TTL_SECONDS


def test_a_redelivery_before_the_aggregate_is_done_aggregates_again(join: joins.Join) -> None:
    """A worker died while aggregating: the task that brought the last outcome comes back."""
    run = uuid.uuid4().hex
    join.arrive(run, "labels", _outcome("labels"), 2)
    assert join.arrive(run, "text", _outcome("text"), 2) is not None
    again = join.arrive(run, "text", _outcome("text"), 2)
    assert again is not None and len(again) == 2, "the same field, not a third outcome"


def test_after_the_aggregate_a_late_copy_does_nothing(join: joins.Join) -> None:
    run = uuid.uuid4().hex
    join.arrive(run, "labels", _outcome("labels"), 1)
    join.finish(run)
    assert join.arrive(run, "labels", _outcome("labels"), 1) is None
    assert join.redis.hgetall(joins.KEY_PREFIX + run) == {b"~done": b"1"}, "outcomes freed"


def test_features_finishing_at_once_have_exactly_one_last(join: joins.Join) -> None:
    runs = [uuid.uuid4().hex for _ in range(50)]
    lasts: list[str] = []
    start = threading.Barrier(3)

    def feature(name: str) -> None:
        start.wait(30)
        for run in runs:
            if join.arrive(run, name, _outcome(name), 3) is not None:
                lasts.append(run)

    threads = [threading.Thread(target=feature, args=(f,)) for f in ("labels", "text", "faces")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(lasts) == sorted(runs)


def test_a_redis_that_is_down_is_a_transient_error() -> None:
    from rudolph.errors import BrokerUnavailableError

    down = joins.join_for(Settings(redis_url="redis://127.0.0.1:1/0"))
    with pytest.raises(BrokerUnavailableError, match="Redis unreachable"):
        down.arrive("run", "labels", _outcome("labels"), 3)


def test_the_last_feature_task_aggregates_and_leaves_the_summary_for_backfill(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """workers.tasks' join step: the last feature aggregates (here a stand-in for the store
    and index), stores the summary where `rudolph backfill` reads the aggregate's result, and
    marks the join done; the features before it only put their outcome in."""
    from rudolph import stages
    from rudolph.publishing import AGGREGATE, task_ids
    from workers import tasks

    settings = Settings(redis_url=redis_url)
    monkeypatch.setattr(tasks, "get_settings", lambda: settings)
    aggregated: list[list[str]] = []

    def aggregate_run(outcomes: list[Any], ref: Any, _: Settings, rerun: Any) -> None:
        aggregated.append(sorted(o.feature for o in outcomes))
        return None  # as for an object deleted meanwhile

    monkeypatch.setattr(stages, "aggregate_run", aggregate_run)
    backend_app = Celery("joins", backend=redis_url, set_as_current=False)

    class Task:
        backend = backend_app.backend

    ref = {"bucket": "b", "key": "k.jpg", "sequencer": "1"}

    def pipeline(report: bool) -> tuple[str, str]:
        run = uuid.uuid4().hex
        aggregate_id = task_ids(run)[AGGREGATE]
        join = joins.join_spec(run, ["labels", "text", "faces"], aggregate_id, report)
        for feature in ("labels", "text", "faces"):
            outcome = {"feature": feature, "labels": [], "text": [], "faces": []}
            assert tasks._join(Task(), outcome, ref, join) == outcome  # type: ignore[arg-type]
        return run, aggregate_id

    run, aggregate_id = pipeline(report=True)  # a backfill's
    assert aggregated == [["faces", "labels", "text"]]
    meta = backend_app.backend.get_task_meta(aggregate_id)
    assert meta["status"] == "SUCCESS" and meta["result"] == {"image_id": None, "status": "gone"}
    assert joins.join_for(settings).arrive(run, "faces", "{}", 3) is None, "marked done"
    _, aggregate_id = pipeline(report=False)  # the listener's: no one reads a summary
    assert len(aggregated) == 2
    assert backend_app.backend.get_task_meta(aggregate_id)["status"] == "PENDING"
