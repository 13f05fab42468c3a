"""Search latency: p50/p95/max ms per kind of query on 10,000 and 100,000 indexed records.

    .venv/bin/python bench/search.py [--engine opensearch|noida] [--sizes 10000,100000]
                                     [--budget 60] [--rounds 30] [--bulk-threads 3]

Starts its own search engine on a free port of 127.0.0.1: OpenSearch 2.5.0 (`make setup`
installs it; heap 256 MB, as `rudolph dev` runs it), or with `--engine noida` the noida-db
emulator. Creates the index with `SearchIndex.ensure()` (rudolph's settings, mapping and
synonyms) and bulk-loads synthetic records (`rudolph.index.to_document`, 500 a request, as
`rudolph reindex` does, from `--bulk-threads` threads). The documents of each size are generated
(in two processes) and serialized before the load is timed: the load rate is the server's.
Then times `SearchIndex.search` from this process: the whole call (query parsing, the HTTP
request, the server's work, building the page), as `rudolph search` and the web page see it.

Records (seeded: every run builds the same ones, and each size is a prefix of the larger one,
so the index grows from one size to the next): 1-3 ImageNet classes from the taxonomy
(rudolph/data/taxonomy.json) drawn with a Zipf-like popularity, each with its ancestor labels,
parents, aliases and confidences as the local backend gives them; 0-5 faces; OCR lines (sign
phrases and WordNet words, plate-like codes) on ~30% of images; keys under a few prefixes in
two buckets; metadata on some; event_time spread over a year; ~5% partial, ~1% failed.

Each size runs the mix once (its totals, and the cursors of pages 2 and 5, walked once), then
`--warmup` more times untimed, then timed rounds, each running every kind once (interleaved, so a
busy moment hurts all kinds alike), until `--rounds` or until `--budget` seconds have gone (at
least one round). When the first pass alone outlasts the budget (noida-db scans every document
for each clause, so over 100,000 records a query takes tens of seconds), it is the one timed
round. Labels for the common / rare queries are picked from the records of the smallest size
and kept for every size. The report gives per kind and overall p50/p95/max, the load rate, the
server's CPU per search, its RSS and peak RSS (VmHWM), the JVM heap used of its maximum
(OpenSearch), and the CPU other processes on the machine used meanwhile (figures taken while
others work are provisional).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opensearchpy import OpenSearch  # noqa: E402

from rudolph import devstack  # noqa: E402
from rudolph.index import BULK_CHUNK, SearchIndex, to_document  # noqa: E402
from rudolph.index import client as opensearch_client  # noqa: E402
from rudolph.models.taxonomy import Taxonomy  # noqa: E402
from rudolph.record import (  # noqa: E402
    AnalyzerInfo,
    Box,
    Face,
    Label,
    Landmark,
    Record,
    TextDetection,
    image_id,
)
from rudolph.settings import FEATURES, Settings  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TAXONOMY_JSON = ROOT / "rudolph" / "data" / "taxonomy.json"
BUCKETS = [("reindeer-dropzone", 0.85), ("reindeer-archive", 0.15)]
PREFIXES = [
    ("uploads/2026/", 0.35),
    ("cars/", 0.15),
    ("pets/", 0.2),
    ("cms/articles/", 0.2),
    ("archive/2019/", 0.1),
]
SIGNS = [
    "NO PARKING", "STOP", "EXIT", "ONE WAY", "OPEN", "CLOSED", "SALE", "POLICE", "TAXI",
    "BUS STOP", "NO ENTRY", "KEEP CLEAR", "FIRE EXIT", "PRIVATE PROPERTY", "WELCOME",
    "PARKING", "GIVE WAY", "SCHOOL", "HOTEL", "PHARMACY", "COFFEE", "BAKERY", "AIRPORT",
    "SPEED LIMIT 30", "NO SMOKING", "DANGER", "PUSH", "PULL", "TOILETS", "CAFE",
]  # fmt: skip
FACES = [0, 1, 2, 3, 4, 5]
FACE_WEIGHTS = [0.55, 0.2, 0.11, 0.07, 0.04, 0.03]
SIZES = [(640, 480), (1024, 768), (1920, 1080), (4032, 3024), (1080, 1350)]
ZIPF_S = 1.1
YEAR_START = datetime(2025, 11, 25, tzinfo=UTC)


class BenchError(RuntimeError):
    pass


# -- the synthetic records ----------------------------------------------------------------------


def zipf_cumulative(n: int, s: float = ZIPF_S) -> list[float]:
    """Cumulative weights of ranks 1..n with weight 1/rank^s (for random.choices)."""
    total, cumulative = 0.0, []
    for rank in range(1, n + 1):
        total += 1.0 / rank**s
        cumulative.append(total)
    return cumulative


def ocr_words() -> list[str]:
    """The word list of OCR lines: single words of the taxonomy's WordNet lemmas."""
    import json

    data = json.loads(TAXONOMY_JSON.read_text("utf-8"))
    words: set[str] = set()
    for rule in data["synonyms"]:
        for term in rule.replace("=>", ",").split(","):
            words.update(w for w in term.split() if w.isalpha() and len(w) > 2)
    return sorted(words)


class Generator:
    """Seeded synthetic records; record i is the same whatever was generated before it."""

    def __init__(self, seed: int) -> None:
        import json

        self.seed = seed
        self.taxonomy = Taxonomy.load()
        data = json.loads(TAXONOMY_JSON.read_text("utf-8"))
        classes = sorted(dict.fromkeys(c["name"] for c in data["classes"]))
        setup = random.Random(seed)
        setup.shuffle(classes)  # popularity order: which classes are common is the seed's
        self.classes = classes
        self.class_weights = zipf_cumulative(len(classes))
        self.words = ocr_words()
        setup.shuffle(self.words)
        self.word_weights = zipf_cumulative(len(self.words))
        self.labels: dict[str, tuple[list[str], list[str]]] = {}

    def _label(self, name: str, confidence: float) -> Label:
        if name not in self.labels:
            self.labels[name] = (self.taxonomy.parents(name), self.taxonomy.aliases(name))
        parents, aliases = self.labels[name]
        return Label(name=name, confidence=round(confidence, 2), parents=parents, aliases=aliases)

    def _labels(self, rng: random.Random) -> tuple[str, list[Label]]:
        """1-3 classes, each with its ancestors; an ancestor as confident as its best class
        (the local backend sums class probabilities under it). Also the most likely class."""
        count = rng.choices([1, 2, 3], [0.6, 0.3, 0.1])[0]
        picked = dict.fromkeys(rng.choices(self.classes, cum_weights=self.class_weights, k=count))
        best: dict[str, float] = {}
        top = rng.uniform(35.0, 99.5)
        for i, name in enumerate(picked):
            confidence = top if i == 0 else rng.uniform(20.0, top)
            for label in (name, *self.taxonomy.parents(name)):
                best[label] = min(99.9, max(best.get(label, 0.0), confidence))
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:20]
        return next(iter(picked)), [self._label(name, c) for name, c in ranked]

    def _text(self, rng: random.Random) -> list[TextDetection]:
        """1-4 OCR lines with their words (a word's parent_id is its line's id)."""
        found: list[TextDetection] = []
        for _ in range(rng.choices([1, 2, 3, 4], [0.5, 0.25, 0.15, 0.1])[0]):
            roll = rng.random()
            if roll < 0.35:
                line = rng.choice(SIGNS)
            elif roll < 0.5:  # a number plate
                letters = "".join(rng.choices("ABCDEFGHJKLMNPRSTVWXYZ", k=3))
                line = f"{letters} {rng.randint(1, 9)}{rng.choice('ABCDEFGH')}{rng.randint(0, 9)}"
            else:
                k = rng.randint(1, 5)
                line = " ".join(rng.choices(self.words, cum_weights=self.word_weights, k=k))
                line = line.upper() if rng.random() < 0.5 else line.capitalize()
            left, top = rng.uniform(0, 0.6), rng.uniform(0, 0.9)
            line_id = len(found)
            box = Box(left=left, top=top, width=rng.uniform(0.1, 0.4), height=0.05)
            confidence = rng.uniform(60, 99.9)
            line_entry = TextDetection(
                text=line, type="LINE", confidence=confidence, id=line_id, box=box
            )
            found.append(line_entry)
            for word in line.split():
                found.append(
                    TextDetection(
                        text=word,
                        type="WORD",
                        confidence=confidence,
                        id=len(found),
                        parent_id=line_id,
                        box=box,
                    )
                )
        return found

    def _faces(self, rng: random.Random) -> list[Face]:
        faces = []
        for _ in range(rng.choices(FACES, FACE_WEIGHTS)[0]):
            left, top, size = rng.uniform(0, 0.8), rng.uniform(0, 0.7), rng.uniform(0.05, 0.2)
            landmarks = [
                Landmark(type=kind, x=left + size * x, y=top + size * y)
                for kind, x, y in (
                    ("eyeLeft", 0.3, 0.4),
                    ("eyeRight", 0.7, 0.4),
                    ("nose", 0.5, 0.6),
                    ("mouthLeft", 0.35, 0.8),
                    ("mouthRight", 0.65, 0.8),
                )
            ]
            box = Box(left=left, top=top, width=size, height=size * 1.2)
            faces.append(Face(confidence=rng.uniform(90, 99.99), box=box, landmarks=landmarks))
        return faces

    def record(self, i: int) -> Record:
        rng = random.Random(self.seed * 1_000_003 + i)
        bucket = rng.choices([b for b, _ in BUCKETS], [w for _, w in BUCKETS])[0]
        prefix = rng.choices([p for p, _ in PREFIXES], [w for _, w in PREFIXES])[0]
        primary, labels = self._labels(rng)
        stem = primary.lower().replace(" ", "-")
        key = f"{prefix}{stem}-{i:07d}.jpg"
        roll = rng.random()
        status, errors = "done", dict[str, str]()
        if roll < 0.01:
            status = "failed"
            errors = {f: "InvalidImageFormat: the image is truncated" for f in FEATURES}
        elif roll < 0.06:
            status = "partial"
            errors = {rng.choice(FEATURES): "ThrottlingException: rate exceeded (retries spent)"}
        text = self._text(rng) if rng.random() < 0.3 and "text" not in errors else []
        faces = self._faces(rng) if "faces" not in errors else []
        metadata = {}
        if rng.random() < 0.3:
            metadata["content-id"] = f"cms-{rng.randint(1, 50_000)}"
        if rng.random() < 0.1:
            metadata["uploader"] = rng.choice(["newsdesk", "sports", "features", "archive"])
        width, height = rng.choice(SIZES)
        event = YEAR_START + timedelta(seconds=rng.uniform(0, 365 * 86400))
        analyzed = event + timedelta(seconds=rng.uniform(0.5, 30))
        return Record(
            image_id=image_id(bucket, key),
            bucket=bucket,
            key=key,
            etag=hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
            size=rng.randint(40_000, 6_000_000),
            content_type="image/jpeg",
            metadata=metadata,
            width=width,
            height=height,
            status=status,  # type: ignore[arg-type]
            labels=[] if status == "failed" else labels,
            text=text if status != "failed" else [],
            faces=faces if status != "failed" else [],
            errors=errors,
            analyzer=AnalyzerInfo(backend="local", versions={"labels": "efficientnet-lite0"}),
            event_time=event.isoformat().replace("+00:00", "Z"),
            analyzed_at=analyzed.isoformat().replace("+00:00", "Z"),
        )


# -- the server ---------------------------------------------------------------------------------


def _proc_status(pid: int, name: str) -> float:
    """A `kB` line of /proc/PID/status, in MB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy since boot (all processes, ours and others')."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS  # less idle and iowait


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


# -- loading ------------------------------------------------------------------------------------


@dataclass
class Load:
    records: int
    seconds: float  # the bulk requests and the refresh only
    generate_seconds: float  # building and serializing the documents, before the timing
    server_cpu: float


_GENERATOR: Generator | None = None


def _bulk_body(span: tuple[int, int]) -> bytes:
    """One bulk request's NDJSON body: records start..stop-1 (in a worker process)."""
    assert _GENERATOR is not None
    lines: list[str] = []
    for i in range(*span):
        record = _GENERATOR.record(i)
        lines.append(json.dumps({"index": {"_id": record.image_id}}))
        lines.append(json.dumps(to_document(record), separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _generate(generator: Generator, start: int, stop: int) -> list[bytes]:
    """The bulk bodies of records start..stop-1, BULK_CHUNK records each, built in parallel."""
    global _GENERATOR
    _GENERATOR = generator
    spans = [(i, min(i + BULK_CHUNK, stop)) for i in range(start, stop, BULK_CHUNK)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        return pool.map(_bulk_body, spans, chunksize=4)


#: Records generated (and held in memory) at once before they are sent.
SLICE = 100_000


def load(
    settings: Settings, concrete: str, generator: Generator, start: int, stop: int, threads: int
) -> Load:
    """Index records start..stop-1 into `concrete`, then refresh: the documents of each slice
    are generated first, untimed; only the bulk requests (from `threads` threads) are timed."""
    client = opensearch_client(settings)
    generating = sending = 0.0
    server = SERVER_PID
    cpu = 0.0
    for first in range(start, stop, SLICE):
        t0 = time.perf_counter()
        bodies = _generate(generator, first, min(first + SLICE, stop))
        generating += time.perf_counter() - t0

        def send(body: bytes) -> list[Any]:
            answer = client.bulk(body=body, index=concrete, request_timeout=300)
            if not answer.get("errors"):
                return []
            return [i for i in answer["items"] if i.get("index", {}).get("status", 200) >= 300]

        cpu_before = cpu_seconds(server)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            failed = [item for items in pool.map(send, bodies) for item in items]
        if first + SLICE >= stop:
            client.indices.refresh(index=concrete, request_timeout=300)
        sending += time.perf_counter() - t0
        cpu += cpu_seconds(server) - cpu_before
        if failed:
            raise BenchError(f"{len(failed)} documents refused, the first: {failed[0]}")
    return Load(stop - start, sending, generating, cpu)


def server_pid(leader: int) -> int:
    """The server process in the group of `leader` (the JVM, not the script that started
    it): the one with the most RSS."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # pgrp
            members.append(int(entry.name))
    return max(members or [leader], key=lambda pid: _proc_status(pid, "VmRSS"))


def heap(url: str) -> str:
    """'heap 140 of 256 MB' (OpenSearch's JVM), or '' when the engine has no such stats."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/_nodes/_local/stats/jvm", timeout=10) as answer:
            nodes = json.loads(answer.read())["nodes"]
        memory = next(iter(nodes.values()))["jvm"]["mem"]
    except (OSError, ValueError, KeyError, StopIteration):
        return ""
    used, most = memory["heap_used_in_bytes"] >> 20, memory["heap_max_in_bytes"] >> 20
    return f", JVM heap {used} of {most} MB"


# -- the queries --------------------------------------------------------------------------------


@dataclass
class Kind:
    name: str
    query: str
    facets: bool = False
    page: int = 1  # > 1: fetched with the cursor of the page before
    cursor: str | None = None
    total: int = 0
    first_ms: float = 0.0
    times_ms: list[float] = field(default_factory=list)


def quoted(label: str) -> str:
    return f'"{label}"' if " " in label else label


def pick_labels(generator: Generator, size: int) -> dict[str, str]:
    """Labels for the queries, from the counts in the first `size` records: the most common
    class (a leaf of the taxonomy, like the dog breed a user types) and its most common parent,
    and a rare class (in about one image of 2,000)."""
    classes = set(generator.classes)
    counts: Counter[str] = Counter()
    for i in range(size):
        for label in generator.record(i).labels:
            counts[label.name] += 1
    leaves = [(name, n) for name, n in counts.most_common() if name in classes]
    common = leaves[0][0]
    second = next(name for name, _ in leaves[1:] if name not in generator.taxonomy.parents(common))
    parent = max(generator.taxonomy.parents(common) or [common], key=lambda p: counts[p])
    target = max(1, size // 2000)
    rare = min(leaves, key=lambda item: (abs(item[1] - target), item[0]))[0]
    return {"common": common, "second": second, "parent": parent, "rare": rare}


def kinds(labels: dict[str, str]) -> list[Kind]:
    common, second = quoted(labels["common"].lower()), quoted(labels["second"].lower())
    parent, rare = quoted(labels["parent"].lower()), quoted(labels["rare"].lower())
    return [
        Kind("common label", common),
        Kind("rare label", rare),
        Kind("synonym", "automobile"),
        Kind("plural", "dogs"),
        Kind("OCR phrase", '"no parking"'),
        Kind("faces>=2", "faces>=2"),
        Kind("confidence + label", f"confidence>=90 label:{common}"),
        Kind("negation", f"{parent} -label:{common}"),
        Kind("OR", f"{common} OR {second}"),
        Kind("key prefix", "key:pets/"),
        Kind("facets, all images", "", facets=True),
        Kind("facets, common label", common, facets=True),
        Kind("page 2 (cursor)", parent, page=2),
        Kind("page 5 (cursor)", parent, page=5),
    ]


def prepare(index: SearchIndex, mix: list[Kind], limit: int) -> int:
    """Run every kind once (the first pass) for its total and time; walk the pages of the
    paged kinds once for their cursors. How many searches it made."""
    searches = len(mix)
    walked: dict[str, list[str]] = {}  # query -> cursors of pages 2, 3, ...
    for kind in mix:
        t0 = time.perf_counter()
        if kind.page == 1:
            page = index.search(kind.query, limit=limit, facets=kind.facets)
        else:
            cursors = walked.setdefault(kind.query, [])
            page = index.search(kind.query, limit=limit)
            for number in range(2, kind.page + 1):
                if len(cursors) < number - 1:
                    if page.next_after is None:
                        raise BenchError(f"{kind.name}: {kind.query!r} has < {kind.page} pages")
                    cursors.append(page.next_after)
                searches += 1
                t0 = time.perf_counter()  # only the page asked for counts
                page = index.search(kind.query, limit=limit, after=cursors[number - 2])
            kind.cursor = cursors[kind.page - 2]
        kind.first_ms = (time.perf_counter() - t0) * 1000
        kind.total = page.total
        if not page.hits:
            raise BenchError(f"{kind.name}: {kind.query!r} found nothing; the records are wrong")
    return searches


def timed(index: SearchIndex, kind: Kind, limit: int) -> float:
    t0 = time.perf_counter()
    index.search(kind.query, limit=limit, after=kind.cursor, facets=kind.facets)
    return (time.perf_counter() - t0) * 1000


@dataclass
class Round:
    size: int
    kinds: list[Kind]
    warmup: int
    rounds: int
    searches: int  # made while the CPU was counted
    seconds: float
    server_cpu: float
    others_cpu: float
    rss_mb: float
    hwm_mb: float


def measure(
    index: SearchIndex, size: int, labels: dict[str, str], args: argparse.Namespace
) -> Round:
    """Warm up, then time rounds of the mix until `--rounds` or `--budget` (at least one).

    When the first pass alone takes longer than the budget (noida-db scans every document for
    each clause: over 100,000 records a query takes tens of seconds), its times are the one
    round: warming up changes nothing for a scan, and another pass would take as long again.
    """
    mix = kinds(labels)
    before = cpu_seconds(SERVER_PID), own_cpu(), machine_busy_seconds()
    t0 = time.perf_counter()
    searches = prepare(index, mix, args.limit)
    first = time.perf_counter() - t0
    warmup, rounds = 0, 0
    if first > args.budget:
        for kind in mix:
            kind.times_ms.append(kind.first_ms)
        rounds = 1
    else:
        warmup = 1 + (args.warmup if first * (1 + args.warmup) < args.budget / 2 else 0)
        for _ in range(warmup - 1):
            for kind in mix:
                timed(index, kind, args.limit)
        before = cpu_seconds(SERVER_PID), own_cpu(), machine_busy_seconds()
        t0 = time.perf_counter()
        while rounds < args.rounds and (rounds == 0 or time.perf_counter() - t0 < args.budget):
            for kind in mix:
                kind.times_ms.append(timed(index, kind, args.limit))
            rounds += 1
        searches = rounds * len(mix)
    seconds = time.perf_counter() - t0
    server = cpu_seconds(SERVER_PID) - before[0]
    others = machine_busy_seconds() - before[2] - server - (own_cpu() - before[1])
    return Round(
        size,
        mix,
        warmup,
        rounds,
        searches,
        seconds,
        server,
        max(0.0, others),
        _proc_status(SERVER_PID, "VmRSS"),
        _proc_status(SERVER_PID, "VmHWM"),
    )


# -- the report ---------------------------------------------------------------------------------


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1-99), interpolated between the nearest ranks."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report_load(size: int, loaded: Load) -> None:
    print(
        f"\n{size:,} records: loaded {loaded.records:,} more in {loaded.seconds:.1f} s "
        f"({loaded.records / loaded.seconds:,.0f} records/s, bulk requests and refresh only; "
        f"generating them took {loaded.generate_seconds:.1f} s before; server CPU "
        f"{loaded.server_cpu:.1f} s, RSS {_proc_status(SERVER_PID, 'VmRSS'):.0f} MB"
        f"{heap(URL)})",
        flush=True,
    )


def report(result: Round, args: argparse.Namespace) -> None:
    print(
        f"  {result.rounds} rounds x {len(result.kinds)} kinds after {result.warmup} warm-up "
        f"{'' if result.warmup else '(the first pass, timed: slower than --budget) '}"
        f"limit {args.limit}, {result.seconds:.1f} s; server CPU {result.server_cpu:.1f} s "
        f"({1000 * result.server_cpu / result.searches:.0f} ms a search), "
        f"other processes' CPU {result.others_cpu:.1f} s"
    )
    width = max(len(k.query) for k in result.kinds)
    print(
        f"  {'kind':<22} {'query':<{width}} {'total':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}"
    )
    everything: list[float] = []
    for kind in result.kinds:
        everything += kind.times_ms
        shown = kind.query or "(empty)"
        print(
            f"  {kind.name:<22} {shown:<{width}} {kind.total:>7} "
            f"{statistics.median(kind.times_ms):>7.1f} {percentile(kind.times_ms, 95):>7.1f} "
            f"{max(kind.times_ms):>7.1f}"
        )
    print(
        f"  {'overall':<22} {'':<{width}} {'':>7} {statistics.median(everything):>7.1f} "
        f"{percentile(everything, 95):>7.1f} {max(everything):>7.1f}"
    )
    print(
        f"  server ({ENGINE}) RSS {result.rss_mb:.0f} MB now, peak {result.hwm_mb:.0f} MB "
        f"since it started{heap(URL)}"
    )


# -- main ---------------------------------------------------------------------------------------

SERVER_PID = 0
URL = ""
ENGINE = ""


def main() -> None:
    global SERVER_PID, URL, ENGINE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated record counts, ascending"
    )
    parser.add_argument("--rounds", type=int, default=30, help="at most this many timed rounds")
    parser.add_argument(
        "--budget",
        type=float,
        default=60,
        help="seconds of timed rounds per size: no new round starts after it (at least one)",
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed rounds after the first (if time allows)"
    )
    parser.add_argument("--limit", type=int, default=20, help="hits per page")
    parser.add_argument("--seed", type=int, default=6, help="the records' seed")
    parser.add_argument("--bulk-threads", type=int, default=3, help="threads sending bulk requests")
    parser.add_argument(
        "--engine",
        choices=("opensearch", "noida"),
        default="opensearch",
        help="OpenSearch 2.5.0 (default) or the noida-db emulator",
    )
    args = parser.parse_args()
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated numbers, like 10000,100000: {args.sizes}")
    if sizes != sorted(set(sizes)) or sizes[0] < 2000:
        parser.error("--sizes must be ascending, distinct and at least 2000 each")
    if min(args.rounds, args.limit, args.bulk_threads) < 1 or args.warmup < 0:
        parser.error("--rounds, --limit and --bulk-threads must be >= 1, --warmup >= 0")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the finally below: the server is stopped

    signal.signal(signal.SIGTERM, stop)
    generator = Generator(args.seed)
    os.environ[devstack.SEARCH_ENGINE_VARIABLE] = args.engine
    with tempfile.TemporaryDirectory(prefix="rudolph-bench-search-") as scratch:
        os.chmod(scratch, 0o755)  # as root, OpenSearch runs as nobody and must get in
        group = devstack.Processes(Path(scratch) / "logs")
        try:
            url = devstack.start_opensearch(group, devstack.free_port(), Path(scratch) / "data")
            SERVER_PID = server_pid(group.process("opensearch").pid)
            URL = url
            settings = Settings.from_env(
                {"RUDOLPH_OPENSEARCH_URL": url, "RUDOLPH_INDEX": "bench-search"}
            )
            info = SearchIndex(settings).engine()
            ENGINE = "noida-db" if args.engine == "noida" else info
            # One attempt, no 10 s timeout: on noida-db a query over 100,000 records takes
            # tens of seconds, and a retried one would be timed twice.
            index = SearchIndex(settings, OpenSearch(hosts=[url], timeout=900, max_retries=0))
            concrete = index.ensure()
            print(
                f"rudolph search latency, {ENGINE} at {url}, {os.cpu_count()} cores, seed "
                f"{args.seed}; SearchIndex.search timed from this process"
            )
            labels = pick_labels(generator, sizes[0])
            print(f"  labels picked from the first {sizes[0]:,} records: {labels}")
            done = 0
            for size in sizes:
                loaded = load(settings, concrete, generator, done, size, args.bulk_threads)
                done = size
                if (count := index.count()) != size:
                    raise BenchError(f"the index holds {count} documents, not {size}")
                report_load(size, loaded)
                report(measure(index, size, labels, args), args)
        finally:
            group.stop()


if __name__ == "__main__":
    main()
