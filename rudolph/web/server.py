"""Serving the app with uvicorn: `rudolph web`."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from rudolph.settings import Settings
from rudolph.web.app import create_app

log = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGINT/SIGTERM."""
    app = create_app(settings)
    if settings.web_auth is None and not _loopback(host):
        log.warning(
            "serving on %s without auth: anyone who reaches it can search and view every "
            "image; set RUDOLPH_WEB_AUTH=user:password",
            host,
        )
    # No proxy headers: behind a proxy, bind to 127.0.0.1 and let the proxy add auth/TLS.
    uvicorn.run(app, host=host, port=port, proxy_headers=False, server_header=False)
