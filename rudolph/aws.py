"""boto3 clients for every AWS service rudolph talks to, configured from settings in one place."""

from __future__ import annotations

from functools import lru_cache
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
    max_pool_connections=20,
)


@lru_cache(maxsize=32)
def client(service: str, settings: Settings) -> Any:
    """One client per service and settings per process (clients are thread-safe and slow
    to create: ~20 ms each)."""
    endpoint = settings.aws_endpoint_url
    if service == "rekognition" and settings.rekognition_endpoint_url:
        endpoint = settings.rekognition_endpoint_url
    return boto3.session.Session().client(
        service, region_name=settings.aws_region, endpoint_url=endpoint, config=_CONFIG
    )
