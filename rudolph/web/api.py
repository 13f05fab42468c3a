"""The JSON API: /api/search over the index, /api/images/{image_id} from the table, and
/api/people (RUDOLPH_PEOPLE=on): the persons, and naming one."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError
from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import StreamingResponse

from rudolph.errors import PeopleOffError
from rudolph.index import SearchHit, SearchPage, SortOrder
from rudolph.people import People
from rudolph.query import QuerySyntaxError
from rudolph.record import IMAGE_ID, Record
from rudolph.web.errors import BadRequestError, UnknownImageError
from rudolph.web.models import (
    Count,
    Facets,
    Hit,
    Image,
    Person,
    PersonName,
    Problem,
    Rename,
    SearchResult,
    SimilarFace,
    SimilarFaces,
)
from rudolph.web.presign import browser_keeps
from rudolph.web.services import Services, services

#: Most hits one request returns; `after` pages on.
MAX_PAGE = 100

ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "The index or the table cannot be reached."},
}

router = APIRouter(prefix="/api", tags=["api"])


def image_page(image_id: str) -> str:
    return f"/images/{image_id}"


def original_path(image_id: str) -> str:
    return f"/api/images/{image_id}/original"


def image_url(
    svc: Services, image_id: str, bucket: str | None, key: str | None, version: str | None = None
) -> str | None:
    """Where the browser gets the image: a presigned S3 URL, or this server for a key that
    a browser would rewrite on the way (dot segments)."""
    if key is not None and not browser_keeps(key):
        return original_path(image_id)
    return svc.presigner.url(bucket, key, version)


def _hit(hit: SearchHit, svc: Services) -> Hit:
    return Hit(
        image_id=hit.image_id,
        bucket=hit.bucket,
        key=hit.key,
        score=hit.score,
        matched=list(hit.matched),
        labels=list(hit.labels),
        face_count=hit.face_count,
        url=image_url(svc, hit.image_id, hit.bucket, hit.key),
        page=image_page(hit.image_id),
    )


def _result(query: str, sort: str, page: SearchPage, svc: Services) -> SearchResult:
    facets = None
    if page.facets is not None:
        facets = Facets(
            labels=[Count(value=name, count=n) for name, n in page.facets.labels],
            with_faces=page.facets.with_faces,
            with_text=page.facets.with_text,
            status=[Count(value=name, count=n) for name, n in page.facets.status],
        )
    return SearchResult(
        query=query,
        sort=sort,
        total=page.total,
        hits=[_hit(hit, svc) for hit in page.hits],
        next_after=page.next_after,
        facets=facets,
        url_expires_in=svc.presigner.expires,
    )


def search_images(
    svc: Services,
    query: str,
    *,
    limit: int,
    after: str | None = None,
    sort: SortOrder = "score",
    facets: bool = False,
) -> SearchResult:
    """One page of hits (the page and the API show the same thing)."""
    try:
        page = svc.index.search(query, limit=limit, after=after, sort=sort, facets=facets)
    except QuerySyntaxError:
        raise
    except ValueError as exc:  # a query too long, a cursor that is not one of ours...
        raise BadRequestError(str(exc)) from exc
    return _result(query, sort, page, svc)


@router.get(
    "/search",
    response_model=SearchResult,
    responses={
        400: {"model": Problem, "description": "A query syntax error (with its column)."},
        **ERRORS,
    },
)
def search(
    svc: Annotated[Services, Depends(services)],
    q: Annotated[str, Query(description="The query; empty matches every image.")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    after: Annotated[str | None, Query(description="`next_after` of the previous page.")] = None,
    sort: SortOrder = "score",
    facets: Annotated[bool, Query(description="Also count labels, faces, text, status.")] = False,
) -> SearchResult:
    """Images matching a query, best first (or newest/oldest), one page at a time.

    Query language: free words (labels, parents, aliases, OCR text), `label:car`,
    `text:"no parking"`, `faces:0`, `faces>=2`, `confidence>=90`, `key:prefix/`,
    `bucket:name`, `meta.content-id:value`, `-label:cat`, `-word`, `AND`, `OR`, parentheses.
    """
    return search_images(svc, q, limit=limit, after=after, sort=sort, facets=facets)


def people_of(svc: Services, what: str) -> People:
    """The persons of the app's table and face index; a 400 saying how to turn them on when
    RUDOLPH_PEOPLE is off."""
    if not svc.settings.people_on:
        raise PeopleOffError(what)
    return People(svc.settings, records=svc.store)


def _record(svc: Services, image_id: str) -> Record:
    # Anything else is no image of ours (and too long a key is an error to DynamoDB).
    record = svc.store.get(image_id) if IMAGE_ID.fullmatch(image_id) else None
    if record is None:
        raise UnknownImageError(
            f"no record for image id {image_id!r}: not uploaded, not analysed yet, or deleted "
            "(ids come from /api/search)"
        )
    return record


# The types served as they are; anything else the uploader claimed goes as bytes to save.
_IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"}
)


@router.get(
    "/images/{image_id}/original",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/*": {}}, "description": "The image's bytes."},
        404: {"model": Problem, "description": "No record has this id."},
        **ERRORS,
    },
)
def original(image_id: str, svc: Annotated[Services, Depends(services)]) -> StreamingResponse:
    """The image itself, streamed from S3, for keys a presigned URL cannot carry (`..`)."""
    record = _record(svc, image_id)
    params = {"Bucket": record.bucket, "Key": record.key}
    if record.version_id and record.version_id != "null":
        params["VersionId"] = record.version_id
    try:
        body = svc.presigner.client.get_object(**params)["Body"]
    except ClientError as exc:
        raise UnknownImageError(
            f"image {image_id} is no longer in S3 ({exc.response['Error'].get('Code')}): "
            "it was deleted or replaced"
        ) from exc
    kind = record.content_type if record.content_type in _IMAGE_TYPES else None
    return StreamingResponse(
        body.iter_chunks(64 * 1024),
        media_type=kind or "application/octet-stream",
        # Whatever the bytes are, they never run as a page of this origin.
        headers={"content-security-policy": "default-src 'none'; sandbox"},
    )


@router.get(
    "/images/{image_id}",
    response_model=Image,
    responses={404: {"model": Problem, "description": "No record has this id."}, **ERRORS},
)
def image(image_id: str, svc: Annotated[Services, Depends(services)]) -> Image:
    """The record of an image, read from DynamoDB (the source of truth), with a URL of it."""
    # Anything else is no image of ours (and too long a key is an error to DynamoDB).
    record = _record(svc, image_id)
    return Image(
        record=record,
        url=image_url(svc, image_id, record.bucket, record.key, record.version_id),
        url_expires_in=svc.presigner.expires,
        page=image_page(image_id),
    )


@router.get(
    "/images/{image_id}/faces/{face}/similar",
    response_model=SimilarFaces,
    responses={
        400: {"model": Problem, "description": "RUDOLPH_PEOPLE is off."},
        404: {"model": Problem, "description": "No such face with an embedding."},
        **ERRORS,
    },
)
def similar_faces(
    image_id: str,
    face: int,
    svc: Annotated[Services, Depends(services)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
) -> SimilarFaces:
    """The faces nearest one face of an image (numbered from 0 as in its record), nearest
    first, with their person and distance (same person: under 0.6). RUDOLPH_PEOPLE=on only."""
    _record(svc, image_id)  # a 404 for an id that is no image of ours
    found = people_of(svc, "similar faces").similar(image_id, face, limit)
    return SimilarFaces(
        image_id=image_id,
        face=face,
        similar=[
            SimilarFace(
                image_id=n.image_id,
                face=n.face,
                person_id=n.person_id,
                distance=round(n.distance, 4),
                box=n.box,
                page=image_page(n.image_id),
            )
            for n in found
        ],
    )


def person_photos(person_id: str) -> str:
    """The search page with the photos of one person."""
    return "/?" + urlencode({"q": f"person:{person_id}"})


_PEOPLE_OFF: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "RUDOLPH_PEOPLE is off."}
}


@router.get("/people", response_model=list[Person], responses={**_PEOPLE_OFF, **ERRORS})
def people(svc: Annotated[Services, Depends(services)]) -> list[Person]:
    """Every person, most photos first, as `rudolph people --json` lists them (a list here,
    an object a line there). RUDOLPH_PEOPLE=on only."""
    return [
        Person.model_validate(s.as_json()) for s in people_of(svc, "the people list").summaries()
    ]


@router.put(
    "/people/{person_id}",
    response_model=PersonName,
    responses={
        400: {"model": Problem, "description": "RUDOLPH_PEOPLE is off, or a name it refuses."},
        404: {"model": Problem, "description": "No live person has this id."},
        **ERRORS,
    },
)
def rename(
    person_id: str, rename: Annotated[Rename, Body()], svc: Annotated[Services, Depends(services)]
) -> PersonName:
    """Name a person (`{"name": "Ada Lovelace"}`; `""` or null unnames), as `rudolph people
    name` does; `person:"Ada Lovelace"` then finds its photos. RUDOLPH_PEOPLE=on only."""
    # No cross-site form can send a PUT or a JSON body without a CORS preflight, which this
    # server never grants: a page elsewhere cannot rename through a visitor's credentials.
    stored = people_of(svc, "naming a person").name(person_id, rename.name or "")
    return PersonName(person_id=person_id, name=stored)
