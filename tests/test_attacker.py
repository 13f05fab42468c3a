"""The attacker: someone who may upload to the bucket, and nothing else.

Hostile keys (markup, terminal escapes, carriage returns, bidi overrides, 1,000 bytes, `..`
segments), hostile images (PNG bombs just under the pixel limit: RGBA, 16-bit, palette) and
hostile cursors and queries go through the real stack: moto's S3 and SQS, `rudolph listen`,
a `celery worker`, DynamoDB, the index, `rudolph web`, the `rudolph` CLI. The operator's
terminal, the logs, the web page and the API must stay correct, and no pool process may grow
past 1.5 GB.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rudolph.printable import printable
from tests.bombs import GRAY, PALETTE, RGBA, png_bomb
from tests.fleet import RUDOLPH, Fleet, fleet, poll
from tests.photos import encode, load
from tests.test_web import web_server

MARKUP = "mk/[red]R[/red][/:]x.jpg"
ESCAPES = "esc/\x1b]0;PWNED\x1b\\\x1b[5mblink\x1b[0m.jpg"
FORGED_LINE = "cr/x\r2026-12-01 00:00:00,000 INFO rudolph.outcome: image done key=fake.jpg"
BIDI = "bidi/cat\u202egnp.exe.jpg"  # a right-to-left override: shows as "catgpj.exe.png"
LONG = "long/" + "k" * 991 + ".jpg"  # 1,000 bytes: S3 allows 1,024
DOTS = "dots/../up/./cat.jpg"
KEYS = (MARKUP, ESCAPES, FORGED_LINE, BIDI, LONG, DOTS)

# The worst images the door admits (under 250 megapixels), made as streams of ~1 MB.
RGBA_OVER_BUDGET = "bombs/rgba-15800.png"  # 1 GB decoded: over the 512 MB budget, refused
RGBA_UNDER_BUDGET = "bombs/rgba-11500.png"  # 504 MB decoded: admitted
SIXTEEN_BIT = "bombs/gray16-12000.png"
PALETTE_ALPHA = "bombs/palette-15800.png"
LIMIT_RSS = 1.5 * 2**30


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("bombs")
    made = {
        RGBA_OVER_BUDGET: png_bomb(folder / "a.png", 15800, 15800, RGBA),
        RGBA_UNDER_BUDGET: png_bomb(folder / "b.png", 11500, 11500, RGBA),
        SIXTEEN_BIT: png_bomb(folder / "c.png", 12000, 12000, GRAY, depth=16),
        PALETTE_ALPHA: png_bomb(folder / "d.png", 15800, 15800, PALETTE),
    }
    return {key: path.read_bytes() for key, path in made.items()}


@pytest.fixture(scope="module")
def attacked(
    moto_url: str, opensearch_url: str, redis_url: str, bombs: dict[str, bytes]
) -> Iterator[Fleet]:
    with fleet(moto_url, opensearch_url, redis_url) as running:
        cat = encode(load("chelsea"), "JPEG")
        for key in KEYS:
            running.upload(key, cat, Metadata={"content-id": "\x1b[31m[bold]red[/bold]"})
        for key, body in bombs.items():
            running.upload(key, body, ContentType="image/png")
        for key in (*KEYS, *bombs):
            running.record(key, timeout=240)
        yield running


def _cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUDOLPH, *args],
        env={**os.environ, **fleet.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _no_control_characters(text: str) -> None:
    """Nothing a terminal acts on: no ESC, no CR, no C1 control, no bidi override."""
    raw = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
    found = [line for line in text.split("\n") if raw.search(line)]
    assert not found, f"raw control characters reached the output: {found[:3]!r}"


# -- the operator's terminal ----------------------------------------------------------------


def test_search_prints_hostile_keys_as_text_with_escapes_visible(attacked: Fleet) -> None:
    done = _cli(attacked, "search", "cat", "--limit", "50")
    assert done.returncode == 0, done.stderr
    _no_control_characters(done.stdout + done.stderr)
    assert "MarkupError" not in done.stderr
    assert f"s3://{attacked.settings.bucket}/{MARKUP}" in done.stdout  # shown, not parsed
    assert printable(ESCAPES) in done.stdout  # \x1b]0;PWNED... made visible
    assert printable(FORGED_LINE) in done.stdout
    assert LONG in done.stdout  # one line, whatever the width: never cut in two


@pytest.mark.parametrize("key", KEYS)
def test_show_prints_each_hostile_record_as_text(attacked: Fleet, key: str) -> None:
    done = _cli(attacked, "show", f"s3://{attacked.settings.bucket}/{key}")
    assert done.returncode == 0, done.stderr
    _no_control_characters(done.stdout)
    assert printable(key) in done.stdout
    as_json = json.loads(_cli(attacked, "show", attacked.image_id(key), "--json").stdout)
    assert as_json["key"] == key  # the record itself keeps the key exactly


def test_a_query_that_starts_with_a_minus_is_a_query(attacked: Fleet) -> None:
    done = _cli(attacked, "search", "-label:cat", "--json")
    assert done.returncode == 0, done.stderr
    keys = {hit["key"] for hit in json.loads(done.stdout)["hits"]}
    assert set(KEYS).isdisjoint(keys) and keys  # every cat excluded; the bombs remain


# -- the logs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["worker", "listener"])
def test_logs_keep_one_line_per_event_and_no_escape_reaches_them(
    attacked: Fleet, name: str
) -> None:
    log = (attacked.group.log_dir / f"{name}.log").read_text()
    _no_control_characters(log)
    # Made visible: as Python escapes in Celery's and the listener's lines, as JSON escapes
    # in the worker's outcome lines.
    assert printable(ESCAPES) in log or json.dumps(ESCAPES)[1:-1] in log
    # The forged line never starts a line of its own.
    assert not any(line.startswith("2026-12-01 00:00:00,000") for line in log.splitlines())


def test_the_outcome_line_names_the_hostile_key_escaped(attacked: Fleet) -> None:
    log = (attacked.group.log_dir / "worker.log").read_text()
    outcome = [line for line in log.splitlines() if "rudolph.outcome" in line and "PWNED" in line]
    assert outcome and "\\u001b]0;PWNED" in outcome[0]


# -- hostile images -------------------------------------------------------------------------


def test_image_bombs_cost_a_pool_process_under_1_5_gb(attacked: Fleet) -> None:
    for key in (RGBA_UNDER_BUDGET, SIXTEEN_BIT, PALETTE_ALPHA):
        record = attacked.record(key)
        assert record.status == "done", (key, record.errors)
        assert max(record.width or 0, record.height or 0) >= 11500
    refused = attacked.record(RGBA_OVER_BUDGET)
    assert refused.status == "failed"
    assert "over the 512 MB budget (RUDOLPH_DECODE_BUDGET_MB)" in refused.errors["labels"]
    peaks = {}
    for pid in attacked.pool_children():
        status = Path(f"/proc/{pid}/status").read_text()
        peaks[pid] = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    print("pool peak RSS:", {pid: f"{peak / 2**20:.0f} MB" for pid, peak in peaks.items()})
    assert peaks and max(peaks.values()) < LIMIT_RSS, {
        p: f"{b / 2**20:.0f} MB" for p, b in peaks.items()
    }


# -- the web page and the API ---------------------------------------------------------------


@pytest.fixture(scope="module")
def web(attacked: Fleet) -> Iterator[str]:
    with web_server(attacked.env) as url:
        yield url


def _get(url: str) -> tuple[int, bytes, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def _cursor(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        (
            "score",
            base64.urlsafe_b64encode(
                b'{"sort":"score","after":[Infinity,"' + b"a" * 64 + b'"]}'
            ).decode(),
        ),
        (
            "score",
            base64.urlsafe_b64encode(
                b'{"sort":"score","after":[NaN,"' + b"a" * 64 + b'"]}'
            ).decode(),
        ),
        ("newest", _cursor({"sort": "newest", "after": ["yesterday", "a" * 64]})),
        ("newest", _cursor({"sort": "newest", "after": [2**70, "a" * 64]})),
        ("oldest", _cursor({"sort": "oldest", "after": [1.5, "a" * 64]})),
        ("score", _cursor({"sort": "score", "after": [1.0, "../../etc"]})),
        ("score", _cursor({"sort": "score", "after": [True, "a" * 64]})),
        ("score", _cursor({"sort": "score", "after": [1.0, "a" * 64], "extra": 1})),
        ("score", _cursor({"sort": "score", "after": [[[[[1]]]], "a" * 64]})),
        ("score", "A" * 5000),
        ("score", "%%%not base64%%%"),
    ],
)
def test_a_forged_cursor_is_a_400_and_exit_2_never_a_500(
    attacked: Fleet, web: str, sort: str, cursor: str
) -> None:
    query = urllib.parse.urlencode({"q": "cat", "sort": sort, "after": cursor})
    status, body, _ = _get(f"{web}/api/search?{query}")
    assert status == 400, body
    assert "start again without it" in json.loads(body)["detail"]
    page_status, _, _ = _get(f"{web}/?{query}")
    assert page_status == 400
    done = _cli(attacked, "search", "cat", "--sort", sort, "--after", cursor)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "start again without it" in done.stderr


@pytest.mark.parametrize(
    "query", ["faces>=99999999999999999999999", "confidence>=1e999", "-" * 300, "key:" + "\x00" * 5]
)
def test_hostile_queries_are_answers_or_400s(web: str, query: str) -> None:
    status, body, _ = _get(f"{web}/api/search?" + urllib.parse.urlencode({"q": query}))
    assert status in (200, 400), body


def test_api_and_page_carry_hostile_keys_as_data(web: str, attacked: Fleet) -> None:
    status, body, _ = _get(f"{web}/api/search?q=cat&limit=50")
    assert status == 200
    keys = {hit["key"] for hit in json.loads(body)["hits"]}
    assert set(KEYS) <= keys
    status, page, _ = _get(f"{web}/?q=cat&limit=50")
    assert status == 200
    assert b"[red]R[/red][/:]" in page and b"\x1b" not in page


def test_a_key_with_dot_segments_is_served_whole(web: str, attacked: Fleet) -> None:
    status, body, _ = _get(f"{web}/api/images/{attacked.image_id(DOTS)}")
    assert status == 200
    url = json.loads(body)["url"]
    # A presigned URL of dots/../up/./cat.jpg would reach S3 as up/cat.jpg: served from here.
    assert url == f"/api/images/{attacked.image_id(DOTS)}/original"
    status, image, headers = _get(web + url)
    assert status == 200 and image == encode(load("chelsea"), "JPEG")
    assert any("sandbox" in policy for policy in headers.get_all("content-security-policy"))
    _, cat, _ = _get(f"{web}/api/images/{attacked.image_id(MARKUP)}")
    assert json.loads(cat)["url"].startswith("http")  # ordinary keys stay presigned


def test_the_fleet_is_whole_after_the_attack(attacked: Fleet) -> None:
    attacked.idle()
    assert poll(lambda: not attacked.group.dead(), 5, "every process alive")
