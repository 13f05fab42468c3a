"""Retries with exponential backoff and full jitter, for errors that say retrying may help.

One named piece, applied to tasks as a decorator, instead of try/excepts in every task.

An error that knows when to come back (`retry_after`, e.g. RateLimitedError: the fleet-wide
rate limit's next free turn) is retried after that many seconds plus a little jitter instead.
Such a wait is queueing, not failing, so it does not spend the task's `max_retries`: Celery
counts every retry in `request.retries` and has no way to leave one out, so these retries are
also counted in a message header (RATE_LIMITED_HEADER) and subtracted, and each `retry()` is
given a `max_retries` raised by that count. They are capped at MAX_RATE_LIMITED_RETRIES so a
limit set far too low for the load still ends (through `give_up`) instead of looping forever.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task

from rudolph.errors import TransientError

log = logging.getLogger(__name__)

BASE_SECONDS = 2.0
CAP_SECONDS = 300.0
# Jitter added to a `retry_after` countdown: up to this fraction of it, at least MIN_JITTER s,
# so the tasks turned away at the same moment do not all come back at the same moment.
RETRY_AFTER_JITTER = 0.2
MIN_JITTER_SECONDS = 0.5
MAX_RATE_LIMITED_RETRIES = 100
RATE_LIMITED_HEADER = "rudolph_rate_limited_retries"

R = TypeVar("R")


def backoff(attempt: int, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> float:
    """Seconds to wait before retry `attempt` (0-based): uniform in [0, min(cap, base*2^n)].

    Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter") spreads a fleet's
    retries out so a throttled service is not hit by them all at once.
    """
    return random.uniform(0, min(cap, base * 2**attempt))


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError)


def retry_after(exc: BaseException) -> float | None:
    """The seconds the error says to wait before trying again, if it says."""
    value = getattr(exc, "retry_after", None)
    return None if value is None else max(0.0, float(value))


def after_jitter(seconds: float) -> float:
    """`seconds` plus a little jitter: uniform in [0, max(MIN_JITTER, 20% of seconds)]."""
    return seconds + random.uniform(0, max(MIN_JITTER_SECONDS, RETRY_AFTER_JITTER * seconds))


def _rate_limited_retries(task: Task[Any, Any]) -> int:
    headers = task.request.headers or {}
    return int(headers.get(RATE_LIMITED_HEADER) or 0)


def _headers(headers: dict[str, Any], waits: int) -> dict[str, Any]:
    """The retry's message headers, with the count of rate-limit waits (an int: Celery sends
    any JSON value as a header, although celery-types says str)."""
    return {**headers, RATE_LIMITED_HEADER: waits}


def retry_with_backoff(
    give_up: Callable[[Task[Any, Any], BaseException], Any] | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Retry a bound task on retryable errors; once `max_retries` is spent, return
    `give_up(task, exc)` (or raise when there is none)."""

    def decorate(run: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(run)
        def wrapper(task: Task[Any, Any], *args: Any, **kwargs: Any) -> R:
            try:
                return run(task, *args, **kwargs)
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                waits = _rate_limited_retries(task)
                headers: dict[str, Any] = {**(task.request.headers or {})}
                # Retries that were failures; rate-limit waits are not held against the task.
                attempt = task.request.retries - waits
                wait = retry_after(exc)
                if wait is not None and waits < MAX_RATE_LIMITED_RETRIES:
                    countdown = after_jitter(wait)
                    log.info("%s: %s; waiting its turn, back in %.1f s", task.name, exc, countdown)
                    raise task.retry(
                        exc=exc,
                        countdown=countdown,
                        max_retries=task.request.retries + 1,
                        headers=_headers(headers, waits + 1),
                    ) from exc
                if attempt < (task.max_retries or 0):
                    countdown = backoff(attempt)
                    log.warning(
                        "%s: %s; retry %d/%d in %.1f s",
                        task.name,
                        exc,
                        attempt + 1,
                        task.max_retries,
                        countdown,
                    )
                    raise task.retry(
                        exc=exc,
                        countdown=countdown,
                        max_retries=(task.max_retries or 0) + waits,
                        headers=_headers(headers, waits),
                    ) from exc
                if give_up is None:
                    raise
                given_up: R = give_up(task, exc)
                return given_up

        return wrapper

    return decorate
