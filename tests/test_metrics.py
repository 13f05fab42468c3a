"""`rudolph metrics publish`: each Celery queue's depth in CloudWatch, and a publisher that
survives a broker or CloudWatch outage (moto's server and a Redis of the tests' own)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import redis
from botocore.exceptions import ClientError

from rudolph.errors import BrokerUnavailableError
from rudolph.metrics import METRIC, NAMESPACE, DepthPublisher, metric_data
from rudolph.operations import priority_keys
from rudolph.settings import Settings
from rudolph.vocabulary import QUEUES
from tests.servers import free_port

RUDOLPH = Path(sys.executable).parent / "rudolph"


def broker_app(url: str) -> Any:
    """What `operations.queue_depths` reads of a Celery app: its broker URL."""
    return SimpleNamespace(conf=SimpleNamespace(broker_url=url))


def cloudwatch(moto_url: str) -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_url)


def published(moto_url: str, fleet: str, queue: str) -> list[float]:
    now = datetime.now(UTC)
    answer = cloudwatch(moto_url).get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=METRIC,
        Dimensions=[{"Name": "Fleet", "Value": fleet}, {"Name": "Queue", "Value": queue}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=60,
        Statistics=["Maximum"],
    )
    return [float(point["Maximum"]) for point in answer["Datapoints"]]


def test_one_entry_per_queue_with_fleet_and_queue_dimensions() -> None:
    data = metric_data({q: i for i, q in enumerate(QUEUES)}, "prod")
    assert [d["Dimensions"][1]["Value"] for d in data] == list(QUEUES)
    assert all(d["Dimensions"][0] == {"Name": "Fleet", "Value": "prod"} for d in data)
    assert [d["Value"] for d in data] == [float(i) for i in range(len(QUEUES))]
    assert {d["MetricName"] for d in data} == {METRIC}
    assert {d["Unit"] for d in data} == {"Count"}


def test_depths_reach_cloudwatch_priority_lists_included(moto_url: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    faces = priority_keys("faces")
    client.rpush(faces[0], "a", "b", "c")
    client.rpush(faces[-1], "d")  # a lower-priority list of the same queue
    client.rpush("labels", "e")
    settings = Settings(aws_endpoint_url=moto_url)
    publisher = DepthPublisher(settings, broker_app(redis_url), fleet="test-depths")
    result = publisher.publish_once()
    assert result.ok, result.error
    assert result.depths == {"labels": 1, "text": 0, "faces": 4, "aggregate": 0}
    assert published(moto_url, "test-depths", "faces") == [4.0]
    assert published(moto_url, "test-depths", "labels") == [1.0]
    assert published(moto_url, "test-depths", "text") == [0.0]
    client.flushdb()


class FlakyCloudWatch:
    """Fails the calls whose numbers are listed, records the others."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.calls = 0
        self.sent: list[list[dict[str, Any]]] = []

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.calls in self.failing:
            raise ClientError(
                {"Error": {"Code": "InternalServiceError", "Message": "boom"}}, "PutMetricData"
            )
        self.sent.append(MetricData)


def test_a_failed_publish_is_logged_and_the_next_interval_publishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    readings = iter(
        [
            {q: 1 for q in QUEUES},
            BrokerUnavailableError("redis is down"),
            {q: 2 for q in QUEUES},
            {q: 3 for q in QUEUES},
        ]
    )

    def read(app: Any) -> dict[str, int]:
        reading = next(readings)
        if isinstance(reading, Exception):
            raise reading
        return reading

    flaky = FlakyCloudWatch(failing={2})  # the 3rd reading's call (2nd call) fails
    publisher = DepthPublisher(Settings(), None, cloudwatch=flaky, read_depths=read)
    slept: list[float] = []
    done = publisher.run(interval=5, sleep=slept.append, rounds=4)
    assert [p.ok for p in done] == [True, False, False, True]
    assert done[1].error is not None and done[1].error.startswith("broker:")
    assert done[2].error is not None and done[2].error.startswith("cloudwatch:")
    assert [entries[0]["Value"] for entries in flaky.sent] == [1.0, 3.0]
    assert "trying again next interval" in caplog.text
    assert sum(slept) == pytest.approx(15, abs=0.5)  # slept between the 4 rounds, not after


def test_a_stop_request_ends_the_loop_between_publications() -> None:
    flaky = FlakyCloudWatch(failing=set())
    stop: list[bool] = []
    publisher = DepthPublisher(
        Settings(), None, cloudwatch=flaky, read_depths=lambda app: {q: 0 for q in QUEUES}
    )
    done = publisher.run(
        interval=60, stopping=lambda: bool(stop), sleep=lambda s: stop.append(True)
    )
    assert len(done) == 1 and flaky.calls == 1


def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUDOLPH), "metrics", "publish", "--once", "--fleet", "cli"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_publishes_and_says_so(moto_url: str, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    done = run_cli({"RUDOLPH_AWS_ENDPOINT_URL": moto_url, "CELERY_BROKER_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert "queue depths published" in done.stderr
    assert published(moto_url, "cli", "aggregate") == [0.0]


def test_the_command_with_the_broker_down_fails_without_a_traceback(moto_url: str) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli({"RUDOLPH_AWS_ENDPOINT_URL": moto_url, "CELERY_BROKER_URL": down})
    assert done.returncode == 1
    assert "trying again next interval" in done.stderr
    assert "Traceback" not in done.stderr
