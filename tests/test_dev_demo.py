"""`rudolph dev --demo` as a person runs it (what `make demo` does): the sample photos go
through S3 -> SQS -> listener -> worker -> DynamoDB + OpenSearch, the results and two searches
are printed, another shell can search, and Ctrl-C leaves no process behind; started again,
the stack finds its photos, records and index (after a crash: the index rebuilt)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rudolph.demo import sample_photos
from rudolph.devstack import port_open
from tests.fleet import RUDOLPH, poll
from tests.servers import reachable_by_server


def _env_file(path: Path) -> dict[str, str]:
    lines = [line.removeprefix("export ") for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _dev(state: Path, output: Path, redis_url: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CELERY_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/9"}
    with open(output, "wb") as out:
        # A relative state folder, as `make demo`'s default `.rudolph` is.
        return subprocess.Popen(
            [RUDOLPH, "dev", *extra, "--state-dir", state.name],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=state.parent,
        )


def _running(dev: subprocess.Popen[bytes], output: Path, what: str) -> str:
    poll(lambda: dev.poll() is None and "Ctrl-C stops" in output.read_text(), 300, what)
    return output.read_text()


def _search(state: Path, query: str) -> list[str]:
    found = subprocess.run(
        [RUDOLPH, "search", query, "--json"],
        env={**os.environ, **_env_file(state / "dev.env")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [hit["key"] for hit in json.loads(found.stdout)["hits"]]


def _stopped(dev: subprocess.Popen[bytes], output: Path, state: Path) -> None:
    """Ctrl-C, then: exit status 0, no server listening, no process left."""
    dev_env = _env_file(state / "dev.env")
    dev.send_signal(signal.SIGINT)
    # The fleet, then the services, get 20 s each to stop before their groups are killed, and
    # the state is saved between: a loaded machine adds much more.
    try:
        dev.wait(300)
    except subprocess.TimeoutExpired:
        tail = output.read_text()[-3000:]
        raise AssertionError(f"not stopped 300 s after Ctrl-C:\n{tail}") from None
    assert dev.returncode == 0, output.read_text()[-2000:]
    ports = [
        int(dev_env[name].rsplit(":", 1)[1].split("/")[0])
        for name in ("RUDOLPH_AWS_ENDPOINT_URL", "RUDOLPH_OPENSEARCH_URL")
    ]
    assert not any(port_open(port) for port in ports), "servers still listening after Ctrl-C"
    left = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True)
    assert left.stdout == "", f"processes left behind: {left.stdout}"


@pytest.fixture
def state() -> Iterator[Path]:
    """The stack's state folder, outside pytest's own: a concurrent pytest run makes that 0700
    again, and OpenSearch (as nobody, when we are root) must enter it on every start."""
    with tempfile.TemporaryDirectory(prefix="rudolph-dev-") as scratch:
        yield reachable_by_server(Path(scratch)) / "state"


def test_dev_demo_end_to_end(tmp_path: Path, state: Path, redis_url: str) -> None:
    output = tmp_path / "demo.out"
    demo = _dev(state, output, redis_url, "--demo")
    try:
        _running(demo, output, "the demo finishing its uploads")
        text = output.read_text()
        for photo in sample_photos():
            assert f"samples/{photo.name}" in text
        searches = text.split("rudolph search 'cat'")[1]
        assert "samples/cat.jpg" in searches.split("rudolph search")[0]
        assert "samples/no parking.jpg" in text.split("rudolph search 'no parking'")[1]
        # Where the Flower password is: the state directory asked for, not the default one.
        assert f"password in {Path(state.name, 'dev.env')}" in text
        # The demo turns face identity on, and says so.
        assert "RUDOLPH_PEOPLE=on for the demo" in text

        # Another shell: `source .rudolph/dev.env && rudolph search cat --json`.
        dev_env = _env_file(state / "dev.env")
        found = subprocess.run(
            [RUDOLPH, "search", "cat", "--json"],
            env={**os.environ, **dev_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(found.stdout)["hits"][0]["key"] == "samples/cat.jpg"

        # ... and sees the faces' identity embeddings the demo's workers computed.
        assert dev_env["RUDOLPH_PEOPLE"] == "on"
        bucket = dev_env.get("RUDOLPH_BUCKET", "reindeer-dropzone")
        shown = subprocess.run(
            [RUDOLPH, "show", f"s3://{bucket}/samples/grace hopper.jpg", "--json"],
            env={**os.environ, **dev_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (face,) = json.loads(shown.stdout)["faces"]
        assert len(face["embedding"]) == 344
        # The search engine is real OpenSearch, on 127.0.0.1, named by `rudolph status`.
        search_url = dev_env["RUDOLPH_OPENSEARCH_URL"]
        assert search_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(search_url, timeout=5) as response:
            assert json.loads(response.read())["version"]["distribution"] == "opensearch"
        assert "opensearch 2.5.0" in text

        # Flower answers, behind the basic auth written to dev.env.
        assert _status(dev_env["FLOWER_URL"]) == 401
        assert _status(dev_env["FLOWER_URL"], dev_env["FLOWER_BASIC_AUTH"]) == 200
    finally:
        _stopped(demo, output, state)
    # Ctrl-C saved the buckets and the table beside the index's data.
    assert f"saved {len(sample_photos())} objects in 1 buckets" in output.read_text()

    # Started again: the photos, their records and the index are all still there.
    again = tmp_path / "again.out"
    dev = _dev(state, again, redis_url)
    try:
        text = _running(dev, again, "the stack starting again on its saved state")
        assert f"loaded the saved state: {len(sample_photos())} objects" in text
        assert "index kept" in text
        assert _search(state, "cat")[0] == "samples/cat.jpg"
    finally:
        # A crash: no chance to save (its servers die with it).
        dev.send_signal(signal.SIGKILL)
        dev.wait(30)
    poll(
        lambda: subprocess.run(["pgrep", "-f", str(state)], capture_output=True).returncode,
        120,
        "the killed stack's processes exiting",
    )

    # After a crash the last saved state is loaded and the index rebuilt from its table.
    third = tmp_path / "third.out"
    dev = _dev(state, third, redis_url)
    try:
        text = _running(dev, third, "the stack starting after a crash")
        assert "index rebuilt from the table" in text
        assert _search(state, "cat")[0] == "samples/cat.jpg"
    finally:
        _stopped(dev, third, state)
