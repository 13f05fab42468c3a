from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import moto_server, opensearch_server, redis_server

# Tests never reach real AWS: dummy credentials, and every client gets an explicit endpoint.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# One onnxruntime thread per process, as the dev stack and both deployments run: the same
# findings, without threads spinning for each other on a shared machine (a fifth less CPU).
os.environ.setdefault("RUDOLPH_THREADS", "1")

# Real AWS responses, copied from the project's shared/fixtures (see fixtures/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: Fixtures that start a real server (moto, OpenSearch, Redis; a fleet of workers uses them): a test
#: using one, directly or through another fixture, is marked `servers`.
SERVER_FIXTURES = frozenset({"moto_url", "opensearch_url", "redis_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `servers` every test that needs a real server, by the fixtures it uses (tests that
    start one themselves carry the marker in their module), so `make test-fast` (`pytest -m
    "not servers"`) runs the rest."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    with opensearch_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis of the tests' own, so they never touch a Redis someone else uses."""
    with redis_server() as url:
        yield url
