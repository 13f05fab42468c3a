"""What OpenSearch's failures mean: which 404s are OpenSearch's own, the one-line reason of an
error, and rudolph's errors (saying what to do) for the client's transport failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opensearchpy import (
    AuthenticationException,
    AuthorizationException,
    NotFoundError,
    TransportError,
)
from opensearchpy import ConnectionError as OpenSearchConnectionError

from rudolph.errors import ConfigurationError, IndexUnavailableError


def no_index(exc: NotFoundError) -> bool:
    """OpenSearch's own 404 for an index or alias that does not exist."""
    return bool(exc.error == "index_not_found_exception")


def opensearch_404(exc: NotFoundError) -> bool:
    """A 404 from OpenSearch itself (no such index, alias or document), not from a proxy or
    another server at the URL: those carry no OpenSearch body."""
    return isinstance(exc.info, dict) and bool({"status", "_index", "found"} & exc.info.keys())


def reason(exc: TransportError) -> str:
    """OpenSearch's one-line explanation of an error."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if not isinstance(error, dict):
        return str(exc.error)
    # A search's own reason is "all shards failed"; the shard's root cause says what.
    causes = error.get("root_cause")
    if isinstance(causes, list) and causes and isinstance(causes[0], dict):
        cause = causes[0].get("reason")
        if cause:
            return str(cause)
    return str(error.get("reason", exc.error))


@contextmanager
def as_rudolph_errors(url: str) -> Iterator[None]:
    """Turn the client's transport failures at `url` (redacted) into rudolph's errors, with
    what to do."""
    try:
        yield
    except OpenSearchConnectionError as exc:
        raise IndexUnavailableError(
            f"OpenSearch at {url} cannot be reached ({exc.error or exc.info}): "
            "start it with `rudolph dev` or set RUDOLPH_OPENSEARCH_URL"
        ) from exc
    except (AuthenticationException, AuthorizationException) as exc:
        raise ConfigurationError(
            f"OpenSearch at {url} refused the request ({exc.status_code} {exc.error}): "
            "check RUDOLPH_OPENSEARCH_AUTH and the credentials it uses"
        ) from exc
    except NotFoundError as exc:
        if opensearch_404(exc):
            raise
        raise ConfigurationError(
            f"{url} answered 404 ({exc.error or 'no body'}) where OpenSearch was "
            "expected: check that RUDOLPH_OPENSEARCH_URL is the OpenSearch endpoint"
        ) from exc
    except TransportError as exc:
        if exc.status_code in (429, 502, 503, 504):
            raise IndexUnavailableError(
                f"OpenSearch at {url} is busy or down ({exc.status_code} {exc.error}): "
                "try again later"
            ) from exc
        raise
