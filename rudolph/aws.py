"""boto3 clients for every AWS service rudolph talks to, configured from settings in one place."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from rudolph.settings import Settings

# Our own code decides about retrying throttled analysis calls; botocore's standard mode
# still absorbs the odd connection reset.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=60,
)


def client(service: str, settings: Settings) -> Any:
    return boto3.session.Session().client(
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=_CONFIG,
    )
