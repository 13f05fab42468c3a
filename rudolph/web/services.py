"""What the routes talk to, made once per app from settings: the search index, the table of
records (the source of truth) and the URL presigner."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from rudolph.index import SearchIndex
from rudolph.people import search_index
from rudolph.settings import Settings
from rudolph.store import RecordStore
from rudolph.web.presign import Presigner


@dataclass(frozen=True)
class Services:
    settings: Settings
    index: SearchIndex
    store: RecordStore
    presigner: Presigner

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(settings, search_index(settings), RecordStore(settings), Presigner(settings))


def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency)."""
    found: Services = request.app.state.services
    return found
