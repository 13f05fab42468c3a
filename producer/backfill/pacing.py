"""How fast the backfill publishes: `rate` spaces the objects, and before each batch the
Celery queues' depth plus the refs of batches not expanded yet is held under `max_queued`
(backpressure), so a large bucket never floods the broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

POLL_SECONDS = 0.5


class Pacing:
    def __init__(
        self,
        rate: float | None,
        max_queued: int,
        features: int,
        depth: Callable[[], int],
        ready: Callable[[str], bool],
        stopping: threading.Event,
        tick: Callable[[], None],
        max_wait: float | None = None,
    ) -> None:
        self.rate = rate
        self.max_queued = max_queued
        #: Feature tasks a ref becomes once its batch is expanded.
        self.features = features
        self.depth = depth
        self.ready = ready
        self.stopping = stopping
        self.tick = tick
        self.max_wait = max_wait
        self._next = 0.0
        #: (batch task id, refs in it) of batches not known expanded yet.
        self.unexpanded: list[tuple[str, int]] = []

    def space(self) -> None:
        """Wait for the next object's turn under `rate`; KeyboardInterrupt when stopping."""
        if not self.rate:
            return
        now = time.monotonic()
        if now < self._next:
            if self.stopping.wait(self._next - now):
                raise KeyboardInterrupt
            now = self._next
        self._next = now + 1.0 / self.rate

    def sent(self, task_id: str, refs: int) -> None:
        """A batch of `refs` was published as task `task_id`."""
        self.unexpanded.append((task_id, refs))

    def waiting(self) -> int:
        """Celery queue depth plus what the batches not expanded yet will add: a ref
        counts as the feature tasks it becomes."""
        depth = self.depth()
        waiting = depth + self.features * sum(n for _, n in self.unexpanded)
        if waiting <= self.max_queued:
            return waiting  # room even if none was expanded: no need to ask
        self.unexpanded = [(i, n) for i, n in self.unexpanded if not self.ready(i)]
        return depth + self.features * sum(n for _, n in self.unexpanded)

    def wait_for_room(self) -> None:
        """Block while the queues (and batches on their way) hold more than max_queued
        messages: the queues exceed it by at most one batch."""
        deadline = None if self.max_wait is None else time.monotonic() + self.max_wait
        while self.waiting() > self.max_queued:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Celery queues stayed over {self.max_queued} messages "
                    f"for {self.max_wait:g} s"
                )
            self.tick()
            if self.stopping.wait(POLL_SECONDS):
                raise KeyboardInterrupt
