"""`rudolph backfill` against a real fleet: what it enqueues (counted in the Celery queues in
Redis, with the worker stopped), resuming after Ctrl-C, and backpressure."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rudolph import aws
from rudolph.operations import priority_keys
from tests.fleet import QUEUES, RUDOLPH, Fleet, fleet, poll
from tests.photos import encode, load

PHOTO = encode(load("chelsea").resize((48, 32)), "JPEG")


@pytest.fixture(scope="module")
def stopped_fleet(moto_url: str, opensearch_url: str, redis_url: str) -> Iterator[Fleet]:
    with fleet(moto_url, opensearch_url, redis_url) as running:
        # Uploads must not also arrive through S3 -> SQS -> listener.
        aws.client("s3", running.settings).put_bucket_notification_configuration(
            Bucket=running.settings.bucket, NotificationConfiguration={}
        )
        running.group.kill("worker", signal.SIGTERM)
        yield running


def _broker(running: Fleet) -> redis.Redis:
    return redis.Redis.from_url(running.broker)


def _purge(running: Fleet) -> None:
    _broker(running).delete(*[key for q in QUEUES for key in priority_keys(q)])


def _depth(running: Fleet) -> int:
    broker = _broker(running)
    return sum(int(broker.llen(key)) for q in QUEUES for key in priority_keys(q))


def _queued_keys(running: Fleet) -> list[str]:
    """The object key of every task waiting in the `labels` queue (one per pipeline)."""
    keys = []
    for raw in _broker(running).lrange("labels", 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        keys.append(args[0]["key"])
    return keys


def _upload(running: Fleet, prefix: str, images: int, others: int) -> list[str]:
    keys = [f"{prefix}img-{i:03d}.jpg" for i in range(images)]
    for key in keys:
        running.upload(key, PHOTO)
    for i in range(others):
        running.upload(f"{prefix}notes-{i}.txt", b"not a picture")
    return keys


def _backfill(running: Fleet, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RUDOLPH, "backfill", *args],
        env={**os.environ, **running.env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dry_run_then_run_then_nothing_twice(stopped_fleet: Fleet, tmp_path: Path) -> None:
    running = stopped_fleet
    _purge(running)
    keys = _upload(running, "a/", images=27, others=3)
    url = f"s3://{running.settings.bucket}/a/"
    checkpoint = ["--checkpoint", str(tmp_path / "a.json")]

    dry = _backfill(running, url, "--dry-run", *checkpoint)
    assert dry.returncode == 0, dry.stderr
    assert "listed    30" in dry.stdout and "would enqueue 27" in dry.stdout, dry.stdout
    assert "3 not an image" in dry.stdout
    assert _depth(running) == 0
    assert running.store.get(running.image_id(keys[0])) is None

    real = _backfill(running, url, *checkpoint)
    assert real.returncode == 0, real.stderr
    assert "enqueued  27" in real.stdout, real.stdout
    assert sorted(_queued_keys(running)) == keys

    again = _backfill(running, url, *checkpoint)
    assert again.returncode == 0, again.stderr
    assert "enqueued  0" in again.stdout, again.stdout
    assert sorted(_queued_keys(running)) == keys


def test_an_interrupted_run_resumes_without_doubles(stopped_fleet: Fleet, tmp_path: Path) -> None:
    running = stopped_fleet
    _purge(running)
    keys = _upload(running, "b/", images=28, others=2)
    url = f"s3://{running.settings.bucket}/b/"
    checkpoint = tmp_path / "b.json"
    args = ["--checkpoint", str(checkpoint), "--page-size", "5", "--batch", "2"]
    process = subprocess.Popen(
        [RUDOLPH, "backfill", url, *args, "--rate", "5"],
        env={**os.environ, **running.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        poll(checkpoint.exists, 30, "the first checkpoint", interval=0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    first = _queued_keys(running)
    assert 0 < len(first) < len(keys)

    resumed = _backfill(running, url, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    queued = _queued_keys(running)
    assert sorted(queued) == keys  # every image, each once
    assert f"enqueued  {len(keys) - len(first)}" in resumed.stdout, resumed.stdout


def test_filters_and_the_door(stopped_fleet: Fleet, tmp_path: Path) -> None:
    running = stopped_fleet
    _purge(running)
    running.upload("d/small.png", PHOTO)
    running.upload("d/big.jpg", PHOTO * 4)
    running.upload("d/empty.jpg", b"")
    url = f"s3://{running.settings.bucket}/d/"
    checkpoint = ["--checkpoint", str(tmp_path / "d.json")]

    def would(*args: str) -> str:
        result = _backfill(running, url, "--dry-run", *checkpoint, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "would enqueue 2" in would()
    assert "1 refused at the door" in would()
    assert "would enqueue 1" in would("--suffix", "png")
    assert "would enqueue 1" in would("--max-size", str(len(PHOTO)))
    assert "would enqueue 0" in would("--modified-since", "2999-01-01")
    assert "would enqueue 2" in would("--modified-since", "2000-01-01T00:00:00Z")

    real = _backfill(running, url, *checkpoint)
    assert real.returncode == 0, real.stderr
    assert "enqueued  2" in real.stdout, real.stdout
    assert sorted(_queued_keys(running)) == ["d/big.jpg", "d/small.png"]
    assert _broker(running).llen("aggregate") == 1  # the empty object's rejection


# Last: it starts the worker again.
def test_backpressure_waits_for_the_workers(stopped_fleet: Fleet, tmp_path: Path) -> None:
    running = stopped_fleet
    _purge(running)
    keys = _upload(running, "c/", images=8, others=0)
    bound, batch = 5, 2
    args = ["--checkpoint", str(tmp_path / "c.json"), "--max-queued", str(bound)]
    process = subprocess.Popen(
        [RUDOLPH, "backfill", f"s3://{running.settings.bucket}/c/", *args, "--batch", str(batch)],
        env={**os.environ, **running.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        poll(lambda: _depth(running) > bound, 30, "the queues filling")
        deepest = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            deepest = max(deepest, _depth(running))
            time.sleep(0.1)
        assert process.poll() is None, "backfill did not wait"
        # Three feature tasks per pipeline: at most one batch over the bound.
        assert bound < deepest <= bound + 3 * batch
        assert len(_queued_keys(running)) < len(keys)

        running.start_worker()
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, stderr
    assert f"enqueued  {len(keys)}" in stdout, stdout
    assert running.record(keys[-1]).status == "done"
