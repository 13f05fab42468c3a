"""The fleet-wide rate limiter (rudolph/ratelimit.py) against a real Redis, the retry policy
for rate-limited tasks (workers/retries.py), and a real fleet of two worker processes kept
under a Rekognition stand-in's throttling quota."""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config
from celery import Celery
from celery.canvas import Signature
from celery.contrib.testing.worker import start_worker
from celery.exceptions import Retry

from rudolph.backends.rekognition import RekognitionAnalyzer
from rudolph.errors import RateLimitedError, TransientAnalyzerError
from rudolph.ratelimit import DEFAULT_HEADROOM, KEY_PREFIX, NO_LIMIT, RateLimiter, limiter_for
from rudolph.settings import Settings
from rudolph.source import ImageInput
from tests.fleet import fleet
from tests.photos import encode, load
from tests.rekognition_standin import (
    quota_answers,
    rekognition_standin,
    throttling_standin,
    url,
)
from tests.servers import free_port
from workers.retries import RATE_LIMITED_HEADER, retry_with_backoff


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def prefix() -> str:
    """Keys of the test's own, so tests sharing the session's Redis never meet."""
    return f"test:{uuid.uuid4().hex[:8]}:"


# -- several processes, one budget ------------------------------------------------------------


def _hammer(
    redis_url: str,
    prefix: str,
    rates: dict[str, float],
    go: Event,
    start: Any,
    seconds: float,
    out: Any,
) -> None:
    """Take every slot it can, as fast as it can, from `start` for `seconds`; report the
    (system-wide monotonic) times of the slots it got."""
    # No headroom: this checks GCRA itself, to the request.
    limiter = RateLimiter(redis.Redis.from_url(redis_url), rates, headroom=0, prefix=prefix)
    granted: dict[str, list[float]] = {api: [] for api in rates}
    apis = list(rates)
    out.put("ready")
    if not go.wait(60):
        out.put(granted)
        return
    time.sleep(max(0.0, start.value - time.monotonic()))
    end = start.value + seconds
    turn = 0
    while time.monotonic() < end:
        api = apis[turn % len(apis)]
        turn += 1
        if limiter.acquire(api) == 0.0:
            granted[api].append(time.monotonic())
    out.put(granted)


def _busiest_second(times: list[float]) -> int:
    ordered, most, first = sorted(times), 0, 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_three_processes_share_one_rate_per_api(redis_url: str, prefix: str) -> None:
    rates = {"DetectLabels": 40.0, "DetectText": 20.0}
    seconds = 2.0
    ctx = mp.get_context("spawn")
    go, start, out = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    workers = [
        ctx.Process(target=_hammer, args=(redis_url, prefix, rates, go, start, seconds, out))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        assert [out.get(timeout=60) for _ in workers] == ["ready"] * len(workers)
        start.value = time.monotonic() + 0.5
        go.set()
        results = [out.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    for api, rate in rates.items():
        times = [t for result in results for t in result[api]]
        assert all(result[api] for result in results), f"a process never got a {api} slot"
        expected = rate * seconds  # burst 1: one at the start, then one every 1/rate
        # Never more than the rate; fewer only by the slots that passed while every process
        # was descheduled (a busy 2-core machine runs these three beside the rest of the suite).
        assert 0.85 * expected <= len(times) <= expected + 2, (api, len(times))
        # rate + burst - 1 by Redis's clock; one more for the processes' own timestamps.
        assert _busiest_second(times) <= rate + 1, (api, _busiest_second(times))


# -- one process -------------------------------------------------------------------------------


def test_apis_are_limited_independently(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, {"DetectLabels": 2.0, "DetectText": 2.0}, prefix=prefix)
    assert limiter.acquire("DetectLabels") == 0.0
    assert 0.3 < limiter.acquire("DetectLabels") <= 0.5 / (1 - DEFAULT_HEADROOM)
    assert limiter.acquire("DetectText") == 0.0  # its own budget
    # An API without a rate is not limited, and leaves nothing in Redis.
    assert [limiter.acquire("DetectFaces") for _ in range(50)] == [0.0] * 50
    assert not client.exists(prefix + "DetectFaces")


def test_a_burst_goes_at_once_then_the_rate_holds(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, {"DetectLabels": 4.0}, burst=3, headroom=0, prefix=prefix)
    assert [limiter.acquire("DetectLabels") for _ in range(3)] == [0.0] * 3
    assert 0.15 < limiter.acquire("DetectLabels") <= 0.25
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(client, {"DetectLabels": 4.0}, burst=0.5)
    with pytest.raises(ValueError, match="DetectText"):
        RateLimiter(client, {"DetectText": 0})
    with pytest.raises(ValueError, match="headroom"):
        RateLimiter(client, {"DetectText": 1}, headroom=0.5)


def test_the_default_headroom_keeps_a_little_under_the_rate(
    client: redis.Redis, prefix: str
) -> None:
    exact = RateLimiter(client, {"DetectText": 10.0}, headroom=0, prefix=prefix + "exact:")
    default = RateLimiter(client, {"DetectText": 10.0}, prefix=prefix)
    for limiter in (exact, default):
        assert limiter.acquire("DetectText") == 0.0
    assert 0.095 < exact.acquire("DetectText") <= 0.1
    assert 0.1 < default.acquire("DetectText") <= 0.1 / (1 - DEFAULT_HEADROOM) + 1e-6
    assert 0 < DEFAULT_HEADROOM <= 0.05


def test_a_refusal_reserves_nothing(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, {"DetectLabels": 1.0}, prefix=prefix)
    assert limiter.acquire("DetectLabels") == 0.0
    before = client.get(prefix + "DetectLabels")
    first = limiter.acquire("DetectLabels")
    assert client.get(prefix + "DetectLabels") == before
    assert 0 < limiter.acquire("DetectLabels") <= first


def test_wait_sleeps_through_a_short_wait(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, {"DetectLabels": 4.0}, prefix=prefix)
    limiter.wait("DetectLabels", max_wait=1.0)
    started = time.monotonic()
    limiter.wait("DetectLabels", max_wait=1.0)
    limiter.wait("DetectLabels", max_wait=1.0)
    assert 0.45 <= time.monotonic() - started < 0.8


def test_wait_refuses_a_long_wait_with_when_to_retry(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, {"DetectFaces": 0.2}, prefix=prefix)
    limiter.wait("DetectFaces", max_wait=2.0)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as refused:
        limiter.wait("DetectFaces", max_wait=2.0)
    # It did not sit out the ~5 s wait (bounded loosely: a loaded machine is slow to answer).
    assert time.monotonic() - started < 2.0
    error = refused.value
    assert error.retryable and 4.5 < error.retry_after <= 5 / (1 - DEFAULT_HEADROOM)
    message = str(error)
    assert "DetectFaces" in message and "0.2 requests/s" in message
    assert f"retry in {error.retry_after:.1f} s" in message


def test_wait_gives_up_after_losing_turns_for_max_wait(client: redis.Redis, prefix: str) -> None:
    # Another worker keeps taking the slots: after max_wait of losing, the task steps aside.
    limiter = RateLimiter(client, {"DetectText": 10.0}, prefix=prefix)

    def rival_takes_the_slot(seconds: float) -> None:
        time.sleep(seconds)
        assert limiter.acquire("DetectText") == 0.0

    loser = RateLimiter(client, {"DetectText": 10.0}, prefix=prefix, sleep=rival_takes_the_slot)
    limiter.acquire("DetectText")
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as refused:
        loser.wait("DetectText", max_wait=0.5)
    assert 0.35 < time.monotonic() - started < 0.8
    assert 0.4 < refused.value.retry_after < 0.8


def test_keys_expire_once_idle(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, {"DetectLabels": 10.0, "DetectFaces": 0.5}, prefix=prefix)
    limiter.acquire("DetectLabels")
    limiter.acquire("DetectFaces")
    # The key lives until its TAT: one interval, 1/(rate * (1 - headroom)) s, and 1 ms.
    assert 0 < client.pttl(prefix + "DetectLabels") <= 100 / (1 - DEFAULT_HEADROOM) + 2
    assert 1900 < client.pttl(prefix + "DetectFaces") <= 2000 / (1 - DEFAULT_HEADROOM) + 2
    time.sleep(0.3)
    assert not client.exists(prefix + "DetectLabels")
    assert limiter.acquire("DetectLabels") == 0.0  # a fresh start, as if never used


def test_an_unreachable_redis_is_a_retryable_error_not_no_limit() -> None:
    down = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=None)
    limiter = RateLimiter(down, {"DetectLabels": 5.0})
    assert limiter.acquire("DetectText") == 0.0  # not limited: Redis is not needed
    with pytest.raises(TransientAnalyzerError) as failed:
        limiter.acquire("DetectLabels")
    assert failed.value.retryable and failed.value.code == "RateLimiterUnavailable"
    assert "RUDOLPH_REDIS_URL" in str(failed.value) and "DetectLabels" in str(failed.value)


def test_limiter_for_uses_the_settings_once_per_process(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, rate_limits="DetectLabels=7,DetectText=3")
    limiter = limiter_for(settings)
    assert limiter is limiter_for(settings)
    assert limiter.rates == {"DetectLabels": 7.0, "DetectText": 3.0}
    assert limiter.key("DetectLabels") == KEY_PREFIX + "DetectLabels"
    assert KEY_PREFIX == "rudolph:ratelimit:"
    assert limiter.redis.connection_pool.connection_kwargs["port"] == int(
        redis_url.rsplit(":", 1)[1].split("/")[0]
    )


def test_the_analyzer_waits_for_its_turn_before_each_call() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.waits: list[tuple[str, float]] = []

        def acquire(self, api: str) -> float:
            return 0.0

        def wait(self, api: str, max_wait: float) -> None:
            self.waits.append((api, max_wait))

    class Client:
        def detect_labels(self, **params: Any) -> dict[str, Any]:
            return {"Labels": []}

        def detect_text(self, **params: Any) -> dict[str, Any]:
            return {"TextDetections": []}

        def detect_faces(self, **params: Any) -> dict[str, Any]:
            return {"FaceDetails": []}

    recorder = Recorder()
    analyzer = RekognitionAnalyzer(Settings(), client=Client(), limiter=recorder)
    image = ImageInput.from_bytes(encode(load("coffee"), "JPEG"))
    analyzer.labels(image)
    analyzer.text(image)
    analyzer.faces(image)
    assert recorder.waits == [("DetectLabels", 2.0), ("DetectText", 2.0), ("DetectFaces", 2.0)]
    # No limiter given: the process's limiter, made on the first call (so none is needed to
    # build an analyzer), or NO_LIMIT when asked.
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    assert RekognitionAnalyzer(settings, client=Client())._limiter is None
    assert RekognitionAnalyzer(settings, client=Client()).limiter is limiter_for(settings)
    assert RekognitionAnalyzer(settings, client=Client(), limiter=NO_LIMIT).labels(image) == []


def test_botocores_own_retries_wait_for_their_turn_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # A throttled call is retried by botocore (standard mode) before our code sees it: every
    # one of those HTTP attempts must pass the limiter, or one throttle brings on more.
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda *_: 0)

    class Recorder:
        def __init__(self) -> None:
            self.waits: list[str] = []

        def acquire(self, api: str) -> float:
            return 0.0

        def wait(self, api: str, max_wait: float) -> None:
            self.waits.append(api)

    with rekognition_standin("", quota_answers(), quota=1) as standin:
        settings = Settings(rekognition_endpoint_url=url(standin))
        client = boto3.client(
            "rekognition",
            endpoint_url=url(standin),
            region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )
        recorder = Recorder()
        analyzer = RekognitionAnalyzer(settings, client=client, limiter=recorder)
        image = ImageInput.from_bytes(encode(load("coffee"), "JPEG"))
        analyzer.labels(image)  # the quota's one request this second
        with pytest.raises(TransientAnalyzerError, match="Rate exceeded"):
            analyzer.labels(image)  # throttled, and so are botocore's 3 retries
    assert (standin.accepted["DetectLabels"], standin.throttled["DetectLabels"]) == (1, 4)
    assert recorder.waits == ["DetectLabels"] * 5  # each HTTP attempt: 2 calls + 3 retries


# -- retries of rate-limited tasks (real Celery retry(), only the sending is caught) -----------

_app = Celery("ratelimit-tests", broker="memory://", set_as_current=False)


@_app.task(bind=True, name="tests.limited", max_retries=2)
@retry_with_backoff(give_up=lambda task, exc: "gave up")
def _limited(self: Any, error: str) -> str:
    if error == "rate":
        raise RateLimitedError("DetectLabels is limited", retry_after=3.0)
    raise TransientAnalyzerError("Rate exceeded", "ThrottlingException")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    monkeypatch.setattr(Signature, "apply_async", lambda s, *a, **k: messages.append(s.options))
    return messages


def _run(error: str, retries: int, waits: int | None) -> Any:
    headers = {RATE_LIMITED_HEADER: waits} if waits is not None else None
    _limited.push_request(
        id="t1", retries=retries, headers=headers, called_directly=False, delivery_info={}
    )
    try:
        return _limited.run(error)
    finally:
        _limited.pop_request()


def test_a_rate_limited_task_retries_after_the_wait_without_spending_retries(
    sent: list[dict[str, Any]],
) -> None:
    # Already retried 5 times, 4 of them rate-limited: one real retry spent of max_retries=2.
    with pytest.raises(Retry):
        _run("rate", retries=5, waits=4)
    assert 3.0 <= sent[-1]["countdown"] <= 3.0 + 0.6
    assert sent[-1]["headers"][RATE_LIMITED_HEADER] == 5 and sent[-1]["retries"] == 6
    # A real failure after those waits still gets its backoff retry: the waits were not
    # counted (Celery alone would refuse: 6 retries > max_retries=2).
    with pytest.raises(Retry):
        _run("throttled", retries=5, waits=4)
    assert sent[-1]["headers"][RATE_LIMITED_HEADER] == 4 and sent[-1]["countdown"] <= 4.0
    # The real failures spend the budget as before.
    assert _run("throttled", retries=6, waits=4) == "gave up"
    assert _run("throttled", retries=2, waits=None) == "gave up"
    with pytest.raises(Retry):
        _run("throttled", retries=0, waits=None)
    assert sent[-1]["headers"][RATE_LIMITED_HEADER] == 0 and sent[-1]["countdown"] <= 2.0


def test_a_real_worker_does_not_hold_waits_against_the_task(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The header that counts the waits travels with the retried message through a broker.
    broker = redis_url.rsplit("/", 1)[0] + "/15"
    app = Celery("waits", broker=broker, backend=broker, set_as_current=False)
    runs: list[tuple[int, Any]] = []

    @app.task(bind=True, name="tests.waits", max_retries=2)
    @retry_with_backoff(give_up=lambda task, exc: task.request.retries)
    def waits(self: Any) -> int:
        runs.append((self.request.retries, (self.request.headers or {}).get(RATE_LIMITED_HEADER)))
        if len(runs) <= 3:
            raise RateLimitedError("DetectText is limited", retry_after=0.1)
        raise TransientAnalyzerError("Rate exceeded", "ThrottlingException")

    monkeypatch.setattr("workers.retries.backoff", lambda attempt: 0.1)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        gave_up_after = waits.delay().get(timeout=30)
    # 3 waits, then the 2 retries of max_retries=2, then it gives up.
    assert runs == [(0, None), (1, 1), (2, 2), (3, 3), (4, 3), (5, 3)]
    assert gave_up_after == 5


# -- acceptance: two worker processes under a throttling Rekognition ---------------------------

# The quota is set below what this fleet does unlimited: two worker processes reach ~3
# requests/s per API here, and without the limiter (RUDOLPH_RATE_LIMITS=...=1000) a third of
# the requests to a stand-in with this quota are throttled.
QUOTA = 2
IMAGES = 20
APIS = ("DetectLabels", "DetectText", "DetectFaces")


def test_two_workers_keep_under_rekognitions_quota(
    moto_url: str, opensearch_url: str, redis_url: str
) -> None:
    jpeg = encode(load("astronaut"), "JPEG")
    keys = [f"quota/{n:02d}.jpg" for n in range(IMAGES)]
    with (
        throttling_standin(QUOTA) as standin,
        # tests/fleet.py's worker runs with concurrency 2: two worker processes.
        fleet(
            moto_url,
            opensearch_url,
            redis_url,
            RUDOLPH_ANALYZER="rekognition",
            RUDOLPH_REKOGNITION_ENDPOINT_URL=standin.url,
            RUDOLPH_RATE_LIMITS=",".join(f"{api}={QUOTA}" for api in APIS),
        ) as running,
    ):
        started = time.monotonic()
        for key in keys:
            running.upload(key, jpeg)
        records = [running.record(key, timeout=45) for key in keys]
        elapsed = time.monotonic() - started
        accepted, throttled = standin.counts()
    assert [r.status for r in records] == ["done"] * IMAGES, [r.errors for r in records]
    assert all(len(r.faces) == 3 and r.labels and r.text for r in records)
    requests = sum(accepted.values()) + sum(throttled.values())
    assert sum(throttled.values()) < 0.01 * requests, (accepted, throttled)
    assert dict(accepted) == dict.fromkeys(APIS, IMAGES)
    # 20 calls of each API at 2/s take at least 19/2 s: the limiter did hold them back.
    assert elapsed > (IMAGES - 1) / QUOTA
