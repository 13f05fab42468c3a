"""Running the fleet with your eyes open: `rudolph status`, `pause`, `resume`, `purge`.

Everything here returns plain data; the CLI only formats it.

- Celery queue depth is the length of the queue's Redis lists on the broker. kombu's Redis
  transport keeps one list per priority step: the queue's own name for priority 0 and
  `<queue>\\x06\\x16<step>` for the others (kombu.transport.redis: `Channel.sep`,
  `PRIORITY_STEPS`), so a depth sums them all. Tasks a worker has taken but not yet
  acknowledged are not in these lists (they sit in the `unacked` hash).
- Consumers come from Celery's remote control (`inspect().active_queues()`): only workers
  that answer within the timeout are listed.
- Pausing a queue is `cancel_consumer` on every worker, resuming is `add_consumer`: workers
  keep running (and keep consuming their other queues). A worker started later consumes the
  queues of its `-Q` option again, paused or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rudolph import aws
from rudolph.buckets import names
from rudolph.deadletters import dlq_name
from rudolph.errors import BrokerUnavailableError, ConfigurationError
from rudolph.settings import Settings
from rudolph.store import RecordStore
from rudolph.vocabulary import FINAL_STATUSES, QUEUES, SQS_QUEUES

INSPECT_TIMEOUT = 1.0


def priority_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps for a queue, one per priority step."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    return [queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS]


@dataclass
class CeleryQueue:
    name: str
    depth: int
    consumers: list[str] = field(default_factory=list)


@dataclass
class SqsQueue:
    name: str
    visible: int
    in_flight: int


@dataclass
class Status:
    celery: list[CeleryQueue]
    #: False when no worker answered the remote control (consumers are then unknown).
    workers_answered: bool
    events: SqsQueue
    dead_letters: SqsQueue
    records: dict[str, int]
    documents: int
    #: The watched buckets with their filters (RUDOLPH_BUCKETS), and records per bucket.
    buckets: list[str] = field(default_factory=list)
    records_by_bucket: dict[str, int] = field(default_factory=dict)
    #: The engine behind the index and its version: "opensearch 2.5.0".
    search_engine: str = "unknown"

    @property
    def indexed_records(self) -> int:
        return sum(self.records.get(s, 0) for s in FINAL_STATUSES)

    @property
    def index_agrees(self) -> bool:
        return self.documents == self.indexed_records

    def as_json(self) -> dict[str, Any]:
        return {
            "celery": {q.name: {"depth": q.depth, "consumers": q.consumers} for q in self.celery},
            "workers_answered": self.workers_answered,
            "sqs": {
                "events": {
                    "name": self.events.name,
                    "visible": self.events.visible,
                    "in_flight": self.events.in_flight,
                },
                "dead_letters": {
                    "name": self.dead_letters.name,
                    "visible": self.dead_letters.visible,
                    "in_flight": self.dead_letters.in_flight,
                },
            },
            "records": self.records,
            "search_engine": self.search_engine,
            "buckets": {"watched": self.buckets, "records": self.records_by_bucket},
            "index": {
                "documents": self.documents,
                "indexed_records": self.indexed_records,
                "agrees": self.index_agrees,
            },
        }


def _where(app: Any) -> str:
    return str(app.conf.broker_url).split("@")[-1]  # never print a password


@contextlib.contextmanager
def broker_calls(app: Any) -> Iterator[None]:
    import redis
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.RedisError, OperationalError, OSError) as exc:
        raise BrokerUnavailableError(
            f"the Celery broker at {_where(app)} cannot be reached ({exc}): check CELERY_BROKER_URL"
        ) from exc


def _broker(app: Any) -> Any:
    import redis

    url = str(app.conf.broker_url)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"the broker {_where(app)!r} is not Redis")
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def check_broker(app: Any) -> None:
    """Fail fast when the broker is down (Celery's remote control would retry at length)."""
    with broker_calls(app):
        _broker(app).ping()


def queue_depths(app: Any) -> dict[str, int]:
    """Messages waiting in each Celery queue (every priority list)."""
    with broker_calls(app), _broker(app).pipeline() as pipe:
        for queue in QUEUES:
            for key in priority_keys(queue):
                pipe.llen(key)
        lengths = pipe.execute()
    steps = len(lengths) // len(QUEUES)
    return {
        queue: sum(int(n) for n in lengths[i * steps : (i + 1) * steps])
        for i, queue in enumerate(QUEUES)
    }


def consumers(app: Any, timeout: float = INSPECT_TIMEOUT) -> dict[str, list[str]] | None:
    """Queue -> workers consuming it; None when no worker answered."""
    check_broker(app)
    with broker_calls(app):
        answers = app.control.inspect(timeout=timeout).active_queues()
    if not answers:
        return None
    result: dict[str, list[str]] = {queue: [] for queue in QUEUES}
    for worker, queues in sorted(answers.items()):
        for queue in queues or []:
            result.setdefault(str(queue.get("name")), []).append(worker)
    return result


def sqs_counts(settings: Settings, name: str) -> SqsQueue:
    """SQS's approximate visible and in-flight message counts of one queue."""
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return SqsQueue(
        name=name,
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def status(settings: Settings, app: Any, timeout: float = INSPECT_TIMEOUT) -> Status:
    from rudolph.index import SearchIndex

    depths = queue_depths(app)
    consuming = consumers(app, timeout)
    celery = [CeleryQueue(q, depths[q], (consuming or {}).get(q, [])) for q in QUEUES]
    counted = RecordStore(settings).count_records(names(settings.buckets))
    index = SearchIndex(settings)
    return Status(
        celery=celery,
        workers_answered=consuming is not None,
        events=sqs_counts(settings, settings.queue_name),
        dead_letters=sqs_counts(settings, dlq_name(settings)),
        records=counted.by_status,
        documents=index.count(),
        search_engine=index.engine(),
        buckets=[str(f) for f in settings.buckets],
        records_by_bucket=counted.by_bucket,
    )


def _check_queue(queue: str, allowed: tuple[str, ...]) -> None:
    if queue not in allowed:
        raise ConfigurationError(f"unknown queue {queue!r}: choose from {', '.join(allowed)}")


def _acknowledged(replies: list[dict[str, Any]] | None) -> dict[str, str]:
    """worker -> what it said, from a broadcast's replies."""
    said: dict[str, str] = {}
    for reply in replies or []:
        for worker, answer in reply.items():
            if isinstance(answer, dict):
                said[worker] = str(answer.get("ok") or answer.get("error") or answer)
            else:
                said[worker] = str(answer)
    return dict(sorted(said.items()))


def pause(queue: str, app: Any, timeout: float = INSPECT_TIMEOUT) -> dict[str, str]:
    """Every running worker stops consuming `queue`; worker -> its acknowledgement."""
    return _control(queue, "cancel_consumer", app, timeout)


def resume(queue: str, app: Any, timeout: float = INSPECT_TIMEOUT) -> dict[str, str]:
    """Every running worker consumes `queue` again; worker -> its acknowledgement."""
    return _control(queue, "add_consumer", app, timeout)


def _control(queue: str, command: str, app: Any, timeout: float) -> dict[str, str]:
    _check_queue(queue, QUEUES)
    check_broker(app)
    with broker_calls(app):
        return _acknowledged(getattr(app.control, command)(queue, reply=True, timeout=timeout))


def queue_size(settings: Settings, queue: str, app: Any) -> int:
    """Messages in a Celery queue, or (approximately) in `events` / `dead-letters`."""
    _check_queue(queue, QUEUES + SQS_QUEUES)
    if queue in QUEUES:
        return queue_depths(app)[queue]
    counts = sqs_counts(settings, _sqs_name(settings, queue))
    return counts.visible + counts.in_flight


def _sqs_name(settings: Settings, queue: str) -> str:
    return settings.queue_name if queue == "events" else dlq_name(settings)


def purge(settings: Settings, queue: str, app: Any) -> int:
    """Delete every waiting message of a queue; how many were removed (approximate for SQS,
    whose PurgeQueue says nothing and may take up to 60 s to finish)."""
    _check_queue(queue, QUEUES + SQS_QUEUES)
    if queue in QUEUES:
        # One MULTI/EXEC: what is counted is what is deleted.
        with broker_calls(app), _broker(app).pipeline() as pipe:
            for key in priority_keys(queue):
                pipe.llen(key).delete(key)
            results = pipe.execute()
        return sum(int(n) for n in results[::2])
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=_sqs_name(settings, queue))["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    sqs.purge_queue(QueueUrl=url)
    return int(attributes.get("ApproximateNumberOfMessages", 0))
