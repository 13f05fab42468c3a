"""Logging for the long-running commands (listen, dev): one line per event, on stderr."""

from __future__ import annotations

import logging
import sys


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # botocore and urllib3 at INFO log every request: noise at fleet scale.
    for noisy in ("botocore", "urllib3", "opensearch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
