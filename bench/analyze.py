"""Local backend speed and memory: per-feature ms per image, model load time, peak RSS, images/s.

    .venv/bin/python bench/analyze.py [--rounds 5]

Part 1 runs in one process pinned to one core with one onnxruntime thread (the target: all
three features, object detection and word splitting included, on a 640x480 photo in <= 200 ms
median, models loaded in <= 1 s, peak RSS <= 800 MB). The `objects` row is the detector alone
(NanoDet, part of `labels`), timed on its own after the features. Times are wall-clock and
CPU (process) time: on a shared machine the CPU column is the steadier of the two.
Part 2 runs one such worker per core and reports the images/s of the machine.
Part 3 runs each feature alone in a fresh process on one core, as a feature worker does (only
that feature's models loaded): its images/s per core and peak RSS, the figures
rudolph/capacity.py sizes deployments from (their lower end: the same process's slowest
tenth of images).
Photos: real ones from scikit-image, matplotlib and scikit-learn (tests/photos.py), resized
to 640x480.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rudolph.backends.local import LocalAnalyzer  # noqa: E402
from rudolph.images import encode_jpeg  # noqa: E402
from rudolph.settings import FEATURES, Feature, Settings  # noqa: E402
from rudolph.source import ImageInput  # noqa: E402
from tests.photos import load  # noqa: E402

NAMES = [
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle",
    "china",
    "flower",
    "astronaut",
    "grace_hopper",
    "camera",
    "clock",
]


def photos_640x480() -> list[bytes]:
    import numpy as np

    return [encode_jpeg(np.asarray(load(n).resize((640, 480))), 90) for n in NAMES]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


STEPS = ("decode", *FEATURES, "total", "objects")


def time_features(
    analyzer: LocalAnalyzer, images: list[bytes], rounds: int, clock: str = "wall"
) -> dict[str, list[float]]:
    """Milliseconds per image of decoding, each feature and all of it, `rounds` times over,
    then of the object detector alone (wall-clock, or this process's CPU time)."""
    now = time.perf_counter if clock == "wall" else time.process_time
    times: dict[str, list[float]] = {f: [] for f in STEPS}
    for _ in range(rounds):
        for data in images:
            t0 = now()
            image = ImageInput.from_bytes(data)
            rgb = image.decoded().rgb
            times["decode"].append((now() - t0) * 1000)
            for feature in FEATURES:
                t = now()
                analyzer.run(feature, image)
                times[feature].append((now() - t) * 1000)
            times["total"].append((now() - t0) * 1000)
            t = now()
            analyzer.objects.detect(rgb)
            times["objects"].append((now() - t) * 1000)
    return times


def single_core(rounds: int, queue: mp.Queue) -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    images = photos_640x480()
    started = time.perf_counter()
    analyzer = LocalAnalyzer(Settings(threads=1))
    analyzer.load(FEATURES)
    load_s = time.perf_counter() - started
    analyzer.labels(ImageInput.from_bytes(images[0]))  # first-run graph setup, not counted
    times = time_features(analyzer, images, rounds)
    cpu_times = time_features(analyzer, images, rounds, clock="cpu")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((load_s, times, cpu_times, rss_mb))


def worker(core: int, images: list[bytes], go: Event, queue: mp.Queue) -> None:
    os.sched_setaffinity(0, {core})
    analyzer = LocalAnalyzer(Settings(threads=1))
    analyzer.load(FEATURES)
    analyzer.labels(ImageInput.from_bytes(images[0]))
    queue.put("ready")
    go.wait(120)
    done, until = 0, time.time() + 20.0
    while time.time() < until:
        image = ImageInput.from_bytes(images[done % len(images)])
        for feature in FEATURES:
            analyzer.run(feature, image)
        done += 1
    queue.put((done, 20.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def feature_worker(feature: Feature, seconds: float, queue: mp.Queue) -> None:
    """One feature alone on one core: images/s (median and slowest tenth) and peak RSS."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    images = photos_640x480()
    analyzer = LocalAnalyzer(Settings(threads=1))
    analyzer.load((feature,))
    analyzer.run(feature, ImageInput.from_bytes(images[0]))
    times: list[float] = []
    until = time.time() + seconds
    while time.time() < until:
        t = time.perf_counter()
        # Decoding is part of a feature task's work (the shared cache saves the download).
        analyzer.run(feature, ImageInput.from_bytes(images[len(times) % len(images)]))
        times.append(time.perf_counter() - t)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((statistics.median(times), percentile(times, 0.9), len(times), rss_mb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--feature-seconds", type=float, default=15, help="part 3: seconds per feature worker"
    )
    args = parser.parse_args()
    ctx = mp.get_context("spawn")  # fresh processes: honest load times and RSS

    queue: mp.Queue = ctx.Queue()
    process = ctx.Process(target=single_core, args=(args.rounds, queue))
    process.start()
    load_s, times, cpu_times, rss_mb = queue.get(timeout=1800)
    process.join(60)
    print(
        f"local backend, 640x480 photos x{len(NAMES)}, {args.rounds} rounds, one core, one thread"
    )
    print(f"  model load (all three features): {load_s:.2f} s")
    print(f"  {'step':<8} {'median ms':>10} {'p95 ms':>8} {'cpu median':>11} {'cpu p95':>8}")
    for name, values in times.items():
        cpu = cpu_times[name]
        print(
            f"  {name:<8} {statistics.median(values):>10.1f} {percentile(values, 0.95):>8.1f}"
            f" {statistics.median(cpu):>11.1f} {percentile(cpu, 0.95):>8.1f}"
        )
    print(f"  one core: {1000 / statistics.median(times['total']):.2f} images/s")
    print(f"  peak RSS: {rss_mb:.0f} MB")

    cores = sorted(os.sched_getaffinity(0))
    images = photos_640x480()
    go = ctx.Event()
    workers = [ctx.Process(target=worker, args=(c, images, go, queue)) for c in cores]
    for w in workers:
        w.start()
    ready = [queue.get(timeout=120) for _ in workers]
    assert all(r == "ready" for r in ready)
    go.set()  # all models loaded: measure only the analysis
    results = [queue.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(60)
    total = sum(done for done, _, _ in results)
    print(
        f"{len(cores)} worker processes, one per core, 20 s: "
        f"{total / 20.0:.2f} images/s (all three features), "
        f"peak RSS per worker {max(r for _, _, r in results):.0f} MB"
    )

    print(
        f"one feature per worker process, one core, one thread, {args.feature_seconds:.0f} s each"
    )
    print(f"  {'feature':<8} {'images/s':>9} {'slow 10%':>9} {'images':>7} {'peak RSS':>9}")
    for feature in FEATURES:
        process = ctx.Process(target=feature_worker, args=(feature, args.feature_seconds, queue))
        process.start()
        median_s, slow_s, n, rss = queue.get(timeout=600)
        process.join(60)
        print(f"  {feature:<8} {1 / median_s:>9.1f} {1 / slow_s:>9.1f} {n:>7} {rss:>6.0f} MB")


if __name__ == "__main__":
    main()
