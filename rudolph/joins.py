"""The pipeline's join: the last feature task of an image to finish aggregates it, itself.

Each feature task stores its outcome in one Redis hash per pipeline (`rudolph:join:<run>`,
field = feature) and learns in the same atomic step whether it was the last: then it gets
every outcome back and aggregates in its own task. Before this, a Celery chord did the same
with a fourth task per image (the chord's callback), whose receiving, events, pipe and
tracing cost the fleet about as much as a feature task's (README, bench/pipeline.py).

At least once, as before: a task redelivered after its worker died stores its outcome again
(the same field) and, if the others are in, aggregates; duplicates of the aggregate are
harmless (the record's writes are ordered, rudolph.store). Once aggregated, the hash keeps
only a `~done` mark, so a late copy of a feature task does not aggregate again. If Redis
loses the hash (a restart), the image stays pending and `rudolph reconcile` sends it again,
as with a chord's own keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import redis

from rudolph.errors import BrokerUnavailableError
from rudolph.ratelimit import connect
from rudolph.settings import Settings

KEY_PREFIX = "rudolph:join:"
DONE = "~done"
#: How long a pipeline's outcomes wait for the rest (Celery's chords: result_expires, a day).
TTL_SECONDS = 24 * 3600

# KEYS[1] the join; ARGV: feature, its outcome (JSON), outcomes expected, TTL. Returns the
# outcomes once all are in (to the task that completed them, and to any redelivery until the
# aggregate is marked done), else nothing.
_ARRIVE = """
if redis.call('HEXISTS', KEYS[1], '~done') == 1 then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then return false end
return redis.call('HVALS', KEYS[1])
"""
# KEYS[1] the join: its outcomes dropped, the mark kept until the TTL.
_FINISH = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '~done', '1')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
"""


def join_spec(
    run: str, features: Sequence[str], aggregate_id: str, report: bool = False
) -> dict[str, Any]:
    """What a pipeline's feature tasks carry to meet (`join=` of the task). With `report`,
    the aggregate's summary is stored as the result of `aggregate_id` (a backfill counts
    its done and failed images from those)."""
    spec: dict[str, Any] = {"run": run, "features": list(features), "aggregate": aggregate_id}
    if report:
        spec["report"] = True
    return spec


class Join:
    """The joins of a Redis server."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._arrive = client.register_script(_ARRIVE)
        self._finish = client.register_script(_FINISH)

    def arrive(self, run: str, feature: str, outcome: str, expected: int) -> list[str] | None:
        """Store `feature`'s outcome (JSON) for pipeline `run`; every outcome (JSON) when
        all `expected` are in and the pipeline is not aggregated yet, else None."""
        try:
            found = self._arrive(
                keys=[KEY_PREFIX + run], args=[feature, outcome, expected, TTL_SECONDS]
            )
        except redis.RedisError as exc:
            raise BrokerUnavailableError(
                f"Redis unreachable joining pipeline {run}: {exc}"
            ) from exc
        if not found:
            return None
        return [v.decode() if isinstance(v, bytes) else str(v) for v in found]

    def finish(self, run: str) -> None:
        """Mark pipeline `run` aggregated: its outcomes go, late copies do nothing."""
        try:
            self._finish(keys=[KEY_PREFIX + run], args=[TTL_SECONDS])
        except redis.RedisError as exc:
            raise BrokerUnavailableError(
                f"Redis unreachable finishing pipeline {run}: {exc}"
            ) from exc


@lru_cache(maxsize=4)
def join_for(settings: Settings) -> Join:
    """The process's joins, on `redis_url` (the broker's Redis unless set apart)."""
    return Join(connect(settings.redis_url))
