"""The JSON API: /api/search over the index, /api/images/{image_id} from the table."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from rudolph.index import SearchHit, SearchPage, SortOrder
from rudolph.query import QuerySyntaxError
from rudolph.web.errors import BadRequestError, UnknownImageError
from rudolph.web.models import Count, Facets, Hit, Image, Problem, SearchResult
from rudolph.web.services import Services, services

#: Most hits one request returns; `after` pages on.
MAX_PAGE = 100
#: What image ids look like (record.image_id: a SHA-256 hex digest).
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")

ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "The index or the table cannot be reached."},
}

router = APIRouter(prefix="/api", tags=["api"])


def image_page(image_id: str) -> str:
    return f"/images/{image_id}"


def _hit(hit: SearchHit, svc: Services) -> Hit:
    return Hit(
        image_id=hit.image_id,
        bucket=hit.bucket,
        key=hit.key,
        score=hit.score,
        matched=list(hit.matched),
        labels=list(hit.labels),
        face_count=hit.face_count,
        url=svc.presigner.url(hit.bucket, hit.key),
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


@router.get(
    "/images/{image_id}",
    response_model=Image,
    responses={404: {"model": Problem, "description": "No record has this id."}, **ERRORS},
)
def image(image_id: str, svc: Annotated[Services, Depends(services)]) -> Image:
    """The record of an image, read from DynamoDB (the source of truth), with a URL of it."""
    # Anything else is no image of ours (and too long a key is an error to DynamoDB).
    record = svc.store.get(image_id) if _IMAGE_ID.fullmatch(image_id) else None
    if record is None:
        raise UnknownImageError(
            f"no record for image id {image_id!r}: not uploaded, not analysed yet, or deleted "
            "(ids come from /api/search)"
        )
    return Image(
        record=record,
        url=svc.presigner.url(record.bucket, record.key, record.version_id),
        url_expires_in=svc.presigner.expires,
        page=image_page(image_id),
    )
