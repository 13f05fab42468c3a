"""A real fleet for integration tests: a `celery worker` and a `rudolph listen` process over
moto's server, the OpenSearch-compatible server and Redis, each test fleet on its own names
(bucket, queue, table, index) and its own Redis database."""

from __future__ import annotations

import itertools
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis

from rudolph import aws, devstack
from rudolph.index import SearchIndex
from rudolph.operations import sqs_counts
from rudolph.provision import init
from rudolph.record import Record, image_id
from rudolph.routes import Route
from rudolph.settings import Settings
from rudolph.store import RecordStore
from rudolph.vocabulary import QUEUES
from tests.servers import processes

RUDOLPH = str(Path(sys.executable).parent / "rudolph")
_databases = itertools.count()

T = TypeVar("T")


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """The first truthy result of `check`, or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class Fleet:
    settings: Settings
    env: dict[str, str]
    group: devstack.Processes
    broker: str

    @property
    def store(self) -> RecordStore:
        return RecordStore(self.settings)

    @property
    def index(self) -> SearchIndex:
        return SearchIndex(self.settings)

    def upload(self, key: str, body: bytes, bucket: str | None = None, **params: Any) -> None:
        aws.client("s3", self.settings).put_object(
            Bucket=bucket or self.settings.bucket, Key=key, Body=body, **params
        )

    def image_id(self, key: str, bucket: str | None = None) -> str:
        return image_id(bucket or self.settings.bucket, key)

    def record(self, key: str, timeout: float = 90.0, bucket: str | None = None) -> Record:
        """The record of `key` once it is written and its document is searchable."""
        wanted = self.image_id(key, bucket)

        def written() -> Record | None:
            self.check_alive()
            record = self.store.get(wanted)
            return record if record and self.index.searchable(wanted) else None

        return poll(written, timeout, f"record and document of {key!r}")

    def idle(self, timeout: float = 90.0) -> None:
        """Wait until nothing is left anywhere: SQS, the Celery queues, unacked tasks."""
        broker = redis.Redis.from_url(self.broker)
        left: dict[str, int] = {}

        def quiet() -> bool:
            self.check_alive()
            left["in SQS"] = self.in_sqs()
            left["queued"] = sum(int(broker.llen(q)) for q in QUEUES)  # type: ignore[arg-type]
            left["unacked"] = int(broker.hlen("unacked"))  # type: ignore[arg-type]
            return not any(left.values())

        # Twice, a moment apart: an event can sit between SQS and the broker for an instant.
        for attempt in range(2):
            time.sleep(attempt * 1.0)
            try:
                poll(quiet, timeout, "the fleet going idle")
            except AssertionError as error:
                raise AssertionError(f"{error}; still left: {left}") from None

    def in_sqs(self) -> int:
        """Events on the fleet's SQS queue, visible or received and not yet deleted."""
        events = sqs_counts(self.settings, self.settings.queue_name)
        return events.visible + events.in_flight

    def sqs_drained(self, timeout: float = 60.0) -> None:
        """Wait until the listener has taken every event off SQS (init's s3:TestEvent too)."""
        poll(lambda: self.check_alive() or self.in_sqs() == 0, timeout, "the listener draining SQS")

    def start_worker(self, name: str = "worker", concurrency: int = 2) -> None:
        self.group.start(
            name,
            devstack.celery_worker_argv(
                concurrency=concurrency, name=f"{name}-{self.settings.table}"
            ),
            self.env,
        )
        log = self.group.log_dir / f"{name}.log"
        start = log.stat().st_size if log.exists() else 0
        poll(lambda: " ready." in log.read_text()[start:], 60, f"{name} starting")

    def start_listener(self, name: str = "listener") -> None:
        self.group.start(name, [RUDOLPH, "listen"], self.env)

    def pool_children(self, name: str = "worker") -> list[int]:
        """PIDs of the worker's pool processes (the ones that run tasks)."""
        pid = self.group.process(name).pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]

    def items_for(self, key: str) -> int:
        """How many table items (records or deletion markers) carry this key."""
        items = aws.client("dynamodb", self.settings).scan(
            TableName=self.settings.table,
            FilterExpression="#k = :k",
            ExpressionAttributeNames={"#k": "key"},
            ExpressionAttributeValues={":k": {"S": key}},
        )["Items"]
        return len(items)

    def documents_for(self, key: str) -> int:
        self.index.refresh()
        return self.index.count({"term": {"key": key}})

    def check_alive(self) -> None:
        dead = self.group.dead()
        if dead:
            logs = "\n".join(
                f"--- {name}.log\n" + (self.group.log_dir / f"{name}.log").read_text()[-3000:]
                for name in dead
            )
            raise AssertionError(f"{dead} exited:\n{logs}")


@contextmanager
def fleet(
    aws_url: str,
    opensearch_url: str,
    redis_url: str,
    concurrency: int = 2,
    route: Route = "s3",
    **env: str,
) -> Iterator[Fleet]:
    """A fleet on names of its own; in an env value, `{name}` is that name (RUDOLPH_BUCKETS=
    "{name}, {name}-b" watches a second bucket); `route` is `rudolph init --events`."""
    name = f"t{uuid.uuid4().hex[:8]}"
    env = {variable: value.replace("{name}", name) for variable, value in env.items()}
    # Databases 1-15 of Redis's 16, reused in turn (fleets of different tests never overlap);
    # emptied first, so a reused one holds nothing of an earlier fleet.
    broker = redis_url.rsplit("/", 1)[0] + f"/{1 + next(_databases) % 15}"
    redis.Redis.from_url(broker).flushdb()
    environment = {**devstack.stack_env(aws_url, opensearch_url, broker, name), **env}
    settings = Settings.from_env(environment)
    init(settings, say=lambda _: None, route=route)
    with processes() as group:
        running = Fleet(settings, environment, group, broker)
        running.start_worker(concurrency=concurrency)
        running.start_listener()
        yield running
        running.check_alive()
