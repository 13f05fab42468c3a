"""Logging for the long-running commands (listen, dev, the workers): one line per event.

`configure()` picks the format from `RUDOLPH_LOG_FORMAT`: `text` (a timestamp, level,
logger and message, then the record's `extra` fields as `key=value` pairs) or `json` (one
JSON object per line, the `extra` fields as keys). `log_outcome()` writes the one line per
analysed image that the aggregate emits after saving its record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from rudolph.printable import printable, printable_json

if TYPE_CHECKING:
    from rudolph.analysis import FeatureOutcome
    from rudolph.record import Record

outcome_log = logging.getLogger("rudolph.outcome")

# Attributes every LogRecord has: whatever else a record carries came from `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# Field names whose values are never written, whoever passes them.
_SECRET = re.compile(
    r"secret|password|passwd|token|credential|access_key|authorization|auth$", re.I
)
# user:password@ in URLs.
_USERINFO = re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+@")
_CODE = re.compile(r"[A-Za-z][\w.]*")


def _redact(name: str, value: Any) -> Any:
    if _SECRET.search(name):
        return "***"
    if isinstance(value, str):
        return _USERINFO.sub("***@", value)
    if isinstance(value, Mapping):
        return {str(k): _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(name, v) for v in value]
    return value


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra` fields of a log record, secrets masked."""
    return {
        name: _redact(name, value)
        for name, value in vars(record).items()
        if name not in _STANDARD and not name.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _redact("message", record.getMessage()),
        }
        for name, value in extra_fields(record).items():
            line.setdefault(name, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return printable_json(json.dumps(line, default=str, ensure_ascii=False))


def _pairs(prefix: str, value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for name, item in value.items():
            yield from _pairs(f"{prefix}.{name}", item)
        return
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = "" if value is None else str(value)
    # Quoted when it would not read back as one value: blank, spaces, quotes, control characters.
    if text == "" or any(c in text for c in ' "=\\') or printable(text) != text:
        text = printable_json(json.dumps(text, ensure_ascii=False))
    yield f"{prefix}={text}"


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...` (nested fields as `a.b=value`).

    Keys, OCR text and other services' errors reach messages and fields: their control
    characters are escaped, so a key can neither forge a line nor act on the reader's terminal.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        shown = logging.makeLogRecord(vars(record))
        shown.message = printable(record.message)
        return super().formatMessage(shown)

    def formatException(self, ei: Any) -> str:
        # A traceback keeps its lines; what a message inside it carries does not act.
        return "\n".join(printable(line) for line in super().formatException(ei).split("\n"))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [p for name, v in extra_fields(record).items() for p in _pairs(name, v)]
        if not pairs:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the pairs
        return f"{head} {' '.join(pairs)}{sep}{tail}"


class EscapeControlCharacters(logging.Filter):
    """For handlers whose format is someone else's (Celery's): the message, whatever it
    carries (a task's result holding a key or OCR text), has its control characters escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), None
        return True


def escape_control_characters(logger: logging.Logger) -> None:
    """Every handler of `logger` escapes control characters in what it writes."""
    for handler in logger.handlers:
        if not any(isinstance(f, EscapeControlCharacters) for f in handler.filters):
            handler.addFilter(EscapeControlCharacters())


def formatter(log_format: Literal["text", "json"] | None = None) -> logging.Formatter:
    """The formatter of `log_format`, by default the one RUDOLPH_LOG_FORMAT names."""
    if log_format is None:
        from rudolph.settings import get_settings

        log_format = get_settings().log_format
    return JsonFormatter() if log_format == "json" else TextFormatter()


def _quiet_libraries() -> None:
    # botocore and urllib3 at INFO log every request: noise at fleet scale.
    for noisy in ("botocore", "urllib3", "opensearch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def configure(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Every logger of the process on `stream` (stderr) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter())
    logging.basicConfig(level=level, handlers=[handler])
    _quiet_libraries()


def configure_rudolph(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Only rudolph's loggers, in the configured format, on their own handler: for processes
    whose other logging belongs to someone else (Celery's worker)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter())
    logger = logging.getLogger("rudolph")
    logger.handlers = [handler]
    logger.setLevel(level)
    logger.propagate = False
    _quiet_libraries()


def error_code(message: str) -> str:
    """`Throttling: slow down` -> `Throttling`; a message without a code -> `Error`."""
    code = message.split(":", 1)[0].strip()
    return code if ":" in message and _CODE.fullmatch(code) else "Error"


def log_outcome(record: Record | None, outcomes: Sequence[FeatureOutcome]) -> None:
    """One line for a saved record: which image, how it ended, how long each feature took,
    on which backend, and the error code of each failed feature. Nothing when not saved."""
    if record is None:
        return
    fields: dict[str, Any] = {
        "image_id": record.image_id,
        "bucket": record.bucket,
        "key": record.key,
        "status": record.status,
        "ms": {o.feature: round(o.ms, 1) for o in outcomes},
        "backend": record.analyzer.backend if record.analyzer else None,
    }
    if record.errors:
        fields["errors"] = {feature: error_code(m) for feature, m in record.errors.items()}
    outcome_log.info("image %s", record.status, extra=fields)
