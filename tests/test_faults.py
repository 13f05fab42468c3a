"""Nothing lost, nothing doubled: faults injected into a real fleet (worker and listener
processes over moto, the OpenSearch-compatible server and Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path

import pytest
import redis

from rudolph import aws, devstack
from tests.fleet import RUDOLPH, Fleet, fleet, poll
from tests.photos import encode, load
from tests.servers import processes, reachable_by_server

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]


def _upload(running: Fleet, prefix: str, count: int) -> list[str]:
    photos = cycle([encode(load(name), "JPEG") for name in PHOTOS])
    keys = [f"{prefix}/{i:03d}.jpg" for i in range(count)]
    for key in keys:
        running.upload(key, next(photos))
    return keys


def _all_done_once(running: Fleet, keys: list[str], timeout: float = 120.0) -> None:
    for key in keys:
        record = running.record(key, timeout=timeout)
        assert record.status == "done", (key, record.errors)
    running.idle()
    for key in keys:
        assert running.items_for(key) == 1, key
        assert running.documents_for(key) == 1, key


def _busy(running: Fleet) -> bool:
    return int(redis.Redis.from_url(running.broker).hlen("unacked")) > 0  # type: ignore[arg-type]


@pytest.fixture
def running(moto_url: str, opensearch_url: str, redis_url: str) -> Iterator[Fleet]:
    # Unacknowledged tasks of a dead worker come back after 5 s instead of an hour.
    with fleet(moto_url, opensearch_url, redis_url, CELERY_VISIBILITY_TIMEOUT="5") as fleet_:
        yield fleet_


def test_a_pool_process_killed_mid_task_loses_no_image(running: Fleet) -> None:
    keys = _upload(running, "pool-kill", 8)
    poll(lambda: _busy(running), 60, "a task running")
    victim = running.pool_children()[0]
    os.kill(victim, signal.SIGKILL)
    _all_done_once(running, keys)
    log = (running.group.log_dir / "worker.log").read_text()
    assert "exited with 'signal 9 (SIGKILL)'" in log or "WorkerLostError" in log


def test_a_whole_worker_killed_mid_task_loses_no_image(running: Fleet) -> None:
    keys = _upload(running, "worker-kill", 8)
    poll(lambda: _busy(running), 60, "a task running")
    running.group.kill("worker", signal.SIGKILL)  # the main process and its pool, at once
    running.start_worker("replacement")
    _all_done_once(running, keys)


CRASHING_LISTENER = """
import os, signal
from producer.listener import Listener
from rudolph.publishing import CeleryPublisher
from rudolph.settings import get_settings
from workers import app

class EnqueueThenDie(CeleryPublisher):
    def created(self, ref):
        super().created(ref)
        os.kill(os.getpid(), signal.SIGKILL)  # after the enqueue, before the SQS delete

Listener(get_settings(), EnqueueThenDie(app), wait_seconds=1).run()
"""


def test_the_listener_killed_between_enqueue_and_delete_doubles_nothing(running: Fleet) -> None:
    running.group.kill("listener", signal.SIGTERM)
    sqs = aws.client("sqs", running.settings)
    url = sqs.get_queue_url(QueueName=running.settings.queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})
    (key,) = _upload(running, "listener-kill", 1)
    crash = subprocess.run(
        [sys.executable, "-c", CRASHING_LISTENER],
        env={**os.environ, **running.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crash.returncode == -signal.SIGKILL, crash.stderr
    running.start_listener()  # gets the same message again once it is visible
    _all_done_once(running, [key])
    log = (running.group.log_dir / "listener.log").read_text()
    assert key in log, "the redelivered event was handled"


def test_redis_restarted_mid_run_reconcile_finishes_every_image(
    moto_url: str, opensearch_url: str
) -> None:
    with processes() as redis_group:
        port = devstack.free_port()
        broker = devstack.start_redis(redis_group, port)
        with fleet(moto_url, opensearch_url, broker) as running:
            keys = _upload(running, "redis-restart", 10)
            poll(lambda: _busy(running), 60, "a task running")
            redis_group.kill("redis")  # no persistence: queued tasks and chord state are gone
            devstack.start_redis(redis_group, port)
            env = {**os.environ, **running.env}

            def finished() -> bool:
                running.check_alive()  # the listener and the worker outlive the restart
                records = [running.store.get(running.image_id(key)) for key in keys]
                if all(r is not None and r.status == "done" for r in records):
                    return True
                subprocess.run(
                    [RUDOLPH, "reconcile", "--older-than", "5"],
                    env=env,
                    capture_output=True,
                    timeout=60,
                    check=True,
                )
                return False

            try:
                poll(finished, 180, "every image done after reconcile", interval=3)
            except AssertionError as error:
                records = [running.store.get(running.image_id(key)) for key in keys]
                statuses = [r.status if r else None for r in records]
                log = (running.group.log_dir / "worker.log").read_text()[-6000:]
                dead = running.group.dead()
                raise AssertionError(
                    f"{error}; statuses {statuses}; exited {dead}\n{log}"
                ) from None
            _all_done_once(running, keys)


def test_the_listener_waits_out_a_broker_outage(moto_url: str, opensearch_url: str) -> None:
    with processes() as redis_group:
        port = devstack.free_port()
        broker = devstack.start_redis(redis_group, port)
        with fleet(moto_url, opensearch_url, broker) as running:
            running.sqs_drained()  # init's test event is out of the way
            redis_group.kill("redis")
            keys = _upload(running, "broker-outage", 3)
            log = running.group.log_dir / "listener.log"
            poll(
                lambda: running.check_alive() or "once the broker answers" in log.read_text(),
                60,
                "the listener noticing the outage",
            )
            devstack.start_redis(redis_group, port)
            # Within the queue's 120 s visibility timeout: the held messages were released.
            _all_done_once(running, keys, timeout=60)
            assert "the broker answers again" in log.read_text()


def test_the_index_server_stopped_mid_run_loses_nothing(moto_url: str, redis_url: str) -> None:
    # Its data outside pytest's folders: another pytest run makes those 0700 again, and the
    # node (as nobody, when we are root) must enter them when it starts a second time.
    with (
        tempfile.TemporaryDirectory(prefix="rudolph-index-down-") as scratch,
        processes() as search_group,
    ):
        port, data = devstack.free_port(), reachable_by_server(Path(scratch)) / "opensearch"
        search_url = devstack.start_opensearch(search_group, port, data)
        with fleet(moto_url, search_url, redis_url) as running:
            keys = _upload(running, "index-down", 6)
            poll(lambda: _busy(running), 60, "a task running")
            search_group.kill("opensearch", signal.SIGTERM)
            # Uploaded once the index is gone: their aggregates cannot index, however fast the
            # first ten went (under load, all of them could finish before the node stopped).
            keys += _upload(running, "index-down-after", 3)
            # DynamoDB is the source of truth: every image is in the table while the index is
            # down (pending, then analysed as the aggregates write the table first).
            poll(
                lambda: all(running.store.get(running.image_id(k)) for k in keys),
                60,
                "every image in DynamoDB while the index is down",
            )
            worker_log = running.group.log_dir / "worker.log"
            try:
                poll(
                    lambda: any(
                        "IndexUnavailable" in line or "retry" in line
                        for line in worker_log.read_text().splitlines()
                    ),
                    300,
                    "an aggregate failing to index and retrying",
                )
            except AssertionError as error:
                raise AssertionError(f"{error}\n{worker_log.read_text()[-4000:]}") from None
            assert all(running.store.get(running.image_id(k)) for k in keys)
            devstack.start_opensearch(search_group, port, data)
            rebuilt = subprocess.run(
                [RUDOLPH, "reindex"],
                env={**os.environ, **running.env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert rebuilt.returncode == 0, rebuilt.stderr
            _all_done_once(running, keys, timeout=180)
