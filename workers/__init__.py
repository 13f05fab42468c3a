"""The Celery app of the fleet: `celery -A workers worker -Q labels,text,faces,aggregate`."""

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger

app = Celery("rudolph")
app.config_from_object("celeryconfig")


@after_setup_logger.connect
def _rudolph_logging(logger: logging.Logger, loglevel: int | None = None, **_: Any) -> None:
    """rudolph's loggers in RUDOLPH_LOG_FORMAT, on the stream Celery logs to; Celery's own
    lines keep Celery's format."""
    from rudolph.logs import configure_rudolph

    stream = next(
        (h.stream for h in logger.handlers if isinstance(h, logging.StreamHandler)),
        sys.__stderr__,
    )
    configure_rudolph(loglevel or logging.INFO, stream)


from workers import tasks  # noqa: E402  (registers the tasks on the app)

__all__ = ["app", "tasks"]
