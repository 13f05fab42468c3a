"""`rudolph backfill` throughput and memory: listing + batch publishes, then a worker's
expansion of the batches into pipelines.

    .venv/bin/python bench/backfill.py [--objects 20000] [--batch 100] [--expand-seconds 30]

Starts moto and a redis-server of its own on free ports of 127.0.0.1, creates a bucket with N
small JPEG copies of a sample photo (put by a thread pool), a table and an empty broker; then
1. runs the real `rudolph backfill s3://bucket/` as a subprocess, no worker consuming
   (`--max-queued` above anything it will send, so backpressure never waits), sampling its
   /proc/PID/status (VmRSS, VmHWM) and the `aggregate` queue (dispatch batches x --batch refs)
   every 20 ms. It prints objects/s enqueued (what the command reports: enqueued / its own run
   time, listing included), peak RSS, and RSS at 2,000 and at N objects enqueued;
2. starts a real worker of the `aggregate` queue only (`-c 2`), as a fleet would, and counts
   the pipelines it publishes (the `labels` queue, one message each) for --expand-seconds or
   until all are out: the expansion rate, pipelines/s. Nothing consumes the feature queues.
Targets: >= 1,000 objects/s enqueued; RSS growth < 50 MB from 2,000 to N.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rudolph import aws, devstack  # noqa: E402
from rudolph.settings import Settings  # noqa: E402
from rudolph.store import RecordStore  # noqa: E402
from rudolph.vocabulary import AGGREGATE_QUEUE  # noqa: E402

RUDOLPH = str(Path(sys.executable).parent / "rudolph")
SAMPLE_SECONDS = 0.02
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
EARLY = 2000


def sample_photo() -> bytes:
    """A small JPEG of a real photo (scikit-image's sample data, shipped with the package)."""
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).resize((48, 32)).save(buffer, format="JPEG")
    return buffer.getvalue()


def create_objects(settings: Settings, count: int, threads: int = 16) -> float:
    """N objects under img/; seconds it took."""
    s3 = aws.client("s3", settings)
    body = sample_photo()
    started = time.monotonic()

    def put(n: int) -> None:
        s3.put_object(Bucket=settings.bucket, Key=f"img/{n:06d}.jpg", Body=body)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(count)))
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB, None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
    if "VmRSS" not in fields:
        return None  # a zombie: exited, not reaped yet
    return int(fields["VmRSS"]), int(fields["VmHWM"])


@dataclass
class Run:
    enqueued: int
    seconds: float
    rate: float
    peak_kb: int
    rss_early_kb: int | None
    rss_late_kb: int | None
    cpu: dict[str, float]  # CPU seconds per object: backfill, moto, redis


def run_backfill(
    env: dict[str, str], broker: redis.Redis, batch: int, count: int, servers: dict[str, int]
) -> Run:
    checkpoint = Path(tempfile.mkdtemp()) / "checkpoint.json"
    url = f"s3://{env['RUDOLPH_BUCKET']}/img/"
    argv = [RUDOLPH, "backfill", url, "--checkpoint", str(checkpoint),
            "--max-queued", str(10 * count), "--batch", str(batch)]  # fmt: skip
    process = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    early = late = None
    before = {name: cpu_seconds(pid) for name, pid in servers.items()}
    own = 0.0
    while process.poll() is None:
        own = max(own, cpu_seconds(process.pid))
        memory = memory_kb(process.pid)
        if memory is not None:
            rss, hwm = memory
            peak = max(peak, hwm)
            queued = batch * int(broker.llen(AGGREGATE_QUEUE))
            if early is None and queued >= EARLY:
                early = rss
            if queued >= count - batch:  # the last batch may be short
                late = rss if late is None else max(late, rss)
        time.sleep(SAMPLE_SECONDS)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"rudolph backfill failed ({process.returncode}):\n{stderr[-3000:]}")
    enqueued = int(_field(stdout, "enqueued"))
    seconds = float(_field(stdout, "seconds"))
    used = {"backfill": own, **{n: cpu_seconds(p) - before[n] for n, p in servers.items()}}
    per_object = {name: seconds_used / max(1, enqueued) for name, seconds_used in used.items()}
    return Run(enqueued, seconds, enqueued / seconds, peak, early, late, per_object)


def _field(summary: str, name: str) -> str:
    found = re.search(rf"^{name}\s+([\d.]+)", summary, re.M)
    if found is None:
        raise SystemExit(f"no {name!r} line in the backfill summary:\n{summary}")
    return found.group(1)


def expand(
    group: devstack.Processes, env: dict[str, str], broker: redis.Redis, count: int, limit: float
) -> tuple[int, float]:
    """(pipelines published, seconds) by a worker of the aggregate queue (-c 2)."""
    argv = devstack.celery_worker_argv(queues=(AGGREGATE_QUEUE,), concurrency=2, name="bench")
    group.start("worker", argv, {**os.environ, **env})
    log = group.log_dir / "worker.log"
    deadline = time.monotonic() + 60
    while " ready." not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start in 60 s; see {log}")
        time.sleep(0.2)
    started = time.monotonic()
    before = int(broker.llen("labels"))
    published = 0
    while time.monotonic() - started < limit and published < count:
        time.sleep(0.5)
        published = int(broker.llen("labels")) - before
    seconds = time.monotonic() - started
    group.kill("worker", signal.SIGTERM)
    return published, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--expand-seconds", type=float, default=30.0)
    parser.add_argument("--rate-target", type=float, default=1000.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as logs:
        group = devstack.Processes(Path(logs))
        with devstack.running(group):
            aws_url = devstack.start_moto(group, devstack.free_port())
            broker_url = devstack.start_redis(group, devstack.free_port())
            name = f"b{uuid.uuid4().hex[:8]}"
            env = devstack.stack_env(aws_url, "http://127.0.0.1:9", broker_url, name)
            os.environ.update(env)
            settings = Settings.from_env(env)
            aws.client("s3", settings).create_bucket(Bucket=settings.bucket)
            took = create_objects(settings, args.objects)
            print(f"created {args.objects} objects in {took:.0f} s ({args.objects / took:.0f}/s)")
            broker = redis.Redis.from_url(broker_url)
            RecordStore(settings).ensure()
            broker.flushdb()
            servers = {n: group.process(n).pid for n in ("moto", "redis")}
            run = run_backfill(env, broker, args.batch, args.objects, servers)
            growth = (
                f"{(run.rss_late_kb - run.rss_early_kb) / 1024:+.1f} MB"
                if run.rss_early_kb and run.rss_late_kb
                else "n/a"
            )
            verdict = "meets" if run.rate >= args.rate_target else "misses"
            print(
                f"backfill --batch {args.batch}: {run.enqueued} enqueued in {run.seconds:.1f} s = "
                f"{run.rate:.0f} objects/s ({verdict} the {args.rate_target:.0f}/s target); "
                f"peak RSS {run.peak_kb / 1024:.1f} MB; RSS at {EARLY}: "
                f"{(run.rss_early_kb or 0) / 1024:.1f} MB, at {args.objects}: "
                f"{(run.rss_late_kb or 0) / 1024:.1f} MB ({growth}); CPU ms per object: "
                + ", ".join(f"{n} {s * 1000:.2f}" for n, s in run.cpu.items())
            )
            published, seconds = expand(group, env, broker, run.enqueued, args.expand_seconds)
            print(
                f"expansion by one worker (-Q aggregate -c 2): {published} pipelines in "
                f"{seconds:.1f} s = {published / seconds:.0f} pipelines/s"
            )


if __name__ == "__main__":
    main()
