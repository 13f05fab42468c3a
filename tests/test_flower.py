"""Flower watches a real fleet behind basic auth: the UI, its HTTP API (workers, the tasks of
a run) and its Prometheus metrics answer only with the password."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from rudolph.devstack import BIN, HOST, free_port
from rudolph.vocabulary import FEATURES, feature_task
from tests.fleet import fleet, poll
from tests.photos import encode, load

# The last feature of an image aggregates it in its own task (rudolph.joins).
TASKS = {feature_task(feature) for feature in FEATURES}


def _get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def test_flower_watches_the_fleet_behind_basic_auth(
    moto_url: str, opensearch_url: str, redis_url: str
) -> None:
    auth = f"user:{secrets.token_urlsafe(12)}"
    port = free_port()
    base = f"http://{HOST}:{port}"
    with fleet(moto_url, opensearch_url, redis_url) as running:
        argv = [str(BIN / "celery"), "-A", "workers", "flower", f"--address={HOST}"]
        argv += [f"--port={port}", f"--basic-auth={auth}"]
        # The API is open only with authentication, never by this variable.
        running.group.start("flower", argv, {**running.env, "FLOWER_UNAUTHENTICATED_API": ""})
        poll(lambda: _get(base + "/healthcheck")[0] == 200, 30, "flower answering")

        for path in ("/", "/api/workers", "/api/tasks"):
            assert _get(base + path)[0] == 401, path
            assert _get(base + path, "user:wrong")[0] == 401, path
        assert _get(base + "/", auth)[0] == 200

        keys = ["flower/chelsea.jpg", "flower/coffee.png"]
        running.upload(keys[0], encode(load("chelsea"), "JPEG"))
        running.upload(keys[1], encode(load("coffee"), "PNG"))
        for key in keys:
            assert running.record(key).status == "done"

        worker = f"worker-{running.settings.table}@"
        status, body = _get(base + "/api/workers?refresh=1", auth)
        assert status == 200, body
        assert any(name.startswith(worker) for name in json.loads(body)), body

        def run_tasks() -> dict[str, Any] | None:
            status, body = _get(base + "/api/tasks?state=SUCCESS", auth)
            assert status == 200, body
            tasks: dict[str, Any] = json.loads(body)
            ours = [t for t in tasks.values() if str(t.get("worker", "")).startswith(worker)]
            done = {t["name"] for t in ours if t["state"] == "SUCCESS"}
            return tasks if done >= TASKS and len(ours) >= 2 * len(TASKS) else None

        tasks = poll(run_tasks, 15, "flower seeing the run's tasks")
        for key in keys:  # every feature of each image, its arguments shown
            assert {t["name"] for t in tasks.values() if key in str(t.get("args"))} >= TASKS, key

        status, body = _get(base + "/metrics", auth)
        assert status == 200
        assert b"flower_events_total" in body
