"""Pipeline throughput and latency: S3 upload -> searchable, against analysis alone.

    .venv/bin/python bench/pipeline.py [--images 60] [--concurrency 2] [--warmup 4] [--rounds 3]

Part 1 starts the whole local stack on free ports of 127.0.0.1 (moto, OpenSearch, its own
redis-server), runs `rudolph init`, one `celery -A workers worker -c C` on every queue and one
`rudolph listen`, warms every pool process up, then uploads N 640x480 photos (bench/analyze.py's
set, cycled, each under its own key) as fast as it can and polls every `--poll-every` (200 ms)
until each one is searchable (one `ids` query for all outstanding images; `--poll each` calls
`SearchIndex.searchable` per image instead, which costs the 2-core machine a lot of CPU). It
reports images/s (N / first upload -> last searchable), the latency of each image (upload start
-> searchable) split at the listener's enqueue and the aggregate's end (from their logs), the
CPU each stack process used in that window and how long the Celery tasks ran.

Part 2, on the same machine and images, with the stack idle: C processes, one onnxruntime
thread each, run all three features on the N images with LocalAnalyzer (no S3, no Celery).
The ratio pipeline / analysis-only is the target (>= 85%). After both, one process times a
single image.

The fleet's own cost without the models: bench/stubmodels/sitecustomize.py says how.

The two parts take turns, `--rounds` times: this shared machine's speed drifts by tens of
percent within minutes, so each pipeline round is compared with the analysis round right after
it (the paired ratio), and the best round of each kind counts too: other jobs only slow a
round down, and the report shows how much CPU they took in each window. `cores / CPU per
image` is the ceiling of each setup. Variables such as OPENBLAS_NUM_THREADS=1 set when calling
this reach every process it starts.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.analyze import NAMES, percentile, photos_640x480, time_features  # noqa: E402
from rudolph import aws, devstack  # noqa: E402
from rudolph.backends.local import LocalAnalyzer  # noqa: E402
from rudolph.index import SearchIndex  # noqa: E402
from rudolph.index import client as opensearch_client  # noqa: E402
from rudolph.provision import init  # noqa: E402
from rudolph.record import image_id  # noqa: E402
from rudolph.settings import FEATURES, Settings  # noqa: E402
from rudolph.source import ImageInput  # noqa: E402
from rudolph.store import RecordStore  # noqa: E402

RUDOLPH = str(Path(sys.executable).parent / "rudolph")
# A search right after writes costs noida-db ~30 ms of CPU: polling every 50 ms took a
# quarter of the search server's CPU in the window, for 150 ms more precision on seconds.
POLL_SECONDS = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# -- CPU time of a process and its descendants (/proc) ------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()  # fields 3.. (the name may hold spaces and parens)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                tree[int(fields[1])].append(int(entry.name))
    return tree


def tree_cpu_seconds(root: int, tree: dict[int, list[int]] | None = None) -> dict[int, float]:
    """utime+stime (+ reaped children's) of `root` and every live descendant, by PID."""
    tree = tree if tree is not None else _children()
    found: dict[int, float] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of /proc/PID/stat
        found[pid] = sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
        pending.extend(tree.get(pid, []))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy since boot (all processes, ours and others')."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / CLOCK_TICKS


def wait_for_quiet(limit: float = 30.0, busy_cores: float = 0.3) -> float:
    """Wait (at most `limit` s) for a second in which the machine is busy for less than
    `busy_cores`: other people's jobs only add noise. Returns the last second's busy cores."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = machine_busy_seconds() - before
        if busy < busy_cores or time.monotonic() > deadline:
            return busy


def _cpu_now() -> float:
    times = os.times()
    return times.user + times.system


# -- the worker's log: what its tasks did -------------------------------------------------------

_LOG_LINE = re.compile(
    r"^\[(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/(?P<process>[\w-]+)\] "
    r"Task rudolph\.(?P<task>\w+)\[[\w-]+\] succeeded in (?P<seconds>[\d.]+)s"
)


_ENQUEUED = re.compile(
    r"^(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO rudolph\.listen: "
    r"s3://[^/]+/(?P<key>.+): pipeline [\w-]+ enqueued$"
)
# An image saved: rudolph's outcome line, written by whichever task aggregated it.
_AGGREGATED = re.compile(
    r"^(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO rudolph\.outcome: image \w+ "
    r'.* key=(?:"(?P<quoted>[^"\\]*)"|(?P<key>\S+)) status='  # quoted when it has spaces
)


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class TaskRun:
    task: str
    process: str
    finished: float  # epoch seconds
    seconds: float


def task_runs(log: Path) -> list[TaskRun]:
    runs = []
    for line in log.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if match:
            runs.append(
                TaskRun(
                    match["task"], match["process"], _epoch(match["when"]), float(match["seconds"])
                )
            )
    return runs


def aggregated_at(log: Path) -> dict[str, float]:
    """When each object's record was saved, by key (the last one, if saved twice)."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        match = _AGGREGATED.match(line)
        if match:
            found[match["quoted"] or match["key"]] = _epoch(match["when"])
    return found


def enqueued_at(log: Path) -> dict[str, float]:
    """When the listener enqueued each object's pipeline, by key."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        match = _ENQUEUED.match(line)
        if match:
            found[match["key"]] = _epoch(match["when"])
    return found


# -- part 1: the pipeline -----------------------------------------------------------------------


@dataclass
class PipelineResult:
    images: int
    seconds: float
    latencies_ms: list[float]
    upload_seconds: float
    cpu: dict[str, float]
    machine_busy: float  # every process on the machine, CPU seconds in the window
    worker_pool_cpu: float
    tasks: list[TaskRun]
    statuses: dict[str, int]
    polls: int
    #: per stage (upload -> enqueued, enqueued -> aggregated, aggregated -> searchable): ms
    stages: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.images / self.seconds

    @property
    def our_cpu(self) -> float:
        return sum(self.cpu.values())


@contextmanager
def stack(log_dir: Path, data_dir: Path, concurrency: int) -> Iterator[tuple[Any, ...]]:
    """moto, OpenSearch (noida-db with RUDOLPH_DEV_SEARCH=noida), redis, init, a worker and a
    listener; everything stopped after."""
    group = devstack.Processes(log_dir)
    try:
        aws_url = devstack.start_moto(group, devstack.free_port())
        search_url = devstack.start_opensearch(group, devstack.free_port(), data_dir)
        broker = devstack.start_redis(group, devstack.free_port())
        name = f"bench{uuid.uuid4().hex[:8]}"
        env = devstack.stack_env(aws_url, search_url, broker, name)
        if os.environ.get("RUDOLPH_MODEL_DIR"):
            env["RUDOLPH_MODEL_DIR"] = os.environ["RUDOLPH_MODEL_DIR"]
        # This process's boto3 clients (init, uploads) talk to moto with the same fake keys.
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            os.environ[variable] = env[variable]
        settings = Settings.from_env(env)
        init(settings, say=lambda _: None)
        argv = devstack.celery_worker_argv(concurrency=concurrency, name=name)
        worker = group.start("worker", argv, env)
        log = log_dir / "worker.log"

        def worker_ready() -> bool:
            group.check(worker, "worker")
            return log.exists() and " ready." in log.read_text(errors="replace")

        wait_for(worker_ready, 90, "the worker starting")
        listener = group.start("listener", [RUDOLPH, "listen"], env)
        pids = {
            name: process.pid
            for name, process in group.running
            if name in ("moto", "opensearch", "redis")
        }
        pids.update(listener=listener.pid, worker=worker.pid)
        yield settings, group, pids
    finally:
        # The producers first, so none of them is cut off from moto or Redis mid-request;
        # then what is left (devstack.Processes.stop: SIGTERM, SIGKILL after 20 s).
        # An idle listener holds no work; it may sit out its 20 s long poll before it exits.
        for name, process in reversed(group.running):
            if name in ("listener", "worker") and process.poll() is None:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(3 if name == "listener" else 20)
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
        group.stop()


class Searchable:
    """Which of some image ids a search finds now: one request for all of them, or (`each`)
    one `SearchIndex.searchable` call per id."""

    def __init__(self, settings: Settings, each: bool) -> None:
        self.settings = settings
        self.each = each
        self.index = SearchIndex(settings)
        self.client = opensearch_client(settings)

    def __call__(self, ids: list[str]) -> set[str]:
        if self.each:
            return {i for i in ids if self.index.searchable(i)}
        response = self.client.search(
            index=self.settings.index,
            body={"query": {"ids": {"values": ids}}, "_source": False, "size": len(ids)},
        )
        return {hit["_id"] for hit in response["hits"]["hits"]}


def upload_and_wait(
    settings: Settings,
    keys: list[str],
    bodies: list[bytes],
    searchable: Searchable,
    timeout: float,
    group: devstack.Processes,
    poll_seconds: float = POLL_SECONDS,
) -> tuple[dict[str, float], dict[str, float], float, int]:
    """Upload in a thread, poll in this one; (upload start, searchable, upload s, polls)."""
    s3 = aws.client("s3", settings)
    ids = {image_id(settings.bucket, k): k for k in keys}
    started: dict[str, float] = {}
    failures: list[BaseException] = []
    upload_seconds = 0.0

    def upload() -> None:
        nonlocal upload_seconds
        t0 = time.perf_counter()
        try:
            for key, body in zip(keys, bodies, strict=True):
                started[key] = time.time()
                s3.put_object(Bucket=settings.bucket, Key=key, Body=body, ContentType="image/jpeg")
        except BaseException as exc:
            failures.append(exc)
        finally:
            upload_seconds = time.perf_counter() - t0

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    seen: dict[str, float] = {}
    polls = 0
    deadline = time.monotonic() + timeout
    while len(seen) < len(keys):
        if failures:
            raise BenchError(f"upload failed: {failures[0]!r}")
        dead = group.dead()
        if dead:
            raise BenchError(f"{dead} exited; see the logs in {group.log_dir}")
        if time.monotonic() > deadline:
            raise BenchError(
                f"{len(keys) - len(seen)} of {len(keys)} images not searchable within "
                f"{timeout:.0f} s; see the logs in {group.log_dir}"
            )
        outstanding = [i for i, k in ids.items() if k in started and k not in seen]
        if outstanding:
            polls += 1
            now = time.time()
            for found in searchable(outstanding):
                seen[ids[found]] = now
        time.sleep(poll_seconds)
    uploader.join(30)
    return started, seen, upload_seconds, polls


def timed_round(
    settings: Settings,
    group: devstack.Processes,
    pids: dict[str, int],
    searchable: Searchable,
    keys: list[str],
    bodies: list[bytes],
    timeout: float,
    poll_seconds: float,
) -> PipelineResult:
    """Upload `keys` as fast as possible and wait until each one is searchable."""
    tree = _children()
    before = {name: tree_cpu_seconds(pid, tree) for name, pid in pids.items()}
    self_before = _cpu_now()
    busy_before = machine_busy_seconds()
    window_start = time.time()
    started, seen, upload_seconds, polls = upload_and_wait(
        settings, keys, bodies, searchable, timeout, group, poll_seconds
    )
    window_end = time.time()
    self_after = _cpu_now()
    busy_after = machine_busy_seconds()
    tree = _children()
    after = {name: tree_cpu_seconds(pid, tree) for name, pid in pids.items()}

    cpu = {
        name: sum(after[name].values())
        - sum(v for pid, v in before[name].items() if pid in after[name])
        for name in pids
    }
    cpu["bench (upload+poll)"] = self_after - self_before
    pool_cpu = sum(
        v - before["worker"].get(pid, 0.0)
        for pid, v in after["worker"].items()
        if pid != pids["worker"]
    )
    store = RecordStore(settings)
    statuses: dict[str, int] = defaultdict(int)
    for key in keys:
        record = store.get(image_id(settings.bucket, key))
        statuses[record.status if record else "missing"] += 1
    time.sleep(0.5)  # the last task's log line
    tasks = [
        t
        for t in task_runs(group.log_dir / "worker.log")
        if window_start - 0.01 <= t.finished <= window_end + 0.5
    ]
    enqueued = enqueued_at(group.log_dir / "listener.log")
    aggregated = aggregated_at(group.log_dir / "worker.log")
    stages: dict[str, list[float]] = defaultdict(list)
    for key in keys:
        if key in enqueued and key in aggregated:
            stages["upload start -> listener enqueued"].append(
                (enqueued[key] - started[key]) * 1000
            )
            stages["enqueued -> aggregate done"].append((aggregated[key] - enqueued[key]) * 1000)
            stages["aggregate done -> searchable seen"].append((seen[key] - aggregated[key]) * 1000)
    index = SearchIndex(settings)
    missing = [k for k in keys if not index.searchable(image_id(settings.bucket, k))]
    notes = [f"{len(missing)} not searchable when re-checked: {missing[:3]}"] if missing else []
    return PipelineResult(
        images=len(keys),
        seconds=max(seen.values()) - min(started.values()),
        latencies_ms=[(seen[k] - started[k]) * 1000 for k in keys],
        upload_seconds=upload_seconds,
        cpu=cpu,
        machine_busy=busy_after - busy_before,
        worker_pool_cpu=pool_cpu,
        tasks=tasks,
        statuses=dict(statuses),
        polls=polls,
        notes=notes,
        stages=dict(stages),
    )


def idle_latencies(
    settings: Settings,
    group: devstack.Processes,
    searchable: Searchable,
    photos: list[bytes],
    count: int,
    timeout: float,
) -> dict[str, list[float]]:
    """One image at a time on the idle fleet, ms: upload -> searchable, and its stages."""
    run = uuid.uuid4().hex[:6]
    keys = [f"idle/{run}/{i:03d} {NAMES[i % len(NAMES)]}.jpg" for i in range(count)]
    started: dict[str, float] = {}
    seen: dict[str, float] = {}
    for i, key in enumerate(keys):
        first, last, _, _ = upload_and_wait(
            settings, [key], [photos[i % len(photos)]], searchable, timeout, group, 0.02
        )
        started.update(first)
        seen.update(last)
        time.sleep(1.0)  # this image's acks and events settle: the next one meets an idle fleet
    enqueued = enqueued_at(group.log_dir / "listener.log")
    aggregated = aggregated_at(group.log_dir / "worker.log")
    result: dict[str, list[float]] = defaultdict(list)
    for key in keys:
        result["upload start -> searchable"].append((seen[key] - started[key]) * 1000)
        if key in enqueued and key in aggregated:
            result["upload start -> listener enqueued"].append(
                (enqueued[key] - started[key]) * 1000
            )
            result["enqueued -> aggregate done"].append((aggregated[key] - enqueued[key]) * 1000)
            result["aggregate done -> searchable seen"].append((seen[key] - aggregated[key]) * 1000)
    return dict(result)


def run_rounds(
    args: argparse.Namespace, photos: list[bytes], scratch: Path
) -> tuple[list[PipelineResult], list[AnalysisResult], dict[str, set[str]], dict[str, list[float]]]:
    """Pipeline and analysis-only rounds in turn, and which tasks each pool process ran during
    the warm-up. In turn, because this machine's speed drifts by tens of percent within
    minutes: all pipeline rounds first and all analysis rounds after compared two machines."""
    images = [photos[i % len(photos)] for i in range(args.images)]
    log_dir = scratch / "logs"
    # The analysis processes first: they load their models before the stack starts, and
    # before stack() puts the emulator's AWS variables in this process's environment.
    with (
        AnalysisPool(images, args.concurrency, args.rounds) as alone,
        stack(log_dir, scratch / "opensearch", args.concurrency) as (settings, group, pids),
    ):
        searchable = Searchable(settings, args.poll == "each")
        run = uuid.uuid4().hex[:6]
        warm_keys = [f"warmup/{run}-{i:03d}.jpg" for i in range(args.warmup)]
        warm_bodies = [photos[i % len(photos)] for i in range(args.warmup)]
        upload_and_wait(settings, warm_keys, warm_bodies, searchable, 240, group)
        time.sleep(1.0)  # the warm-ups' last acks and events settle
        warm: dict[str, set[str]] = defaultdict(set)
        for task in task_runs(log_dir / "worker.log"):
            warm[task.process].add(task.task)
        pipes, alones = [], []
        for r in range(args.rounds):
            keys = [
                f"bench/{run}/{r}/{i:04d} {NAMES[i % len(NAMES)]}.jpg" for i in range(args.images)
            ]
            wait_for_quiet(args.quiet_wait)
            pipes.append(
                timed_round(
                    settings, group, pids, searchable, keys, images, args.timeout, args.poll_every
                )
            )
            time.sleep(1.0)  # the round's last acks and events settle
            # The idle stack's CPU in this window shows as "other processes".
            wait_for_quiet(args.quiet_wait)
            alones.append(alone.round(r))
            time.sleep(1.0)
        wait_for_quiet(args.quiet_wait)
        idle = idle_latencies(settings, group, searchable, photos, args.idle_images, 120)
        return pipes, alones, dict(warm), idle


# -- part 2: analysis alone ---------------------------------------------------------------------


def _warm_analyzer(image: bytes) -> LocalAnalyzer:
    analyzer = LocalAnalyzer(Settings.model_validate({"threads": 1}))
    analyzer.load(FEATURES)
    warm = ImageInput.from_bytes(image)
    for feature in FEATURES:
        analyzer.run(feature, warm)  # first-run graph setup, not counted
    return analyzer


def analysis_worker(
    images: list[bytes], claimed: list[Any], go: list[Event], queue: mp.Queue
) -> None:
    """bench/analyze.py's worker, over a shared list: each round, claim the next image until
    none is left."""
    analyzer = _warm_analyzer(images[0])
    queue.put("ready")
    for counter, start in zip(claimed, go, strict=True):
        if not start.wait(600):
            return
        cpu = _cpu_now()
        done = 0
        while True:
            with counter.get_lock():
                index = counter.value
                counter.value += 1
            if index >= len(images):
                break
            image = ImageInput.from_bytes(images[index])
            for feature in FEATURES:
                analyzer.run(feature, image)
            done += 1
        queue.put((done, time.time(), _cpu_now() - cpu))


def single_image(images: list[bytes], rounds: int, queue: mp.Queue) -> None:
    analyzer = _warm_analyzer(images[0])
    times = time_features(analyzer, images, rounds)
    queue.put({name: statistics.median(values) for name, values in times.items()})


def _stop(processes: list[mp.process.BaseProcess]) -> None:
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.terminate()
            process.join(10)


@dataclass
class AnalysisResult:
    images: int
    seconds: float
    cpu: float  # the analysis processes' CPU seconds
    machine_busy: float  # every process on the machine, CPU seconds in the window

    @property
    def rate(self) -> float:
        return self.images / self.seconds


class AnalysisPool:
    """`concurrency` single-threaded processes over `images`, each claiming the next one;
    `round(r)` starts round r and returns its result."""

    def __init__(self, images: list[bytes], concurrency: int, rounds: int) -> None:
        ctx = mp.get_context("spawn")
        self.queue: mp.Queue = ctx.Queue()
        self.go = [ctx.Event() for _ in range(rounds)]
        self.claimed = [ctx.Value("i", 0) for _ in range(rounds)]
        self.images = len(images)
        self.workers = [
            ctx.Process(target=analysis_worker, args=(images, self.claimed, self.go, self.queue))
            for _ in range(concurrency)
        ]

    def __enter__(self) -> AnalysisPool:
        try:
            for w in self.workers:
                w.start()
            if not all(self.queue.get(timeout=180) == "ready" for _ in self.workers):
                raise BenchError("an analysis worker did not start")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for counter, start in zip(self.claimed, self.go, strict=True):
            with counter.get_lock():
                counter.value = max(counter.value, self.images)  # rounds not run: no work
            start.set()
        _stop(self.workers)  # type: ignore[arg-type]

    def round(self, r: int) -> AnalysisResult:
        busy_before = machine_busy_seconds()
        t0 = time.time()
        self.go[r].set()
        results = [self.queue.get(timeout=900) for _ in self.workers]
        return AnalysisResult(
            images=sum(done for done, _, _ in results),
            seconds=max(finished for _, finished, _ in results) - t0,
            cpu=sum(cpu for _, _, cpu in results),
            machine_busy=machine_busy_seconds() - busy_before,
        )


def single_image_ms(images: list[bytes], rounds: int = 2) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    process = ctx.Process(target=single_image, args=(images, rounds, queue))
    try:
        process.start()
        result: dict[str, float] = queue.get(timeout=600)
    finally:
        _stop([process])
    return result


# -- the report ---------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    pipes: list[PipelineResult],
    warm: dict[str, set[str]],
    alones: list[AnalysisResult],
    single: dict[str, float],
    idle: dict[str, list[float]],
) -> None:
    pipe = max(pipes, key=lambda p: p.rate)
    alone = max(alones, key=lambda a: a.rate)
    paired = [p.rate / a.rate for p, a in zip(pipes, alones, strict=True)]
    lat = pipe.latencies_ms
    ours = pipe.our_cpu
    product = pipe.cpu["worker"] + pipe.cpu["listener"]
    cores = len(os.sched_getaffinity(0))
    poll = "per id (SearchIndex.searchable)" if args.poll == "each" else "one ids query"
    print(
        f"rudolph pipeline, {pipe.images} x 640x480 JPEG ({len(NAMES)} photos cycled), "
        f"worker -c {args.concurrency}, RUDOLPH_THREADS=1, {cores} cores, "
        f"poll {poll} every {args.poll_every * 1000:.0f} ms; best of {args.rounds} rounds"
    )
    rows = [
        ("pipeline (upload -> searchable)", f"{pipe.rate:7.2f} images/s  ({pipe.seconds:.1f} s)"),
        (
            f"analysis only ({args.concurrency} processes)",
            f"{alone.rate:7.2f} images/s  ({alone.seconds:.1f} s)",
        ),
        ("ratio, best / best (target >= 85%)", f"{100 * pipe.rate / alone.rate:7.1f} %"),
        (
            "paired ratios, round by round",
            f"{100 * statistics.median(paired):7.1f} % median ("
            + ", ".join(f"{100 * r:.1f}" for r in paired)
            + ")",
        ),
        (
            "CPU per image: pipeline / analysis",
            f"{1000 * ours / pipe.images:7.0f} / {1000 * alone.cpu / alone.images:.0f} ms "
            f"({100 * alone.cpu / alone.images / (ours / pipe.images):.0f}%)",
        ),
        (
            f"CPU-bound ceiling on {cores} free cores",
            f"{cores * pipe.images / ours:7.2f} / {cores * alone.images / alone.cpu:.2f} "
            "images/s (pipeline / analysis: cores / CPU per image)",
        ),
        (
            "  the same, worker + listener only",
            f"{cores * pipe.images / product:7.2f} images/s (were moto, opensearch, redis and "
            "this script elsewhere)",
        ),
        (
            "worker + listener CPU / analysis CPU",
            f"{(product / pipe.images) / (alone.cpu / alone.images):7.3f} x  (target <= 1.10: "
            f"the fleet's own {1000 * (product / pipe.images - alone.cpu / alone.images):.0f} "
            "ms an image)",
        ),
        (
            "latency p50 / p95 / max",
            f"{statistics.median(lat):7.0f} / {percentile(lat, 0.95):.0f} / {max(lat):.0f} ms",
        ),
    ]
    for name, value in rows:
        print(f"  {name:<38} {value}")
    for stage, values in pipe.stages.items():
        print(
            f"    {stage:<36} min {min(values):>5.0f}  p50 {statistics.median(values):>6.0f}  "
            f"p95 {percentile(values, 0.95):>6.0f}  max {max(values):>6.0f} ms"
        )
    print(f"  {'upload of all N (one thread)':<38} {pipe.upload_seconds * 1000:7.0f} ms")
    print(
        f"  {'single image, one process':<38} {single['total']:7.0f} ms median "
        f"(decode {single['decode']:.0f}, labels {single['labels']:.0f}, "
        f"text {single['text']:.0f}, faces {single['faces']:.0f})"
    )
    print(f"  {'records':<38} {dict(pipe.statuses)}; {pipe.polls} polls")
    if idle:
        whole = idle["upload start -> searchable"]
        print(
            f"  {'idle fleet, one image at a time':<38} p50 {statistics.median(whole):5.0f} ms, "
            f"max {max(whole):.0f} (n={len(whole)}; target p50 <= single image + 1000 = "
            f"{single['total'] + 1000:.0f} ms)"
        )
        for stage, values in idle.items():
            if stage != "upload start -> searchable":
                print(f"    {stage:<34} p50 {statistics.median(values):6.0f} ms")
    print("  every round: images/s (CPU s of other processes on the machine in the window)")
    print(
        "    pipeline  "
        + "  ".join(f"{p.rate:5.2f} ({p.machine_busy - p.our_cpu:4.1f})" for p in pipes)
    )
    print(
        "    analysis  "
        + "  ".join(f"{a.rate:5.2f} ({a.machine_busy - a.cpu:4.1f})" for a in alones)
    )
    window = pipe.seconds
    print(f"  CPU seconds in the best pipeline window ({window:.1f} s x {cores} cores):")
    for name, seconds in [*pipe.cpu.items(), ("total (ours)", ours)]:
        extra = ""
        if name == "worker":
            extra = (
                f"  (pool children {pipe.worker_pool_cpu:.1f}, "
                f"main {seconds - pipe.worker_pool_cpu:.1f})"
            )
        print(
            f"    {name:<20} {seconds:>6.1f} s {100 * seconds / window:>5.0f}% of a core "
            f"{1000 * seconds / pipe.images:>5.0f} ms/image{extra}"
        )
    others = pipe.machine_busy - ours
    print(f"    {'other processes':<20} {others:>6.1f} s {100 * others / window:>5.0f}% of a core")
    by_task: dict[str, list[float]] = defaultdict(list)
    for run in pipe.tasks:
        by_task[run.task].append(run.seconds * 1000)
    busy = sum(run.seconds for run in pipe.tasks)
    print(
        f"  worker tasks in that window (from its log): busy {busy:.1f} s of "
        f"{args.concurrency} x {window:.1f} s = {100 * busy / (args.concurrency * window):.0f}%"
    )
    for task, values in sorted(by_task.items()):
        alone_ms = single.get(task)
        compare = f"  (analysis alone {alone_ms:.0f} ms)" if alone_ms is not None else ""
        print(
            f"    {task:<10} n={len(values):<4} median {statistics.median(values):>6.0f} ms, "
            f"sum {sum(values) / 1000:>6.1f} s{compare}"
        )
    for process, tasks in sorted(warm.items()):
        if set(FEATURES) - tasks:
            print(f"  note: warm-up left {process} without {sorted(set(FEATURES) - tasks)}")
    for p in pipes:
        for note in p.notes:
            print(f"  note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=2, help="the worker's -c")
    parser.add_argument("--warmup", type=int, default=4, help="images first, not counted")
    parser.add_argument(
        "--poll",
        choices=("batch", "each"),
        default="batch",
        help="one ids query for all outstanding images (default), or SearchIndex.searchable "
        "per image (one request each: the poller then loads the search server itself)",
    )
    parser.add_argument(
        "--poll-every",
        type=float,
        default=POLL_SECONDS,
        help="seconds between searchability polls (each one costs the search server CPU)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed rounds of each kind; the best one counts (others' load only slows down)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20,
        help="before each round, wait up to this many seconds for the machine to go quiet",
    )
    parser.add_argument(
        "--idle-images",
        type=int,
        default=10,
        help="then this many images one at a time on the idle fleet (latency to searchable)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the N images")
    parser.add_argument("--keep-logs", action="store_true", help="keep the stack's logs")
    args = parser.parse_args()
    if min(args.images, args.concurrency, args.rounds) < 1 or args.warmup < 0:
        parser.error("--images, --concurrency and --rounds must be >= 1, --warmup >= 0")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every finally: the stack is stopped

    signal.signal(signal.SIGTERM, stop)
    photos = photos_640x480()
    scratch = Path(tempfile.mkdtemp(prefix="rudolph-bench-"))
    scratch.chmod(0o755)  # as root, OpenSearch runs as nobody and must get in
    failed = True
    try:
        pipes, alone, warm, idle = run_rounds(args, photos, scratch)
        single = single_image_ms(photos)
        report(args, pipes, warm, alone, single, idle)
        failed = False
    finally:
        if failed or args.keep_logs:
            print(f"logs kept in {scratch / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
