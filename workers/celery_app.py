"""The fleet's Celery app, configured from celeryconfig.py. It imports no task: a worker loads
them (`include`), and producers publish by task name (rudolph.vocabulary)."""

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

app = Celery("rudolph", include=["workers.tasks"])
app.config_from_object("celeryconfig")


@after_setup_logger.connect
def _rudolph_logging(logger: logging.Logger, loglevel: int | None = None, **_: Any) -> None:
    """rudolph's loggers in RUDOLPH_LOG_FORMAT, on the stream Celery logs to; Celery's own
    lines keep Celery's format, with control characters escaped."""
    from rudolph.logs import configure_rudolph, escape_control_characters

    escape_control_characters(logger)
    stream = next(
        (h.stream for h in logger.handlers if isinstance(h, logging.StreamHandler)),
        sys.__stderr__,
    )
    configure_rudolph(loglevel or logging.INFO, stream)


@after_setup_task_logger.connect
def _escaped_task_logging(logger: logging.Logger, **_: Any) -> None:
    """Celery's task lines (a task's result is in them) with control characters escaped."""
    from rudolph.logs import escape_control_characters

    escape_control_characters(logger)
