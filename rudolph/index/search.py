"""A search request (query, sort, search_after, facets, highlights) and its answer as a page of
hits, each with why it matched."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rudolph.index import synonyms
from rudolph.index.dsl import to_dsl
from rudolph.query import Query, Term
from rudolph.record import IMAGE_ID

SortOrder = Literal["score", "newest", "oldest"]
SORTS: tuple[str, ...] = ("score", "newest", "oldest")

#: Most hits a page holds.
MAX_LIMIT = 1000
#: Label names a facet lists.
FACET_LABELS = 15
_MAX_TEXT_REASONS = 3


@dataclass(frozen=True)
class SearchHit:
    image_id: str
    bucket: str | None
    key: str | None
    score: float
    #: Why it matched, best first: 'label "Cat" (88%)', 'parent "Animal"', 'text "NO PARKING"'.
    matched: list[str] = field(default_factory=list)
    #: Label names of the image, most confident first.
    labels: list[str] = field(default_factory=list)
    face_count: int = 0


@dataclass(frozen=True)
class Facets:
    #: Top label names and image counts for the query, most first.
    labels: list[tuple[str, int]]
    with_faces: int
    with_text: int
    #: done / partial / failed counts for the query.
    status: list[tuple[str, int]]


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    #: Images matching the query.
    total: int
    #: Opaque cursor for the next page (`after=`); None on the last page.
    next_after: str | None
    #: Only when asked for.
    facets: Facets | None


EMPTY_FACETS = Facets(labels=[], with_faces=0, with_text=0, status=[])


# -- cursors ------------------------------------------------------------------------------------


_LONG = (-(2**63), 2**63 - 1)  # a date sorts as epoch milliseconds in a Java long


def encode_cursor(sort: SortOrder, values: list[Any]) -> str:
    """The search_after values of a page's last hit, as urlsafe base64 JSON."""
    if sort != "score" and values and values[0] is None:
        # An emulator gives null for a missing date; OpenSearch gives the long it sorts it as
        # (and answers a null search_after with a 500), so the cursor holds that long.
        values = [_LONG[0] if sort == "newest" else _LONG[1], *values[1:]]
    raw = json.dumps({"sort": sort, "after": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Longer than any cursor `encode_cursor` makes; a longer one is not decoded at all.
MAX_CURSOR = 512


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a value a cursor holds")


def _sorts_by(sort: SortOrder, value: Any) -> bool:
    """Whether `value` can be the first sort value of a hit under `sort`."""
    if isinstance(value, bool):
        return False
    if sort == "score":
        return isinstance(value, int | float) and math.isfinite(value)
    # Event time: epoch milliseconds (the extremes of a long stand for a missing date). Never
    # null: OpenSearch answers a null search_after date with a 500 (NullPointerException).
    return isinstance(value, int) and _LONG[0] <= value <= _LONG[1]


def decode_cursor(cursor: str, sort: SortOrder) -> list[Any]:
    """The search_after values of a cursor; ValueError (saying what to do) if it is not one
    `encode_cursor` made for this sort order: every value's type and range are checked, so
    the index is never handed one it would refuse."""
    problem = "it is not a cursor rudolph gave"
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError(problem)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw, parse_constant=_no_constants)
        if not isinstance(data, dict) or set(data) != {"sort", "after"}:
            raise ValueError(problem)
        if data["sort"] != sort:
            if data["sort"] in SORTS:
                problem = f"it was made for --sort {data['sort']}, not {sort}"
            raise ValueError(problem)
        values = data["after"]
        ok = isinstance(values, list) and len(values) == 2
        ok = ok and _sorts_by(sort, values[0])
        ok = ok and isinstance(values[1], str) and IMAGE_ID.fullmatch(values[1]) is not None
        if not ok:
            raise ValueError(problem)
        return list(values)
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise ValueError(
            f"cannot continue after {cursor[:40]!r}: {problem}; start again without it"
        ) from None


# -- the request --------------------------------------------------------------------------------

_SORT: dict[str, list[dict[str, Any]]] = {
    "score": [{"_score": {"order": "desc"}}, {"image_id": {"order": "asc"}}],
    "newest": [{"event_time": {"order": "desc"}}, {"image_id": {"order": "asc"}}],
    "oldest": [{"event_time": {"order": "asc"}}, {"image_id": {"order": "asc"}}],
}

_SOURCE = ["bucket", "key", "label_details", "label_parents", "label_aliases", "text", "face_count"]


def _highlight(terms: list[Term]) -> dict[str, Any]:
    """Whole values (labels, OCR lines) that the terms matched, not fragments: they become the
    reasons."""
    labelish = [t for t in terms if t.field in ("any", "label")]
    texty = [t for t in terms if t.field in ("any", "text")]

    def one(field_name: str, chosen: list[Term]) -> dict[str, Any]:
        should: list[dict[str, Any]] = []
        for term in chosen:
            if term.phrase or field_name == "text":
                should.append({"match_phrase": {field_name: {"query": term.value}}})
            if not term.phrase:
                should.append({"match": {field_name: {"query": term.value, "operator": "and"}}})
        return {
            "number_of_fragments": 0,
            "highlight_query": {"bool": {"should": should or [{"match_none": {}}]}},
        }

    fields: dict[str, Any] = {}
    if labelish:
        for name in ("labels.text", "label_aliases.text", "label_parents.text"):
            fields[name] = one(name, labelish)
    if texty:
        fields["text"] = one("text", texty)
        # Phrases across lines: the marked words say which ones (see `reasons`).
        fields["text_all"] = {
            "number_of_fragments": 0,
            "highlight_query": {
                "bool": {
                    "should": [{"match_phrase": {"text_all": {"query": t.value}}} for t in texty]
                }
            },
        }
    return {"fields": fields}


def search_body(
    query: Query,
    limit: int,
    sort: SortOrder,
    after: list[Any] | None,
    facets: bool,
    persons: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The request body of one page: one more hit than `limit`, to know if another page follows."""
    body: dict[str, Any] = {
        "size": limit + 1,
        "track_total_hits": True,
        "track_scores": True,
        "_source": _SOURCE,
        "query": to_dsl(query, persons),
        "sort": _SORT[sort],
    }
    highlight = _highlight(query.terms())
    if highlight["fields"]:
        body["highlight"] = highlight
    if after is not None:
        body["search_after"] = after
    if facets:
        body["aggs"] = {
            "labels": {"terms": {"field": "labels.display", "size": FACET_LABELS}},
            "with_faces": {"filter": {"range": {"face_count": {"gte": 1}}}},
            "with_text": {"filter": {"term": {"has_text": True}}},
            "status": {"terms": {"field": "status", "size": 10}},
        }
    return body


# -- why a hit matched --------------------------------------------------------------------------

_TAG = re.compile(r"</?em>")
_WORD = re.compile(r"\w+")


def _resembles(value: str, query: str) -> bool:
    """A rough stand-in for the label analyzer, when the server gave no highlight: every word
    of the query, or a singular of it, is a word of the value or a singular of one."""
    wanted = [synonyms.singulars(w) for w in _WORD.findall(synonyms.fold(query))]
    have: set[str] = set()
    for word in _WORD.findall(synonyms.fold(value)):
        have |= synonyms.singulars(word)
    return bool(wanted) and all(forms & have for forms in wanted)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _matching(values: list[str], term: str, hows: set[str], highlighted: list[str]) -> list[str]:
    """The values of one field that a term matched, exactly (""), stemmed (~) or by synonym (=)."""
    found: list[str] = []
    if "" in hows:
        found += [v for v in values if synonyms.fold(v) == synonyms.fold(term)]
    if "~" in hows:
        marked = {_TAG.sub("", h) for h in highlighted}
        found += [v for v in values if v in marked and _resembles(v, term)] or [
            v for v in values if _resembles(v, term)
        ]
    if "=" in hows:
        others = synonyms.expansions(term)
        found += [
            v for v in values if synonyms.fold(v) in others or any(_resembles(v, o) for o in others)
        ]
    return _unique(found)


_MARKED = re.compile(r"<em>(.*?)</em>", re.DOTALL)


def _across(highlighted: list[str], term: str) -> list[str]:
    """The reason of a phrase found across OCR lines: the highlighted words, as they read
    ('text "DOUBLE / PARKING" (across lines)'); the term itself when nothing was marked."""
    for whole in highlighted:
        before = 0
        shown: list[str] = []
        for mark in _MARKED.finditer(whole):
            if shown and "\n" in whole[before : mark.start()]:
                shown.append("/")
            shown.append(mark.group(1))
            before = mark.end()
        if shown:
            return [f'text "{" ".join(shown)}" (across lines)']
    return [f'text "{term}" (across lines)']


def reasons(hit: dict[str, Any], terms: list[Term]) -> list[str]:
    """Why a hit matched, best reason first, from its named queries and highlights."""
    matched: dict[int, set[str]] = {}
    for name in hit.get("matched_queries") or []:
        tier, _, number = str(name).rpartition("#")
        if number.lstrip("-").isdigit():
            matched.setdefault(int(number), set()).add(tier)
    source = hit.get("_source") or {}
    marks = hit.get("highlight") or {}
    details = source.get("label_details") or []
    confidence = {d["name"]: d.get("confidence") for d in details}
    by_tier: dict[str, list[str]] = {}

    for index, tiers in sorted(matched.items()):
        if not 0 <= index < len(terms):
            continue
        term = terms[index].value
        for kind, values, marked in (
            ("label", list(confidence), marks.get("labels.text", [])),
            ("alias", source.get("label_aliases") or [], marks.get("label_aliases.text", [])),
            ("parent", source.get("label_parents") or [], marks.get("label_parents.text", [])),
        ):
            hows = {t[len(kind) :] for t in tiers if t.startswith(kind)}
            for value in _matching(values, term, hows, marked):
                if kind == "label":
                    percent = confidence.get(value)
                    shown = f" ({percent:.0f}%)" if percent is not None else ""
                    by_tier.setdefault(kind, []).append(f'label "{value}"{shown}')
                else:
                    by_tier.setdefault(kind, []).append(f'{kind} "{value}"')
        if tiers & {"text", "text~"}:
            lines = [_TAG.sub("", line) for line in marks.get("text", [])]
            lines = lines or [line for line in source.get("text") or [] if _resembles(line, term)]
            by_tier.setdefault("text", []).extend(f'text "{line}"' for line in lines)
        elif "text+" in tiers:
            by_tier.setdefault("text", []).extend(_across(marks.get("text_all", []), term))
        if "key" in tiers:
            by_tier.setdefault("key", []).append(f'key "{source.get("key")}"')
    out: list[str] = []
    for kind in ("label", "alias", "parent"):
        out += by_tier.get(kind, [])
    out += _unique(by_tier.get("text", []))[:_MAX_TEXT_REASONS]
    out += by_tier.get("key", [])
    return _unique(out)


# -- the answer ---------------------------------------------------------------------------------


def _hit(hit: dict[str, Any], terms: list[Term]) -> SearchHit:
    source = hit.get("_source") or {}
    details = sorted(source.get("label_details") or [], key=lambda d: -(d.get("confidence") or 0.0))
    return SearchHit(
        image_id=hit["_id"],
        bucket=source.get("bucket"),
        key=source.get("key"),
        score=float(hit.get("_score") or 0.0),
        matched=reasons(hit, terms),
        labels=_unique([d["name"] for d in details]),
        face_count=int(source.get("face_count") or 0),
    )


def _facets(aggregations: dict[str, Any]) -> Facets:
    def buckets(name: str) -> list[tuple[str, int]]:
        found = aggregations.get(name, {}).get("buckets", [])
        return [(str(b["key"]), int(b["doc_count"])) for b in found]

    return Facets(
        labels=buckets("labels"),
        with_faces=int(aggregations.get("with_faces", {}).get("doc_count", 0)),
        with_text=int(aggregations.get("with_text", {}).get("doc_count", 0)),
        status=buckets("status"),
    )


def page_of(
    response: dict[str, Any], query: Query, limit: int, sort: SortOrder, facets: bool
) -> SearchPage:
    found = response["hits"]["hits"]
    terms = query.terms()
    hits = [_hit(hit, terms) for hit in found[:limit]]
    more = len(found) > limit
    total = response["hits"].get("total", 0)
    return SearchPage(
        hits=hits,
        total=int(total["value"] if isinstance(total, dict) else total),
        next_after=encode_cursor(sort, found[limit - 1]["sort"]) if more else None,
        facets=_facets(response.get("aggregations") or {}) if facets else None,
    )
