"""`rudolph backfill` against a real fleet: what it enqueues (counted in the Celery queues in
Redis, with only a worker of the `aggregate` queue running, which expands the backfill's
dispatch batches and leaves the feature tasks waiting), resuming after Ctrl-C and SIGKILL,
backpressure, and --all exactly once."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from producer.backfill import listed_ref
from rudolph import aws, claims, devstack
from rudolph.operations import priority_keys
from rudolph.vocabulary import AGGREGATE_QUEUE
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
        # Nor its periodic reconcile send what a test counts; first it takes init's TestEvent
        # off SQS, which would otherwise stay there and keep `idle` waiting.
        running.sqs_drained()
        running.group.kill("listener", signal.SIGTERM)
        _start_batch_worker(running)
        yield running


def _start_batch_worker(running: Fleet) -> None:
    """A worker of the aggregate queue only: dispatch batches expand, features wait."""
    argv = devstack.celery_worker_argv(
        queues=(AGGREGATE_QUEUE,), concurrency=2, name=f"batches-{running.settings.table}"
    )
    running.group.start("batches", argv, running.env)
    log = running.group.log_dir / "batches.log"
    start = log.stat().st_size if log.exists() else 0
    poll(lambda: " ready." in log.read_text()[start:], 60, "the batch worker starting")


def _settled(running: Fleet) -> None:
    """Wait until the aggregate queue is empty and nothing is unacknowledged (twice)."""
    broker = _broker(running)

    def empty() -> bool:
        keys = [*priority_keys(AGGREGATE_QUEUE)]
        return sum(int(broker.llen(k)) for k in keys) == 0 and not broker.hlen("unacked")

    poll(lambda: empty() and (time.sleep(0.3) is None) and empty(), 60, "dispatch expanded")


def _broker(running: Fleet) -> redis.Redis:
    return redis.Redis.from_url(running.broker)


def _purge(running: Fleet) -> None:
    _broker(running).delete(*[key for q in QUEUES for key in priority_keys(q)])


def _depth(running: Fleet) -> int:
    broker = _broker(running)
    return sum(int(broker.llen(key)) for q in QUEUES for key in priority_keys(q))


def _queued_keys(running: Fleet, queue: str = "labels", settle: bool = True) -> list[str]:
    """The object key of every task waiting in a queue (`labels`: one per pipeline), once
    the dispatch batches were expanded."""
    if settle:
        _settled(running)
    keys = []
    for raw in _broker(running).lrange(queue, 0, -1):
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


def _backfill(
    running: Fleet, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RUDOLPH, "backfill", *args],
        env={**os.environ, **running.env, **env},
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
    assert "Traceback" not in real.stderr, real.stderr  # nothing printed at exit either
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
    assert "--resume" in stderr and "Traceback" not in stderr, stderr
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
    assert running.record("d/empty.jpg").status == "failed"  # rejected by the dispatch task


def _inventory(running: Fleet, rows: list[list[str]], per_file: int) -> str:
    """An S3 Inventory report of `rows` (CSV, gzip) in the documented layout, in the fleet's
    bucket under inventory/; its manifest's s3:// URL."""
    bucket = running.settings.bucket
    s3 = aws.client("s3", running.settings)
    files = []
    for n, start in enumerate(range(0, len(rows), per_file)):
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL).writerows(rows[start : start + per_file])
        body = gzip.compress(out.getvalue().encode())
        key = f"inventory/{bucket}/daily/data/part-{n}.csv.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        files.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": f"arn:aws:s3:::{bucket}",
        "version": "2016-11-30",
        "creationTimestamp": "1514944800000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, "
        "LastModifiedDate, ETag, StorageClass",
        "files": files,
    }
    key = f"inventory/{bucket}/daily/2026-01-01T00-00Z/manifest.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    return f"s3://{bucket}/{key}"


def test_an_inventory_report_instead_of_the_listing(stopped_fleet: Fleet, tmp_path: Path) -> None:
    running = stopped_fleet
    _purge(running)
    bucket = running.settings.bucket
    keys = ["i/red car.jpg", "i/a+b.jpg", "i/plain.jpg", "i/sub/deep.png"]
    for key in keys:
        running.upload(key, PHOTO)
    s3 = aws.client("s3", running.settings)
    rows = []
    for key in [*keys, "i/notes.txt", "other/x.jpg"]:
        head = s3.head_object(Bucket=bucket, Key=key) if key in keys else None
        size, etag = (str(head["ContentLength"]), head["ETag"].strip('"')) if head else ("9", "e")
        # Keys are URL-encoded in the CSV (a space as %20 or +, a plus as %2B).
        rows.append(
            [
                bucket,
                urllib.parse.quote_plus(key, safe="/"),
                "",
                "true",
                "false",
                size,
                "2026-01-01T00:00:00.000Z",
                etag,
                "STANDARD",
            ]
        )
    rows.append(
        [bucket, "i/gone.jpg", "", "true", "true", "", "2026-01-01T00:00:00.000Z", "", ""]
    )  # a delete marker: nothing to do
    manifest = _inventory(running, rows, per_file=3)
    url = f"s3://{bucket}/i/"
    args = ["--inventory", manifest, "--checkpoint", str(tmp_path / "i.json"), "--page-size", "2"]

    dry = _backfill(running, url, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would enqueue 4" in dry.stdout and "1 not an image" in dry.stdout, dry.stdout
    real = _backfill(running, url, *args)
    assert real.returncode == 0, real.stderr
    assert "enqueued  4" in real.stdout, real.stdout
    assert sorted(_queued_keys(running)) == sorted(keys)
    checkpoint = json.loads((tmp_path / "i.json").read_text())
    assert checkpoint["complete"] and checkpoint["position"] == [2, 1]
    again = _backfill(running, url, *args, "--resume")
    assert "enqueued  0" in again.stdout, again.stdout
    assert sorted(_queued_keys(running)) == sorted(keys)

    wrong = _backfill(
        running,
        f"s3://{bucket}-other/",
        "--inventory",
        manifest,
        "--dry-run",
        RUDOLPH_BUCKETS=f"{bucket}, {bucket}-other",
    )
    assert wrong.returncode == 2 and f"inventory of s3://{bucket}" in wrong.stderr, wrong.stderr


def test_batches_resent_after_a_crash_are_sent_once(stopped_fleet: Fleet, tmp_path: Path) -> None:
    """A crash after batches were published but before their checkpoint: the resumed run
    publishes them again before any was expanded; their claims refuse the second copy."""
    running = stopped_fleet
    _purge(running)
    keys = _upload(running, "e/", images=6, others=0)
    url = f"s3://{running.settings.bucket}/e/"
    checkpoint = tmp_path / "e.json"
    args = ["--checkpoint", str(checkpoint), "--page-size", "2", "--batch", "2"]
    running.group.kill("batches", signal.SIGTERM)
    try:
        first = _backfill(running, url, *args)
        assert first.returncode == 0, first.stderr
        data = json.loads(checkpoint.read_text())
        # The checkpoints after the first batch were lost.
        checkpoint.write_text(json.dumps({**data, "last_key": keys[1], "complete": False}))
        resumed = _backfill(running, url, *args, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert "enqueued  4" in resumed.stdout, resumed.stdout  # published again
    finally:
        _start_batch_worker(running)
    assert sorted(_queued_keys(running)) == keys  # every image, each once


def test_sigkill_mid_run_then_resume_sends_every_image_once(
    stopped_fleet: Fleet, tmp_path: Path
) -> None:
    running = stopped_fleet
    _purge(running)
    keys = _upload(running, "k/", images=40, others=0)
    url = f"s3://{running.settings.bucket}/k/"
    args = ["--checkpoint", str(tmp_path / "k.json"), "--page-size", "7", "--batch", "3"]
    process = subprocess.Popen(
        [RUDOLPH, "backfill", url, *args, "--rate", "10"],
        env={**os.environ, **running.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: len(_queued_keys(running, settle=False)) >= 12, 30, "a dozen sent")
    finally:
        process.kill()  # SIGKILL: no handler runs, no checkpoint is written on the way out
        process.wait(10)
    first = _queued_keys(running)
    assert len(first) < len(keys)
    assert len(set(first)) == len(first)

    resumed = _backfill(running, url, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(_queued_keys(running)) == keys  # every image, each once


def test_a_claim_whose_publish_was_lost_is_sent_by_reconcile(stopped_fleet: Fleet) -> None:
    """A dispatch worker killed between an image's claim and its publish: the image stays
    pending, a backfill (or the redelivered batch) refuses to send it twice, and `rudolph
    reconcile` sends it once it has been pending long enough."""
    running = stopped_fleet
    _purge(running)
    keys = _upload(running, "p/", images=4, others=0)
    listed = aws.client("s3", running.settings).list_objects_v2(
        Bucket=running.settings.bucket, Prefix="p/"
    )
    lost = next(obj for obj in listed["Contents"] if obj["Key"] == keys[1])
    ref = listed_ref(running.settings.bucket, lost)
    long_ago = "2020-01-01T00:00:00.000000+00:00"
    assert claims.claim_new(running.store, ref, long_ago, "a-killed-run")

    sent = _backfill(running, f"s3://{running.settings.bucket}/p/")
    assert sent.returncode == 0, sent.stderr
    assert sorted(_queued_keys(running)) == [k for k in keys if k != keys[1]]

    reconciled = subprocess.run(
        [RUDOLPH, "reconcile", "--older-than", "600"],
        env={**os.environ, **running.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reconciled.returncode == 0, reconciled.stderr
    assert reconciled.stdout.startswith("1 pending image(s) dispatched again"), reconciled.stdout
    assert sorted(_queued_keys(running)) == keys  # every image, each once


# Next to last: it starts the worker again.
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
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert f"enqueued  {len(keys)}" in stdout, stdout
    # The backfill ends once everything is enqueued; the workers finish after it.
    poll(lambda: running.record(keys[-1]).status == "done", 120, "the last image analysed")


# After the backpressure test: the worker runs.
def test_missing_faces_reruns_faces_only(stopped_fleet: Fleet, tmp_path: Path) -> None:
    running = stopped_fleet
    _purge(running)
    keys = _upload(running, "m/", images=3, others=0)
    url = f"s3://{running.settings.bucket}/m/"
    first = _backfill(running, url, "--checkpoint", str(tmp_path / "m1.json"))
    assert first.returncode == 0, first.stderr
    before = {key: running.record(key) for key in keys}
    assert all(r.status == "done" and r.analyzer and "faces" in r.analyzer.versions
               for r in before.values())  # fmt: skip
    table = aws.client("dynamodb", running.settings)
    # keys[0]: faces failed; keys[1]: faces never ran; keys[2]: complete.
    table.update_item(
        TableName=running.settings.table,
        Key={"image_id": {"S": running.image_id(keys[0])}},
        UpdateExpression="SET errors.faces = :e, #s = :partial REMOVE analyzer.versions.faces",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":e": {"S": "Timeout: too slow"}, ":partial": {"S": "partial"}},
    )
    table.update_item(
        TableName=running.settings.table,
        Key={"image_id": {"S": running.image_id(keys[1])}},
        UpdateExpression="REMOVE analyzer.versions.faces",
    )
    running.group.kill("worker", signal.SIGTERM)
    _purge(running)

    missing = _backfill(
        running, url, "--missing", "faces", "--checkpoint", str(tmp_path / "m2.json")
    )
    assert missing.returncode == 0, missing.stderr
    assert "enqueued  2" in missing.stdout and "1 has faces" in missing.stdout, missing.stdout
    assert sorted(_queued_keys(running, "faces")) == keys[:2]
    assert _depth(running) == 2  # no labels, text or aggregate message

    running.start_worker()

    def faces_again(key: str) -> bool:
        record = running.store.get(running.image_id(key))
        return bool(
            record and record.status == "done" and record.analyzer
            and "faces" in record.analyzer.versions and "faces" not in record.errors
        )  # fmt: skip

    for key in keys[:2]:
        poll(lambda key=key: faces_again(key), 90, f"faces of {key} re-run")
        after = running.store.get(running.image_id(key))
        assert after is not None
        assert after.labels == before[key].labels and after.text == before[key].text
        assert after.faces == before[key].faces
    running.idle()


# After the --missing test: the worker runs and m/ is analysed.
def test_all_reruns_each_image_once_per_run(stopped_fleet: Fleet, tmp_path: Path) -> None:
    running = stopped_fleet
    keys = [f"m/img-{i:03d}.jpg" for i in range(3)]
    url = f"s3://{running.settings.bucket}/m/"
    checkpoint = tmp_path / "all.json"

    def revision(key: str) -> int:
        item = running.store.table.get_item(Key={"image_id": running.image_id(key)})["Item"]
        return int(item["revision"]) if item.get("status") != "pending" else -1

    before = {key: revision(key) for key in keys}
    first = _backfill(running, url, "--all", "--checkpoint", str(checkpoint))
    assert first.returncode == 0, first.stderr
    assert "enqueued  3" in first.stdout, first.stdout
    for key in keys:
        poll(lambda key=key: revision(key) > before[key], 90, f"{key} analysed again")
    running.idle()
    after = {key: revision(key) for key in keys}

    # A crash before any checkpoint: the same run (same run id) sends every batch again.
    data = json.loads(checkpoint.read_text())
    checkpoint.write_text(json.dumps({**data, "last_key": None, "complete": False}))
    again = _backfill(running, url, "--all", "--checkpoint", str(checkpoint), "--resume")
    assert again.returncode == 0, again.stderr
    running.idle()
    assert {key: revision(key) for key in keys} == after  # refused by the run's claims


def test_without_a_url_every_watched_bucket_within_its_filters(stopped_fleet: Fleet) -> None:
    running = stopped_fleet
    first = running.settings.bucket
    second = f"{first}-two"
    aws.client("s3", running.settings).create_bucket(Bucket=second)
    for key in ("watched/in.jpg", "watched/in.png", "unwatched/out.jpg"):
        running.upload(key, PHOTO)
    running.upload("anything.jpg", PHOTO, bucket=second)
    watched = f"s3://{first}/watched/ *.jpg, {second}"
    dry = _backfill(running, "--dry-run", RUDOLPH_BUCKETS=watched)
    assert dry.returncode == 0, dry.stderr
    first_run, second_run = dry.stdout.split(f"backfill  s3://{second}/")
    assert f"backfill  s3://{first}/watched/" in first_run
    assert "listed    2" in first_run and "1 outside RUDOLPH_BUCKETS" in first_run, first_run
    assert "would enqueue 1" in first_run and "would enqueue 1" in second_run, dry.stdout

    refused = _backfill(running, f"s3://{first}-elsewhere/", "--dry-run", RUDOLPH_BUCKETS=watched)
    assert refused.returncode == 2
    assert f"s3://{first}-elsewhere is not watched (RUDOLPH_BUCKETS:" in refused.stderr


def test_the_progress_reads_results_only_the_aggregate_keeps() -> None:
    """`rudolph backfill` counts done and failed images from the aggregates' results in the
    result backend (producer/progress.py): the aggregate task keeps its result, and the
    feature task that aggregates stores the same summary under the aggregate's id
    (tests/test_joins.py); the feature tasks' own results are stored nowhere (their outcomes
    meet in the join, and nothing else reads them)."""
    from workers.tasks import aggregate, backfill_batch, faces, labels, reject, remove, text

    assert not aggregate.ignore_result and not backfill_batch.ignore_result
    assert all(t.ignore_result for t in (labels, text, faces, reject, remove))
