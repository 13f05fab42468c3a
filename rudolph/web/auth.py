"""Optional HTTP basic auth (RUDOLPH_WEB_AUTH="user:password") over every path: pages, API,
OpenAPI description and static files alike."""

from __future__ import annotations

import base64
import binascii
import secrets

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rudolph.errors import ConfigurationError

REALM = "rudolph"


def credentials(setting: SecretStr) -> tuple[bytes, bytes]:
    """(user, password) of RUDOLPH_WEB_AUTH; the value itself never appears in the error."""
    user, sep, password = setting.get_secret_value().partition(":")
    if not sep or not user or not password:
        raise ConfigurationError(
            "RUDOLPH_WEB_AUTH must be user:password with neither empty (the password may "
            "contain ':'); fix it, or unset it to serve without auth on 127.0.0.1"
        )
    return user.encode(), password.encode()


class BasicAuthMiddleware:
    """Answers 401 with a Basic challenge unless the request carries the right credentials."""

    def __init__(self, app: ASGIApp, user: bytes, password: bytes) -> None:
        self.app = app
        self.user = user
        self.password = password

    def allowed(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, _, password = decoded.partition(b":")
        # Both compared, in constant time, so timing tells nothing about which one was wrong.
        user_ok = secrets.compare_digest(user, self.user)
        password_ok = secrets.compare_digest(password, self.password)
        return user_ok and password_ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allowed(Headers(scope=scope).get("authorization")):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "authentication required: this rudolph web server has RUDOLPH_WEB_AUTH set; "
            "send its user and password (HTTP basic auth)\n",
            status_code=401,
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )
        await response(scope, receive, send)
