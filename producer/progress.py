"""What `rudolph backfill` shows while it runs: a rich progress bar on a terminal, a plain line
every few seconds otherwise (logs, CI), and how many pipelines finished.

rich, not tqdm: rich is already the CLI's library (pinned in pyproject.toml), and its
Progress takes arbitrary fields (listed, skipped, done, failed) in one line without a second
dependency. done/failed come from the Celery results of the aggregate tasks the run sent (their
ids derive from the run id and the image): one MGET per second of at most `POLL_IDS` ids,
never a table scan.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from producer.backfill import Report
from rudolph.vocabulary import DONE, PARTIAL

POLL_IDS = 500
PLAIN_EVERY = 5.0


def celery_outcomes(app: Any) -> Callable[[list[str]], tuple[int, int, list[str]]] | None:
    """A function (aggregate ids) -> (done, failed, ids still unfinished) reading the Redis
    result backend; None when the backend is not Redis (done/failed are then not shown)."""
    url = str(app.conf.result_backend or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)

    def check(ids: list[str]) -> tuple[int, int, list[str]]:
        head, rest = ids[:POLL_IDS], ids[POLL_IDS:]
        done = failed = 0
        waiting = []
        for task_id, raw in zip(
            head, client.mget([f"celery-task-meta-{i}" for i in head]), strict=True
        ):
            if raw is None:
                waiting.append(task_id)
                continue
            meta = json.loads(raw)
            result = meta.get("result") if meta.get("status") == "SUCCESS" else None
            status = result.get("status") if isinstance(result, dict) else None
            if status in (DONE, PARTIAL):
                done += 1
            elif meta.get("status") in ("SUCCESS", "FAILURE"):
                failed += 1  # a failed record, a gone object, or an aggregate that gave up
            else:
                waiting.append(task_id)
        return done, failed, rest + waiting  # the unfinished go to the back of the line

    return check


def _fields(report: Report) -> dict[str, Any]:
    return {
        "listed": report.listed,
        "skipped": sum(report.skipped.values()),
        "enqueued": report.enqueued,
        "done": report.done,
        "failed": report.failed,
        "rate": report.rate,
    }


class Display:
    """Call it with the report as often as you like; `close` ends the bar."""

    def __init__(self, verb: str, stream: TextIO | None = None) -> None:
        self.verb = verb
        self.stream = stream or sys.stderr
        self.last = 0.0
        self.progress: Progress | None = None
        self.task: Any = None
        if sys.stdout.isatty():
            self.progress = Progress(
                TextColumn("[bold]backfill[/]"),
                BarColumn(),
                TextColumn(
                    "listed {task.fields[listed]}  skipped {task.fields[skipped]}  "
                    f"{verb} {{task.fields[enqueued]}}  done {{task.fields[done]}}  "
                    "failed {task.fields[failed]}  {task.fields[rate]:.0f}/s"
                ),
                TimeRemainingColumn(),
                console=Console(file=sys.stdout),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("backfill", total=None, **_fields(Report()))

    def __call__(self, report: Report) -> None:
        if self.progress is not None:
            total, completed = None, None
            if report.fraction is not None:
                total, completed = 1.0, report.fraction
            elif report.expected:
                total = float(report.expected)
                completed = float(report.enqueued)
            self.progress.update(self.task, total=total, completed=completed, **_fields(report))
            return
        now = time.monotonic()
        if now - self.last < PLAIN_EVERY:
            return
        self.last = now
        eta = report.eta
        print(
            f"listed {report.listed}  skipped {sum(report.skipped.values())}  "
            f"{self.verb} {report.enqueued}  done {report.done}  failed {report.failed}  "
            f"{report.rate:.1f}/s" + (f"  eta {eta:.0f} s" if eta is not None else ""),
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
