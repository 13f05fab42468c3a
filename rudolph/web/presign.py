"""Presigned S3 GET URLs: the browser fetches images straight from S3 without credentials."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from rudolph.buckets import admitted
from rudolph.errors import ConfigurationError
from rudolph.settings import Settings


def browser_keeps(key: str) -> bool:
    """Whether a browser requests a URL of this key as it is written: URL parsing drops `.`
    and folds `..` path segments, so `a/../b.jpg` would be fetched (and signed) as `b.jpg`."""
    return not any(segment in (".", "..") for segment in key.split("/"))


class Presigner:
    """Signs GET URLs locally (no request to S3) with the process's AWS credentials."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        # Not aws.client's: presigning needs SigV4 said explicitly (botocore would sign
        # with SigV2, which newer regions refuse, for a client with a custom endpoint).
        self.client = client or boto3.session.Session().client(
            "s3",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=Config(signature_version="s3v4"),
        )
        #: Seconds a URL stays valid (RUDOLPH_WEB_URL_EXPIRES).
        self.expires = settings.web_url_expires
        #: Only objects of the watched buckets (RUDOLPH_BUCKETS, within its filters) are signed.
        self.watched = settings.buckets

    def url(self, bucket: str | None, key: str | None, version_id: str | None = None) -> str | None:
        """A URL that GETs the object for `expires` seconds; None for a record without one,
        or of an object RUDOLPH_BUCKETS does not (or no longer) watch."""
        if not bucket or not key or not admitted(self.watched, bucket, key):
            return None
        params = {"Bucket": bucket, "Key": key}
        if version_id and version_id != "null":  # "null": the object of an unversioned bucket
            params["VersionId"] = version_id
        try:
            url: str = self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=self.expires
            )
        except BotoCoreError as exc:  # no credentials, bad region...: nothing to sign with
            raise ConfigurationError(
                f"cannot sign S3 URLs ({exc}): give `rudolph web` AWS credentials that may "
                "s3:GetObject on the bucket (a role, AWS_PROFILE), or `source .rudolph/dev.env`"
            ) from exc
        return url
