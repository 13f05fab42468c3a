"""Real servers for integration tests: started on 127.0.0.1 on a free port, stopped by PID.

The same starters as `rudolph dev` (rudolph/devstack.py), each in a context manager.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rudolph import devstack
from rudolph.devstack import free_port

__all__ = [
    "free_port",
    "moto_server",
    "opensearch_server",
    "processes",
    "reachable_by_server",
    "redis_server",
]


def reachable_by_server(path: Path) -> Path:
    """Let the unprivileged user that runs OpenSearch (as root: nobody) enter the test's own
    temporary folders above `path` (pytest makes them 0700). Only folders under the system's
    temporary directory are touched."""
    temp = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() == 0:
        for folder in [path.resolve(), *path.resolve().parents]:
            if folder == temp or temp not in folder.parents:
                break
            if folder.exists():
                folder.chmod(folder.stat().st_mode | 0o001)
    return path


@contextmanager
def processes() -> Iterator[devstack.Processes]:
    """A group of child processes whose output goes to a temporary folder, all stopped after."""
    with tempfile.TemporaryDirectory(prefix="rudolph-test-") as scratch:
        group = devstack.Processes(Path(scratch) / "logs")
        try:
            yield group
        finally:
            group.stop()


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode (S3, SQS, DynamoDB, Rekognition...); yields its URL."""
    with processes() as group:
        yield devstack.start_moto(group, free_port())


@contextmanager
def opensearch_server(data_dir: Path | None = None) -> Iterator[str]:
    """OpenSearch 2.5.0 (noida-db with RUDOLPH_DEV_SEARCH=noida); yields its URL once the
    cluster is healthy. Stopped by PID (its process group) afterwards.

    Without `data_dir` its data lives in a temporary folder removed afterwards; with one, the
    data is kept there across restarts.
    """
    # The folder outlives the node: the node is stopped first, then its data removed (the
    # other order removed files a still-running node was writing, and failed the teardown).
    with tempfile.TemporaryDirectory(prefix="opensearch-") as scratch, processes() as group:
        base = reachable_by_server(data_dir or Path(scratch))
        yield devstack.start_opensearch(group, free_port(), base)


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (nothing persisted); yields its URL (database 0)."""
    with processes() as group:
        yield devstack.start_redis(group, free_port())
