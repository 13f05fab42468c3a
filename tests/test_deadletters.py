"""The dead-letter queue (`rudolph dlq`) against moto's server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from rudolph import aws
from rudolph.cli import main
from rudolph.deadletters import PARSED_FINE, DeadLetterQueue, diagnose
from rudolph.errors import ConfigurationError
from rudolph.provision import MAX_RECEIVES, ensure_queues
from rudolph.settings import Settings, get_settings
from tests.s3events import s3_event

MALFORMED = "this is not json"
S3_EVENT = s3_event("reindeer-dropzone", "cats/tabby.jpg", event_time="2024-05-01T12:00:00.000Z",
                    size=1234, eTag="abc")  # fmt: skip


@pytest.fixture
def settings(moto_url: str) -> Settings:
    settings = Settings(aws_endpoint_url=moto_url, queue_name=f"t-{uuid.uuid4().hex[:8]}")
    ensure_queues(aws.client("sqs", settings), settings)
    return settings


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`rudolph` reading these settings from its environment, on a wide terminal."""
    monkeypatch.setenv("RUDOLPH_AWS_ENDPOINT_URL", str(settings.aws_endpoint_url))
    monkeypatch.setenv("RUDOLPH_QUEUE_NAME", settings.queue_name)
    monkeypatch.setenv("COLUMNS", "400")  # rich tables: no wrapping inside the reasons
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _url(settings: Settings, name: str) -> str:
    return str(aws.client("sqs", settings).get_queue_url(QueueName=name)["QueueUrl"])


def _put(settings: Settings, queue: str, body: str, **extra: Any) -> str:
    sqs = aws.client("sqs", settings)
    return str(
        sqs.send_message(QueueUrl=_url(settings, queue), MessageBody=body, **extra)["MessageId"]
    )


def _count(settings: Settings, queue: str) -> int:
    attributes = aws.client("sqs", settings).get_queue_attributes(
        QueueUrl=_url(settings, queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _drain(settings: Settings, queue: str, expected: int) -> list[dict[str, Any]]:
    """Receive (and delete) `expected` messages of a queue, within a bounded time."""
    sqs = aws.client("sqs", settings)
    url = _url(settings, queue)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(found) < expected:
        assert time.monotonic() < deadline, f"only {len(found)} of {expected} messages arrived"
        response = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


@pytest.fixture
def dead(settings: Settings) -> dict[str, str]:
    """A malformed message and a valid S3 event, straight into the dead-letter queue."""
    dlq = f"{settings.queue_name}-dlq"
    return {"malformed": _put(settings, dlq, MALFORMED), "valid": _put(settings, dlq, S3_EVENT)}


# -- the reasons


def test_the_reason_comes_from_the_listeners_parser() -> None:
    reason, malformed = diagnose(MALFORMED)
    assert malformed and reason.startswith("message body is not JSON")
    reason, malformed = diagnose('{"hello": 1}')
    assert malformed and reason.startswith("the message is not an S3 event notification")
    assert diagnose(S3_EVENT) == (PARSED_FINE, False)


# -- listing


def test_listing_shows_both_with_their_reasons_and_loses_nothing(
    settings: Settings, dead: dict[str, str]
) -> None:
    queue = DeadLetterQueue(settings)
    letters = {letter.message_id: letter for letter in queue.peek()}
    assert set(letters) == set(dead.values())
    bad, good = letters[dead["malformed"]], letters[dead["valid"]]
    assert bad.malformed and bad.reason.startswith("message body is not JSON")
    assert bad.preview == MALFORMED and bad.body == MALFORMED
    assert not good.malformed and good.reason == PARSED_FINE
    assert good.preview.startswith('{"Records": [{"eventVersion": "2.1"')
    assert len(good.preview) <= 80 and good.preview.endswith("…")
    for letter in (bad, good):
        assert letter.sent_at and letter.sent_at.endswith("+00:00")
        assert letter.receive_count == 1  # this very look
    # Still there, visible at once: a second look sees both again.
    assert _count(settings, queue.name) == 2
    again = queue.peek()
    assert {letter.message_id for letter in again} == set(dead.values())
    assert all(letter.receive_count == 2 for letter in again)


def test_listing_stops_at_the_limit(settings: Settings) -> None:
    dlq = f"{settings.queue_name}-dlq"
    for n in range(13):
        _put(settings, dlq, f"junk {n}")
    queue = DeadLetterQueue(settings)
    assert len(queue.peek(limit=4)) == 4
    assert len(queue.peek(limit=None)) == 13
    assert _count(settings, dlq) == 13


def test_a_message_the_listener_keeps_failing_on_ends_there(settings: Settings) -> None:
    """The real path: MAX_RECEIVES receives without a delete, and SQS moves it."""
    sqs = aws.client("sqs", settings)
    url = _url(settings, settings.queue_name)
    _put(settings, settings.queue_name, MALFORMED)
    deadline = time.monotonic() + 20
    while _count(settings, f"{settings.queue_name}-dlq") == 0:
        assert time.monotonic() < deadline, "SQS never moved it to the dead-letter queue"
        sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=1)
    (letter,) = DeadLetterQueue(settings).peek()
    assert letter.malformed and letter.body == MALFORMED
    assert letter.receive_count is not None and letter.receive_count >= 1


def test_a_missing_queue_says_to_run_init(moto_url: str) -> None:
    settings = Settings(aws_endpoint_url=moto_url, queue_name=f"never-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError, match="run `rudolph init`"):
        DeadLetterQueue(settings).peek()


# -- redriving


def test_redrive_moves_everything_back_and_empties_the_dlq(
    settings: Settings, dead: dict[str, str]
) -> None:
    queue = DeadLetterQueue(settings)
    report = queue.redrive()
    assert report.moved == 2 and not report.failed
    assert report.still_malformed == [dead["malformed"]]
    assert _count(settings, queue.name) == 0
    bodies = sorted(m["Body"] for m in _drain(settings, settings.queue_name, 2))
    assert bodies == sorted([MALFORMED, S3_EVENT])


def test_redrive_keeps_message_attributes_and_honours_the_limit(settings: Settings) -> None:
    dlq = f"{settings.queue_name}-dlq"
    attributes = {"origin": {"DataType": "String", "StringValue": "test"}}
    for _ in range(3):
        _put(settings, dlq, S3_EVENT, MessageAttributes=attributes)
    report = DeadLetterQueue(settings).redrive(limit=2)
    assert report.moved == 2 and report.still_malformed == []
    assert _count(settings, dlq) == 1
    moved = _drain(settings, settings.queue_name, 2)
    assert all(m["MessageAttributes"]["origin"]["StringValue"] == "test" for m in moved)


def test_a_send_that_fails_leaves_the_message_in_the_dlq(
    settings: Settings, dead: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    queue = DeadLetterQueue(settings)

    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "SendMessage")

    monkeypatch.setattr(queue.sqs, "send_message", refuse)
    report = queue.redrive()
    assert report.moved == 0
    assert sorted(i for i, _ in report.failed) == sorted(dead.values())
    assert all("not sent" in error for _, error in report.failed)
    # Nothing lost, and visible again at once.
    assert {letter.message_id for letter in queue.peek()} == set(dead.values())


# -- the command


@pytest.mark.usefixtures("cli_env")
def test_dlq_command_lists_with_reasons(settings: Settings, dead: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["dlq"])
    assert result.exit_code == 0, result.output
    for message_id in dead.values():
        assert message_id in result.stdout
    assert "message body is not JSON" in result.stdout
    assert PARSED_FINE in result.stdout
    assert f"2 message(s) in {settings.queue_name}-dlq (1 malformed)" in result.stdout

    result = CliRunner().invoke(main, ["dlq", "--json", "--limit", "1"])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    item = json.loads(line)
    assert item["message_id"] in dead.values()
    assert set(item) >= {"sent_at", "receive_count", "preview", "reason", "malformed", "body"}
    assert _count(settings, f"{settings.queue_name}-dlq") == 2


@pytest.mark.usefixtures("cli_env")
def test_dlq_redrive_yes_moves_them_and_warns_about_the_malformed(
    settings: Settings, dead: dict[str, str]
) -> None:
    result = CliRunner().invoke(main, ["dlq", "--redrive", "--yes"])
    assert result.exit_code == 0, result.output
    dlq = f"{settings.queue_name}-dlq"
    assert f"2 message(s) moved from {dlq} to {settings.queue_name}" in result.stdout
    assert "1 of them are still malformed" in result.stderr
    assert dead["malformed"] in result.stderr
    assert f"after {MAX_RECEIVES} receives" in result.stderr
    assert _count(settings, dlq) == 0
    assert _count(settings, settings.queue_name) == 2

    result = CliRunner().invoke(main, ["dlq"])
    assert result.exit_code == 0 and f"{dlq} is empty" in result.stdout


@pytest.mark.usefixtures("cli_env")
def test_dlq_redrive_asks_first(settings: Settings, dead: dict[str, str]) -> None:
    dlq = f"{settings.queue_name}-dlq"
    result = CliRunner().invoke(main, ["dlq", "--redrive"], input="n\n")
    assert result.exit_code == 1  # click's Abort
    assert f"move about 2 message(s) from {dlq} to {settings.queue_name}?" in result.output
    assert _count(settings, dlq) == 2 and _count(settings, settings.queue_name) == 0

    result = CliRunner().invoke(main, ["dlq", "--redrive"], input="y\n")
    assert result.exit_code == 0, result.output
    assert _count(settings, dlq) == 0 and _count(settings, settings.queue_name) == 2


def test_dlq_command_without_queues_says_what_to_do(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUDOLPH_AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("RUDOLPH_QUEUE_NAME", f"never-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["dlq"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "does not exist: run `rudolph init`" in result.stderr
