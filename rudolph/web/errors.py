"""Errors of the web layer and the HTTP status of every error a route can meet."""

from __future__ import annotations

from rudolph.errors import (
    ConfigurationError,
    IndexUnavailableError,
    PeopleOffError,
    PersonNameError,
    RudolphError,
    StoreUnavailableError,
    UnknownFaceError,
    UnknownPersonError,
)
from rudolph.query import QuerySyntaxError
from rudolph.web.models import Problem


class BadRequestError(RudolphError):
    """A request the search cannot run as asked (a limit, a cursor): change the request."""


class UnknownImageError(RudolphError):
    """No record has this image id."""


def problem(exc: RudolphError) -> tuple[int, Problem]:
    """The status and body of an error answer; the messages already say what to do."""
    if isinstance(exc, QuerySyntaxError):
        return 400, Problem(detail=str(exc), column=exc.column, query=exc.query)
    if isinstance(exc, BadRequestError | PeopleOffError | PersonNameError):
        return 400, Problem(detail=str(exc))
    if isinstance(exc, UnknownImageError | UnknownFaceError | UnknownPersonError):
        return 404, Problem(detail=str(exc))
    if isinstance(exc, (IndexUnavailableError, StoreUnavailableError, ConfigurationError)):
        # The server is fine but what it relies on is not: reachable again, it answers again.
        return 503, Problem(detail=str(exc))
    return 500, Problem(detail=f"{exc.code}: {exc}")
