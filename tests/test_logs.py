"""Structured logs: one line per image outcome, as `key=value` text or as one JSON object per
line (RUDOLPH_LOG_FORMAT=json), in the worker's own log."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rudolph.analysis import FeatureOutcome
from rudolph.logs import (
    JsonFormatter,
    TextFormatter,
    error_code,
    escape_control_characters,
    log_outcome,
    outcome_log,
)
from rudolph.record import AnalyzerInfo, Record
from tests.fleet import fleet, poll
from tests.photos import encode, load


def _record() -> logging.LogRecord:
    return logging.LogRecord("outcome", logging.INFO, __file__, 1, "image %s", ("done",), None)


def test_json_formatter_renders_extra_fields_as_one_parsable_line() -> None:
    record = _record()
    record.__dict__.update(image_id="b/k", status="done", ms={"labels": 12.5}, key="a b\nc")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "image done"
    assert parsed["level"] == "INFO" and parsed["logger"] == "outcome" and parsed["time"]
    assert parsed["image_id"] == "b/k" and parsed["ms"] == {"labels": 12.5}
    assert parsed["key"] == "a b\nc"
    assert "args" not in parsed and "msg" not in parsed


def test_text_formatter_appends_key_value_pairs() -> None:
    record = _record()
    record.__dict__.update(status="done", ms={"labels": 12.5}, key="no parking.jpg")
    line = TextFormatter().format(record)
    assert line.endswith('image done status=done ms.labels=12.5 key="no parking.jpg"')


def test_credentials_are_never_written() -> None:
    record = _record()
    record.__dict__.update(
        password="hunter2",
        flower_basic_auth="rudolph:s3cret",
        url="http://user:pa55@127.0.0.1:5555/",
        nested={"aws_secret_access_key": "AKIA"},
    )
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(record)
        for secret in ("hunter2", "s3cret", "pa55", "AKIA"):
            assert secret not in line


def test_error_codes() -> None:
    assert error_code("Throttling: slow down (gave up after 7 attempts)") == "Throttling"
    assert error_code("the object is empty") == "Error"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    outcome_log.addHandler(handler)
    level = outcome_log.level
    outcome_log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        outcome_log.removeHandler(handler)
        outcome_log.setLevel(level)


def test_log_outcome_line(captured: io.StringIO) -> None:
    outcomes = [
        FeatureOutcome(feature="labels", ms=10.04, backend="local"),
        FeatureOutcome(feature="text", ms=20.0, error="Throttling: slow down"),
        FeatureOutcome(feature="faces", ms=30.0),
    ]
    record = Record(
        image_id="b/k",
        bucket="b",
        key="k",
        status="partial",
        errors={"text": "Throttling: slow down"},
        analyzer=AnalyzerInfo(backend="local"),
    )
    log_outcome(record, outcomes)
    log_outcome(None, outcomes)  # not saved: no line
    (line,) = captured.getvalue().splitlines()
    parsed = json.loads(line)
    assert parsed["image_id"] == "b/k" and parsed["bucket"] == "b" and parsed["key"] == "k"
    assert parsed["status"] == "partial" and parsed["backend"] == "local"
    assert parsed["ms"] == {"labels": 10.0, "text": 20.0, "faces": 30.0}
    assert parsed["errors"] == {"text": "Throttling"}


def test_worker_writes_one_json_outcome_line_per_image(
    moto_url: str, opensearch_url: str, redis_url: str
) -> None:
    key = "logs/chelsea.jpg"
    with fleet(moto_url, opensearch_url, redis_url, RUDOLPH_LOG_FORMAT="json") as running:
        running.upload(key, encode(load("chelsea"), "JPEG"))
        record = running.record(key)
        log = running.group.log_dir / "worker.log"

        def outcome_lines() -> list[dict[str, object]]:
            lines = []
            for line in log.read_text().splitlines():
                if line.startswith("{") and '"image_id"' in line:
                    parsed = json.loads(line)
                    if parsed["image_id"] == record.image_id:
                        lines.append(parsed)
            return lines

        poll(outcome_lines, 10, "the outcome line in the worker log")
        running.idle()
        (line,) = outcome_lines()
        # Celery's own lines are still there, in Celery's format.
        assert " ready." in log.read_text()
    assert line["logger"] == "rudolph.outcome"
    assert (line["bucket"], line["key"], line["status"]) == (running.settings.bucket, key, "done")
    assert line["backend"] == "local"
    ms = line["ms"]
    assert isinstance(ms, dict) and set(ms) == {"labels", "text", "faces"}
    assert all(isinstance(v, float) and v > 0 for v in ms.values())
    assert "errors" not in line


HOSTILE_KEY = (
    "cr/x\r2026-12-01 00:00:00,000 INFO rudolph: forged \x1b]0;TITLE\x1b\\ \x9b5m \u202e.jpg"
)


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_a_key_can_neither_forge_a_line_nor_reach_the_terminal(
    formatter: logging.Formatter,
) -> None:
    record = logging.LogRecord(
        "rudolph.x", logging.INFO, __file__, 1, "%s refused", (HOSTILE_KEY,), None
    )
    record.__dict__.update(key=HOSTILE_KEY)
    line = formatter.format(record)
    assert len(line.splitlines()) == 1
    assert not any(c in line for c in "\r\x1b\x9b\u202e")
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["key"] == HOSTILE_KEY  # escaped, and still the same value
    else:
        assert "refused" in line and "\\x1b]0;TITLE" in line


def test_celery_s_own_lines_are_escaped_too() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("celery.app.trace.test")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        escape_control_characters(logger)
        logger.warning("Task succeeded: %s", "a\x1b[5mb\rc")  # as Celery's saferepr leaves it
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "Task succeeded: a\\x1b[5mb\\x0dc\n"
