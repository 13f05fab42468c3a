"""Fleet-wide rate limits: every worker on every host shares one budget per Rekognition API.

Celery's own `rate_limit` is per worker process (two workers at 5/s make 10/s), while AWS
throttles a whole account at a per-API quota, so the budget lives in Redis.

Algorithm: GCRA (the generic cell rate algorithm, a leaky bucket that keeps one number per
key). For an API limited to `rate` requests/s, the emission interval is T = 1/rate (less
the headroom below) and the key holds the theoretical arrival time (TAT) of the next request.
A request at `now` may go when

    max(TAT, now) + T - burst*T <= now

and then TAT becomes max(TAT, now) + T. One Lua script does the read, the decision and the
write atomically, with Redis's own clock (TIME), so the hosts' clocks never matter; times are
kept in integer microseconds. The key expires when its TAT has passed, which is exactly when
it stops carrying information, so idle APIs leave nothing behind.

Burst: `burst` requests may go back to back after an idle spell; after that they are spaced T
apart. The most requests any 1-second window can see is `rate + burst - 1`. A quota is
checked over sliding windows, so the default is 1: requests are evenly spaced and no window
ever holds more than `rate` by the limiter's clock (a burst of "one second's worth" would let
a window see twice the quota). What a burst of 1 gives up is catching up on a slot nobody
used, which a strict quota would not grant either.

Headroom: the limiter grants at `rate * (1 - headroom)` (default 5% under). Its clock is
Redis's and the quota's is AWS's front door; between the two, each request spends some
varying latency (signing, connecting, a busy host stalling a process for tens of ms), which
bunches requests up on arrival after they were spaced out here. A headroom of h is h seconds
of slack in every second, whatever the rate: 5% absorbs a 50 ms stall, for 5% of throughput.
(Measured against a stand-in that throttles strictly per sliding second, on a loaded 2-core
host, by the fleet test of tests/test_ratelimit.py: 2% let ~1 request in 200 be throttled,
5% none in 360.)

`acquire` does not queue: when it says "wait", nothing was reserved, and the caller asks
again after the wait (`wait` does that, up to `max_wait`, then raises RateLimitedError so a
task gives its worker slot back and retries later with the wait as its countdown).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Protocol

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from rudolph.errors import RateLimitedError, TransientAnalyzerError
from rudolph.settings import Settings

KEY_PREFIX = "rudolph:ratelimit:"
DEFAULT_BURST = 1.0
DEFAULT_HEADROOM = 0.05

# KEYS[1]: the API's key. ARGV[1]: emission interval T, ARGV[2]: burst tolerance burst*T,
# both in integer microseconds. Returns 0 when the request may go (and records it), else the
# microseconds until one may (and records nothing).
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return allow_at - now
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return 0
"""


class Limiter(Protocol):
    def acquire(self, api: str) -> float: ...

    def wait(self, api: str, max_wait: float) -> None: ...


class NoLimit:
    """A limiter that never waits (tests with a stubbed client, tools that need no Redis)."""

    def acquire(self, api: str) -> float:
        return 0.0

    def wait(self, api: str, max_wait: float) -> None:
        return None


NO_LIMIT = NoLimit()


class RateLimiter:
    """Requests per second per API, shared through Redis by every process that uses the same
    Redis and key prefix. APIs without a rate are not limited (and never touch Redis)."""

    def __init__(
        self,
        redis_client: redis.Redis,
        rates: Mapping[str, float],
        burst: float = DEFAULT_BURST,
        *,
        headroom: float = DEFAULT_HEADROOM,
        prefix: str = KEY_PREFIX,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for api, rate in rates.items():
            if not rate > 0:
                raise ValueError(f"the rate of {api} must be > 0 requests/s, not {rate!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1 request, not {burst!r}")
        if not 0 <= headroom < 0.5:
            raise ValueError(f"headroom must be a fraction in [0, 0.5), not {headroom!r}")
        self.redis = redis_client
        self.rates = dict(rates)
        self.burst = float(burst)
        self.headroom = float(headroom)
        self.prefix = prefix
        self._sleep = sleep
        self._clock = clock
        self._script = redis_client.register_script(_GCRA)

    def key(self, api: str) -> str:
        return self.prefix + api

    def acquire(self, api: str) -> float:
        """Take a slot for one `api` request: 0.0 when it may go now, else the seconds until
        one may (and then nothing was taken)."""
        rate = self.rates.get(api)
        if rate is None:
            return 0.0
        # Rounded up: a limiter that errs is a hair slower than its rate, never faster.
        interval = math.ceil(1_000_000 / (rate * (1 - self.headroom)))
        tolerance = round(self.burst * interval)
        try:
            wait_us = self._script(keys=[self.key(api)], args=[interval, tolerance])
        except redis.RedisError as exc:
            raise TransientAnalyzerError(
                f"the rate limiter cannot use Redis at {self._where()} "
                f"({type(exc).__name__}: {exc}), so {api} calls wait for it: start Redis or "
                "point RUDOLPH_REDIS_URL at a running one",
                "RateLimiterUnavailable",
            ) from exc
        return max(0, int(wait_us)) / 1_000_000

    def wait(self, api: str, max_wait: float) -> None:
        """Return when a slot for `api` is taken; sleep for it while the total wait stays within
        `max_wait` seconds, else raise RateLimitedError with the seconds to wait."""
        started = self._clock()
        while True:
            delay = self.acquire(api)
            if delay <= 0:
                return
            waited = self._clock() - started
            if waited + delay > max_wait:
                # The first time round this is the limiter's own wait; after losing turns to
                # other workers for a while it is about as long again: the fleet is busy.
                retry_after = waited + delay
                raise RateLimitedError(
                    f"{api} is limited to {self.rates[api]:g} requests/s across the fleet and "
                    f"its next turn is more than {max_wait:g} s away: the task will retry in "
                    f"{retry_after:.1f} s",
                    retry_after=retry_after,
                )
            self._sleep(delay)

    def _where(self) -> str:
        kwargs = self.redis.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def connect(url: str) -> redis.Redis:
    """A Redis client for the limiter: short timeouts and two quick reconnects, so a Redis
    that is down fails a call in seconds instead of hanging a worker."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=2,
        retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), 2),
        health_check_interval=30,
    )


@lru_cache(maxsize=4)
def limiter_for(settings: Settings) -> RateLimiter:
    """The process's limiter for these settings (`redis_url`, `rate_limits`)."""
    return RateLimiter(connect(settings.redis_url), dict(settings.rate_limits))
