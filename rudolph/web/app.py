"""The FastAPI application of `rudolph web`, built from settings."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rudolph.errors import RudolphError
from rudolph.settings import Settings
from rudolph.web import api, pages
from rudolph.web.auth import BasicAuthMiddleware, credentials
from rudolph.web.errors import problem
from rudolph.web.services import Services

DESCRIPTION = """\
Search the images rudolph analysed (labels, OCR text, faces) and read their records.

Image URLs in answers are presigned S3 GET URLs that expire (`url_expires_in` seconds).
When the server has RUDOLPH_WEB_AUTH set, every path needs HTTP basic auth.
With RUDOLPH_PEOPLE=on, /api/people lists the persons (as `rudolph people --json`) and
`PUT /api/people/{person_id}` names one.
Errors answer `{"detail": ...}` saying what was wrong and what to do: 400 for a query syntax
error (with its `column`), a name that cannot be a person's or people being off, 404 for an
unknown image or person id, 503 when the index or the table cannot be reached.
"""

# Scripts and styles only from this server; images from anywhere (the presigned S3 URLs).
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: http: https:; object-src 'none'; "
        b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    # The page's URL (the query) stays out of the image requests to S3.
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RudolphError)
    status, body = problem(exc)
    headers = {"Retry-After": "10"} if status == 503 else None
    if request.url.path.startswith("/api/"):
        return JSONResponse(body.model_dump(exclude_none=True), status, headers=headers)
    context = {"status": status, "problem": body, "q": request.query_params.get("q", "")}
    return pages.templates.TemplateResponse(
        request, "error.html", context, status_code=status, headers=headers
    )


def create_app(settings: Settings, svc: Services | None = None) -> FastAPI:
    """The app; `svc` defaults to the index, table and presigner the settings name."""
    app = FastAPI(
        title="rudolph",
        version=version("rudolph"),
        description=DESCRIPTION,
        # Swagger UI and ReDoc load their scripts from a CDN: the description is enough.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc or Services.from_settings(settings)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_exception_handler(RudolphError, _error)
    app.add_middleware(SecurityHeaders)
    if settings.web_auth is not None:
        user, password = credentials(settings.web_auth)
        app.add_middleware(BasicAuthMiddleware, user=user, password=password)  # outermost
    return app
