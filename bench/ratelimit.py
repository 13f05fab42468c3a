"""The fleet-wide rate limiter against a Rekognition that throttles: requests/s achieved per API,
and how many were throttled.

    .venv/bin/python bench/ratelimit.py [--quota 20] [--workers 2] [--seconds 20] [--unlimited]

Starts its own redis-server (127.0.0.1, a free port), the Rekognition stand-in of the tests in
quota mode (tests/rekognition_standin.py, its own process: each API answers HTTP 400
ThrottlingException past `quota` requests in any sliding 1 s) and `workers` worker processes.
A worker is a plain process, not Celery: it holds one RekognitionAnalyzer built the way the
fleet builds it (settings -> the process's limiter from RUDOLPH_REDIS_URL and
RUDOLPH_RATE_LIMITS, set to the quota) and one thread per API, each calling its API on a
small JPEG back to back for `seconds`, as a worker whose every slot always has a task would.
A RateLimitedError (turn too far away) sleeps its `retry_after`, as the task's retry would.

The target: every API achieves >= 90% of its quota (requests accepted / seconds) with < 1% of
its requests throttled. `--unlimited` runs the same without the limiter, for comparison.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rudolph import devstack  # noqa: E402
from rudolph.backends.rekognition import RekognitionAnalyzer  # noqa: E402
from rudolph.errors import RateLimitedError, TransientAnalyzerError  # noqa: E402
from rudolph.ratelimit import NO_LIMIT  # noqa: E402
from rudolph.settings import Settings  # noqa: E402
from rudolph.source import ImageInput  # noqa: E402
from tests.photos import encode, load  # noqa: E402
from tests.rekognition_standin import throttling_standin  # noqa: E402

APIS = {"DetectLabels": "labels", "DetectText": "text", "DetectFaces": "faces"}


def worker(
    environ: dict[str, str], unlimited: bool, go: Any, start: Any, seconds: float, out: Any
) -> None:
    os.environ.update(environ)
    settings = Settings.from_env()
    analyzer = RekognitionAnalyzer(settings, limiter=NO_LIMIT if unlimited else None)
    jpeg = encode(load("astronaut").resize((320, 240)), "JPEG")
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def hammer(api: str, end: float) -> None:
        run = getattr(analyzer, APIS[api])
        image = ImageInput.from_bytes(jpeg)
        while time.monotonic() < end:
            try:
                run(image)
                outcome = "ok"
            except RateLimitedError as exc:
                outcome = "rate-limited"
                time.sleep(min(exc.retry_after, max(0.0, end - time.monotonic())))
            except TransientAnalyzerError:
                outcome = "failed"  # throttled even after botocore's retries
            with lock:
                counts[f"{api} {outcome}"] += 1

    analyzer.labels(ImageInput.from_bytes(jpeg))  # warm up: client, limiter, connections
    out.put("ready")
    if not go.wait(120):
        out.put(counts)
        return
    time.sleep(max(0.0, start.value - time.monotonic()))
    end = start.value + seconds
    threads = [threading.Thread(target=hammer, args=(api, end)) for api in APIS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    out.put(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quota", type=float, default=20.0, help="requests/s per API")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--unlimited", action="store_true", help="without the limiter")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rudolph-bench-") as scratch:
        processes = devstack.Processes(Path(scratch) / "logs")
        try:
            redis_url = devstack.start_redis(processes, devstack.free_port())
            with throttling_standin(args.quota) as standin:
                return run(args, redis_url, standin)
        finally:
            processes.stop()


def run(args: argparse.Namespace, redis_url: str, standin: Any) -> int:
    environ = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "RUDOLPH_ANALYZER": "rekognition",
        "RUDOLPH_REKOGNITION_ENDPOINT_URL": standin.url,
        "RUDOLPH_REDIS_URL": redis_url,
        "RUDOLPH_RATE_LIMITS": ",".join(f"{api}={args.quota:g}" for api in APIS),
    }
    context = mp.get_context("spawn")
    go, start, out = context.Event(), context.Value("d", 0.0), context.Queue()
    workers = [
        context.Process(target=worker, args=(environ, args.unlimited, go, start, args.seconds, out))
        for _ in range(args.workers)
    ]
    for process in workers:
        process.start()
    try:
        for _ in workers:
            if out.get(timeout=120) != "ready":
                raise RuntimeError("a worker failed to start")
        time.sleep(1.5)  # the warm-up calls leave the quota's window
        before, throttled_before = standin.counts()
        start.value = time.monotonic() + 0.2
        go.set()
        client: Counter[str] = Counter()
        for _ in workers:
            client.update(out.get(timeout=args.seconds + 120))
        accepted, throttled = standin.counts()
    finally:
        for process in workers:
            process.join(10)
            if process.is_alive():
                process.kill()
    accepted.subtract(before)
    throttled.subtract(throttled_before)

    limiter = "none (--unlimited)" if args.unlimited else f"{args.quota:g}/s per API in Redis"
    print(
        f"{args.workers} worker processes x {len(APIS)} threads (one per API), "
        f"{args.seconds:g} s; stand-in quota {args.quota:g}/s per API; limiter: {limiter}"
    )
    print(
        f"{'API':<14}{'quota/s':>8}{'achieved/s':>12}{'of quota':>10}"
        f"{'accepted':>10}{'throttled':>11}{'throttled %':>13}{'turn-waits':>12}{'failed':>8}"
    )
    verdicts = []
    for api in APIS:
        ok, bad = accepted[api], throttled[api]
        achieved = ok / args.seconds
        share = bad / (ok + bad) if ok + bad else 0.0
        verdicts.append(achieved >= 0.9 * args.quota and share < 0.01)
        print(
            f"{api:<14}{args.quota:>8g}{achieved:>12.2f}{achieved / args.quota:>10.1%}"
            f"{ok:>10}{bad:>11}{share:>13.2%}{client[f'{api} rate-limited']:>12}"
            f"{client[f'{api} failed']:>8}"
        )
    verdict = "PASS" if all(verdicts) else "FAIL"
    print(f"target: achieved >= 90% of quota and < 1% throttled, every API -> {verdict}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
