"""The OpenSearch client, authenticated as the settings say (none, basic, or SigV4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from opensearchpy import OpenSearch, RequestsHttpConnection

from rudolph.errors import ConfigurationError
from rudolph.settings import Settings


def _redacted(url: SplitResult) -> str:
    """The URL without user:password, for messages and logs."""
    netloc = url.netloc.rpartition("@")[2]
    return url._replace(netloc=netloc).geturl()


def _parse_url(raw: str) -> SplitResult:
    try:
        url = urlsplit(raw.strip())
        url.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigurationError(
            f"RUDOLPH_OPENSEARCH_URL is not a valid URL ({exc}): "
            "use http(s)://host:port, e.g. http://127.0.0.1:9200"
        ) from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigurationError(
            f"RUDOLPH_OPENSEARCH_URL={_redacted(url)!r} is not an http(s) URL with a host: "
            "use http(s)://host:port, e.g. http://127.0.0.1:9200"
        )
    return url


def client(settings: Settings) -> OpenSearch:
    """An OpenSearch client for `settings.opensearch_url`, authenticated as the settings say."""
    url = _parse_url(settings.opensearch_url)
    has_credentials = url.username is not None or url.password is not None
    options: dict[str, Any] = {
        "hosts": [_redacted(url)],
        "timeout": 10,
        "max_retries": 2,
        "retry_on_timeout": True,
    }
    if settings.opensearch_auth == "none":
        if has_credentials:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_URL carries user:password but RUDOLPH_OPENSEARCH_AUTH=none: "
                "set RUDOLPH_OPENSEARCH_AUTH=basic to use them, or remove them from the URL"
            )
    elif settings.opensearch_auth == "basic":
        if not url.username or url.password is None:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_AUTH=basic needs user:password in RUDOLPH_OPENSEARCH_URL, "
                "like https://user:password@host:9200 (percent-encode special characters)"
            )
        options["http_auth"] = (unquote(url.username), unquote(url.password))
    else:  # sigv4: whatever credentials boto3 finds (role, profile, env); none configured here
        if has_credentials:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_AUTH=sigv4 signs with AWS credentials, but "
                "RUDOLPH_OPENSEARCH_URL carries user:password: remove them from the URL"
            )
        import boto3
        from opensearchpy import AWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_AUTH=sigv4 found no AWS credentials: give the process a role, "
                "or set AWS_PROFILE (or the AWS_* credential variables)"
            )
        options["http_auth"] = AWSV4SignerAuth(credentials, settings.aws_region, "es")
        options["connection_class"] = RequestsHttpConnection
    return OpenSearch(**options)
