"""The HTML pages: the search page (box, facets, thumbnails, "more"), an image's page and the
People page (a face per person, its photo count, its name to edit)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from rudolph.errors import PeopleOffError
from rudolph.index import SortOrder
from rudolph.printable import printable
from rudolph.query import Or, QuerySyntaxError, parse
from rudolph.record import Box, Face, Record
from rudolph.web.api import (
    MAX_PAGE,
    image,
    image_url,
    people_of,
    person_photos,
    search_images,
)
from rudolph.web.errors import BadRequestError
from rudolph.web.models import Problem, SearchResult
from rudolph.web.services import Services, services

#: Thumbnails per page of the grid.
PAGE = 24
SORTS: tuple[SortOrder, ...] = ("score", "newest", "oldest")


def _shown(value: object) -> object:
    """Every value a template prints: outside text with its control characters visible (a
    bidi override in a key would reorder the page's text); markup made here stays as it is."""
    return printable(value) if isinstance(value, str) and not isinstance(value, Markup) else value


# Autoescape everything: keys, labels and OCR text come from uploaders and pictures.
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_shown,
    )
)

router = APIRouter(include_in_schema=False)


def quoted(value: str) -> str:
    """A value as a quoted string of the query language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def with_filter(query: str, term: str) -> str:
    """The query narrowed by `term` (a facet's filter); unchanged if it has it already."""
    query = query.strip()
    if not query:
        return term
    if f" {term} " in f" {query} ":
        return query
    # AND binds tighter than OR: "a OR b label:x" would narrow only b. (Only a top-level OR
    # is wrapped: a top-level confidence>=N or count>=N must stay outside parentheses.)
    parsed = parse(query)
    if isinstance(parsed.node, Or) and not (parsed.confidence or parsed.count):  # top is AND
        query = f"({query})"
    return f"{query} {term}"


def search_url(query: str, sort: str = "score", after: str | None = None, limit: int = PAGE) -> str:
    params = {"q": query}
    if sort != "score":
        params["sort"] = sort
    if limit != PAGE:
        params["limit"] = str(limit)
    if after:
        params["after"] = after
    return "/?" + urlencode(params)


def _facet_links(result: SearchResult, limit: int) -> dict[str, list[tuple[str, int, str]]]:
    """(shown name, count, URL of the query narrowed to it) per facet."""
    facets = result.facets
    if facets is None:
        return {}

    def narrow(term: str) -> str:
        return search_url(with_filter(result.query, term), result.sort, limit=limit)

    return {
        "labels": [(c.value, c.count, narrow(f"label:{quoted(c.value)}")) for c in facets.labels],
        "content": [
            ("with faces", facets.with_faces, narrow("faces>=1")),
            ("with text", facets.with_text, narrow("has:text")),
        ],
        "status": [(c.value, c.count, narrow(f"status:{c.value}")) for c in facets.status],
    }


@router.get("/", response_class=HTMLResponse)
def search_page(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    q: str = "",
    after: str | None = None,
    sort: str = "score",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> HTMLResponse:
    chosen: SortOrder = sort if sort in SORTS else "score"
    result: SearchResult | None = None
    error: Problem | None = None
    try:
        # The facets describe the whole query: shown with the first page only.
        result = search_images(svc, q, limit=limit, after=after, sort=chosen, facets=after is None)
    except QuerySyntaxError as exc:
        error = Problem(detail=str(exc), column=exc.column, query=exc.query)
    except BadRequestError as exc:
        error = Problem(detail=str(exc))
    context = {
        "q": q,
        "sort": chosen,
        "sorts": SORTS,
        "result": result,
        "error": error,
        "facets": _facet_links(result, limit) if result else {},
        "more": (
            search_url(q, chosen, result.next_after, limit)
            if result and result.next_after
            else None
        ),
    }
    status = 400 if error else 200
    return templates.TemplateResponse(request, "search.html", context, status_code=status)


def _percent(box: Box) -> dict[str, float]:
    """A box (ratios of the image) clipped to the picture, for the SVG overlay."""
    left, top = max(0.0, box.left), max(0.0, box.top)
    return {
        "x": left,
        "y": top,
        "width": max(0.0, min(1.0, box.left + box.width) - left),
        "height": max(0.0, min(1.0, box.top + box.height) - top),
    }


#: The image page's box layers, each switchable: (kind, caption).
LAYERS = (("object", "objects"), ("face", "faces"), ("line", "text lines"))


def _overlays(record: Record, persons: dict[int, dict[str, str]]) -> list[dict[str, object]]:
    boxes: list[dict[str, object]] = [
        {
            "kind": "object",
            "title": f"{label.name} {found.confidence:.0f}%",
            "person": None,  # only faces have one
            **_percent(found.box),
        }
        for label in record.labels
        for found in label.instances
    ]
    boxes += [
        {
            "kind": "face",
            "title": " · ".join(
                [f"face {face.confidence:.0f}%"] + ([persons[n]["caption"]] if n in persons else [])
            ),
            "person": persons.get(n),
            **_percent(face.box),
        }
        for n, face in enumerate(record.faces)
    ]
    boxes += [
        {
            "kind": "line",
            "title": f"{line.text} ({line.confidence:.0f}%)",
            "person": None,
            **_percent(line.box),
        }
        for line in record.text
        if line.type == "LINE"
    ]
    return boxes


def _persons_of(svc: Services, record: Record) -> dict[int, dict[str, str]]:
    """Face number -> its person's id, caption (the name, else the id) and photos' URL; empty
    with RUDOLPH_PEOPLE off."""
    if not svc.settings.people_on or not record.faces:
        return {}
    people = people_of(svc, "persons")
    of_face = people.persons_of_image(record.image_id)
    # One BatchGetItem for the persons of this picture, not a read each.
    found = people.store.persons_by_id(of_face.values())
    names = {pid: person.name for pid, person in found.items()}
    return {
        n: {"id": pid, "caption": names.get(pid) or pid, "href": person_photos(pid)}
        for n, pid in of_face.items()
    }


def _attributes(face: Face) -> dict[str, str]:
    """The smile and the likeliest emotion of a face, as the faces table shows them."""
    smile = ""
    if face.smile is not None:
        smile = f"{'yes' if face.smile.value else 'no'} {face.smile.confidence:.0f}%"
    emotion = ""
    if face.emotions:
        top = max(face.emotions, key=lambda e: e.confidence)
        emotion = f"{top.type.lower()} {top.confidence:.0f}%"
    return {"smile": smile, "emotion": emotion}


@router.get("/images/{image_id}", response_class=HTMLResponse)
def image_page(
    request: Request,
    image_id: str,
    svc: Annotated[Services, Depends(services)],
    q: str = "",
) -> HTMLResponse:
    found = image(image_id, svc)  # an unknown id becomes the 404 page
    record = found.record
    persons = _persons_of(svc, record)
    overlays = _overlays(record, persons)
    context = {
        "q": q,
        "record": record,
        "url": found.url,
        "overlays": overlays,
        "layers": [
            (kind, caption, sum(1 for box in overlays if box["kind"] == kind))
            for kind, caption in LAYERS
        ],
        "lines": [t for t in record.text if t.type == "LINE"],
        "words": [t for t in record.text if t.type == "WORD"],
        "back": search_url(q),
        "api": f"/api/images/{image_id}",
        "people_on": svc.settings.people_on,
        "persons": persons,
        "attributes": [_attributes(face) for face in record.faces],
    }
    return templates.TemplateResponse(request, "image.html", context)


#: How much wider than the face box a portrait is, so the face sits in some of its head.
PORTRAIT_MARGIN = 1.5


def _portrait(record: Record, face: int) -> dict[str, object] | None:
    """Where a person's face is in its picture, as an SVG viewBox in the picture's pixels: a
    square around the face box. The browser crops the presigned image with it, so the server
    never downloads or re-encodes a picture and the browser caches one URL per image."""
    if not 0 <= face < len(record.faces):
        return None
    box = record.faces[face].box
    # Without the record's pixel size the crop is square in ratios (a little stretched).
    width, height = record.width or 1000, record.height or 1000
    side = max(box.width * width, box.height * height) * PORTRAIT_MARGIN
    x = (box.left + box.width / 2) * width - side / 2
    y = (box.top + box.height / 2) * height - side / 2
    return {
        "viewbox": f"{x:.1f} {y:.1f} {side:.1f} {side:.1f}",
        "width": width,
        "height": height,
    }


@router.get("/people", response_class=HTMLResponse)
def people_page(request: Request, svc: Annotated[Services, Depends(services)]) -> HTMLResponse:
    off: str | None = None
    cards: list[dict[str, object]] = []
    try:
        people = people_of(svc, "The People page")
    except PeopleOffError as exc:
        off = str(exc)
    else:
        portraits = people.portraits()
        # The pictures of the portraits' faces in BatchGetItems of 100, not a read a person.
        records = svc.store.get_many(sorted({face.image_id for _, face in portraits}))
        for summary, face in portraits:
            record = records.get(face.image_id)
            cards.append(
                {
                    "person": summary,
                    "photos": person_photos(summary.person_id),
                    "url": record
                    and image_url(
                        svc, record.image_id, record.bucket, record.key, record.version_id
                    ),
                    "portrait": record and _portrait(record, face.face),
                }
            )
    context = {"q": "", "off": off, "cards": cards}
    return templates.TemplateResponse(request, "people.html", context)
