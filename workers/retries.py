"""Retries with exponential backoff and full jitter, for errors that say retrying may help.

One named piece, applied to tasks as a decorator, instead of try/excepts in every task.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task

log = logging.getLogger(__name__)

BASE_SECONDS = 2.0
CAP_SECONDS = 300.0

R = TypeVar("R")


def backoff(attempt: int, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> float:
    """Seconds to wait before retry `attempt` (0-based): uniform in [0, min(cap, base*2^n)].

    Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter") spreads a fleet's
    retries out so a throttled service is not hit by them all at once.
    """
    return random.uniform(0, min(cap, base * 2**attempt))


def is_retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


def retry_with_backoff(
    give_up: Callable[[Task, BaseException], Any] | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Retry a bound task on retryable errors; once `max_retries` is spent, return
    `give_up(task, exc)` (or raise when there is none)."""

    def decorate(run: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(run)
        def wrapper(task: Task, *args: Any, **kwargs: Any) -> R:
            try:
                return run(task, *args, **kwargs)
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                attempt = task.request.retries
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
                    raise task.retry(exc=exc, countdown=countdown) from exc
                if give_up is None:
                    raise
                given_up: R = give_up(task, exc)
                return given_up

        return wrapper

    return decorate
