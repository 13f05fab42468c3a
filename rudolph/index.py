"""The OpenSearch index of records: what `rudolph search` asks.

The index is an alias (`RUDOLPH_INDEX`) over a versioned index (`<alias>-v1`, `-v2`...), so a
new mapping can be built beside the old one and the alias moved. Documents are derived from
records (DynamoDB stays the source of truth; the index can be rebuilt from it), one per image
with `_id = image_id`. Only OpenSearch's documented REST API is used, so the same code runs on
a real cluster, on Amazon OpenSearch Service (SigV4) and on the local dev server.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from opensearchpy import (
    AuthenticationException,
    AuthorizationException,
    ConflictError,
    NotFoundError,
    OpenSearch,
    RequestError,
    RequestsHttpConnection,
    TransportError,
)
from opensearchpy import ConnectionError as OpenSearchConnectionError

from rudolph.errors import ConfigurationError, IndexUnavailableError
from rudolph.record import Record
from rudolph.settings import Settings

#: Longest query `search` accepts; longer input is a mistake, not a search.
MAX_QUERY_LENGTH = 256
#: Most hits `search` returns at once.
MAX_LIMIT = 1000

# The score of a hit is the score of its best reason (dis_max), plus a hundredth of its other
# reasons and up to 1 for the confidence of the label that matched. The tiers are 10 apart, more
# than those extras can add, so an exact label always beats a plural, which beats an alias, a
# parent, a line of text and, last, a word of the object key.
_TIERS: dict[str, float] = {
    "label": 100,
    "label~": 90,
    "alias": 70,
    "alias~": 60,
    "parent": 50,
    "parent~": 40,
    "text": 30,
    "text~": 20,
    "key": 10,
}
_TIE_BREAKER = 0.01
_MAX_TEXT_REASONS = 3

_NORMALIZED = "lowercase"  # the normalizer of every case-insensitive keyword field

INDEX_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    # No replica on a single node (no yellow dev cluster), one as soon as there is a second.
    "auto_expand_replicas": "0-1",
    "analysis": {
        "normalizer": {
            _NORMALIZED: {"type": "custom", "filter": ["lowercase", "asciifolding"]},
        },
        "tokenizer": {
            "key_path": {"type": "path_hierarchy", "delimiter": "/"},
            # The standard tokenizer keeps "tabby.jpg" and "a_b" whole: split on anything but
            # letters and digits instead.
            "key_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"},
        },
        "analyzer": {
            "key_path": {"type": "custom", "tokenizer": "key_path"},
            "key_words": {
                "type": "custom",
                "tokenizer": "key_words",
                "filter": ["lowercase", "asciifolding"],
            },
        },
    },
}


def _label_field() -> dict[str, Any]:
    """Exact and case-insensitive as a keyword; `.text` (english) matches plurals."""
    return {
        "type": "keyword",
        "normalizer": _NORMALIZED,
        "fields": {"text": {"type": "text", "analyzer": "english"}},
    }


MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "image_id": {"type": "keyword"},
        "bucket": {"type": "keyword"},
        "key": {
            "type": "keyword",
            "fields": {
                # Words of the key: "cars/red_car.jpg" is found by "red" and "car".
                "text": {"type": "text", "analyzer": "key_words"},
                # Every folder of the key: a term query on "cars/2024" is a prefix query.
                "path": {"type": "text", "analyzer": "key_path", "search_analyzer": "keyword"},
            },
        },
        # S3 user metadata as "name=value" keywords: portable, and uploader-chosen names cannot
        # grow the mapping.
        "metadata": {"type": "keyword"},
        "content_type": {"type": "keyword"},
        "size": {"type": "long"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "status": {"type": "keyword"},
        "labels": _label_field(),
        "label_parents": _label_field(),
        "label_aliases": _label_field(),
        "label_details": {
            "type": "nested",
            "properties": {
                "name": _label_field(),
                "confidence": {"type": "float"},
                "parents": {"type": "keyword", "normalizer": _NORMALIZED},
                "aliases": {"type": "keyword", "normalizer": _NORMALIZED},
            },
        },
        # OCR lines, one array value each, so a phrase never spans two lines.
        "text": {"type": "text", "analyzer": "standard"},
        "text_words": {"type": "keyword", "normalizer": _NORMALIZED, "ignore_above": 256},
        "face_count": {"type": "integer"},
        "has_text": {"type": "boolean"},
        # Kept with the document, never searched.
        "errors": {"type": "object", "enabled": False},
        "analyzer_backend": {"type": "keyword"},
        "event_time": {"type": "date"},
        "analyzed_at": {"type": "date"},
    },
}


@dataclass(frozen=True)
class SearchHit:
    image_id: str
    bucket: str | None
    key: str | None
    score: float
    #: Why it matched, best first: 'label "Cat" (88%)', 'parent "Animal"', 'text "NO PARKING"'.
    matched: list[str] = field(default_factory=list)


#: Statuses of records that have a document; `pending` (and any later status, such as a
#: deletion marker) is left out of a rebuild.
INDEXED_STATUSES = frozenset({"done", "partial", "failed"})
#: Documents per bulk request of a rebuild.
BULK_CHUNK = 500
#: The catch-up pass of a rebuild re-copies records analysed since this long before the
#: rebuild started (the workers' clocks are not this machine's).
CATCH_UP_MARGIN = timedelta(seconds=60)


@dataclass
class RebuildReport:
    """What `SearchIndex.rebuild_from` did."""

    new: str
    #: The indices the alias pointed at before (none when the alias was gone).
    old: list[str] = field(default_factory=list)
    read: int = 0
    indexed: int = 0
    #: Records read but not indexed: pending, or another status without a document.
    skipped: int = 0
    #: (image id, why) of documents the bulk requests refused.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Second pass: documents copied again (records written during the rebuild) and removed
    #: (records deleted during the rebuild).
    caught_up: int = 0
    removed: int = 0
    old_deleted: bool = False


# -- the client ---------------------------------------------------------------------------------


def _redacted(url: SplitResult) -> str:
    """The URL without user:password, for messages and logs."""
    netloc = url.netloc.rpartition("@")[2]
    return url._replace(netloc=netloc).geturl()


def _parse_url(raw: str) -> SplitResult:
    try:
        url = urlsplit(raw.strip())
        url.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigurationError(
            f"RUDOLPH_OPENSEARCH_URL is not a valid URL ({exc}): "
            "use http(s)://host:port, e.g. http://127.0.0.1:9200"
        ) from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigurationError(
            f"RUDOLPH_OPENSEARCH_URL={_redacted(url)!r} is not an http(s) URL with a host: "
            "use http(s)://host:port, e.g. http://127.0.0.1:9200"
        )
    return url


def client(settings: Settings) -> OpenSearch:
    """An OpenSearch client for `settings.opensearch_url`, authenticated as the settings say."""
    url = _parse_url(settings.opensearch_url)
    has_credentials = url.username is not None or url.password is not None
    options: dict[str, Any] = {
        "hosts": [_redacted(url)],
        "timeout": 10,
        "max_retries": 2,
        "retry_on_timeout": True,
    }
    if settings.opensearch_auth == "none":
        if has_credentials:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_URL carries user:password but RUDOLPH_OPENSEARCH_AUTH=none: "
                "set RUDOLPH_OPENSEARCH_AUTH=basic to use them, or remove them from the URL"
            )
    elif settings.opensearch_auth == "basic":
        if not url.username or url.password is None:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_AUTH=basic needs user:password in RUDOLPH_OPENSEARCH_URL, "
                "like https://user:password@host:9200 (percent-encode special characters)"
            )
        options["http_auth"] = (unquote(url.username), unquote(url.password))
    else:  # sigv4: whatever credentials boto3 finds (role, profile, env); none configured here
        if has_credentials:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_AUTH=sigv4 signs with AWS credentials, but "
                "RUDOLPH_OPENSEARCH_URL carries user:password: remove them from the URL"
            )
        import boto3
        from opensearchpy import AWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ConfigurationError(
                "RUDOLPH_OPENSEARCH_AUTH=sigv4 found no AWS credentials: give the process a role, "
                "or set AWS_PROFILE (or the AWS_* credential variables)"
            )
        options["http_auth"] = AWSV4SignerAuth(credentials, settings.aws_region, "es")
        options["connection_class"] = RequestsHttpConnection
    return OpenSearch(**options)


_new_client = client  # SearchIndex's `client` argument hides the function


# -- documents ----------------------------------------------------------------------------------


def _unique(values: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(values))


def to_document(record: Record) -> dict[str, Any]:
    """The OpenSearch document of a record (every field of MAPPING, nothing else)."""
    lines = [t.text for t in record.text if t.type == "LINE"]
    words = [t.text for t in record.text if t.type == "WORD"]
    if not lines:
        lines = words
    if not words:
        words = [word for line in lines for word in line.split()]
    return {
        "image_id": record.image_id,
        "bucket": record.bucket,
        "key": record.key,
        "metadata": [f"{name}={value}" for name, value in sorted(record.metadata.items())],
        "content_type": record.content_type,
        "size": record.size,
        "width": record.width,
        "height": record.height,
        "status": record.status,
        "labels": _unique(label.name for label in record.labels),
        "label_parents": _unique(p for label in record.labels for p in label.parents),
        "label_aliases": _unique(a for label in record.labels for a in label.aliases),
        "label_details": [
            {
                "name": label.name,
                "confidence": label.confidence,
                "parents": list(label.parents),
                "aliases": list(label.aliases),
            }
            for label in record.labels
        ],
        "text": lines,
        "text_words": _unique(iter(words)),
        "face_count": len(record.faces),
        "has_text": bool(lines),
        "errors": dict(record.errors),
        "analyzer_backend": record.analyzer.backend if record.analyzer else None,
        "event_time": record.event_time,
        "analyzed_at": record.analyzed_at,
    }


# -- the query ----------------------------------------------------------------------------------


def _tier(name: str, query: dict[str, Any]) -> dict[str, Any]:
    return {"constant_score": {"filter": query, "boost": _TIERS[name], "_name": name}}


def _words(field_name: str, query: str) -> dict[str, Any]:
    return {"match": {field_name: {"query": query, "operator": "and"}}}


def search_body(query: str, limit: int) -> dict[str, Any]:
    """The request body of a search: query DSL only, the user's words only ever as values."""
    text_phrase = {"match_phrase": {"text": {"query": query}}}
    tiers = [
        _tier("label", {"term": {"labels": query}}),
        _tier("label~", _words("labels.text", query)),
        _tier("alias", {"term": {"label_aliases": query}}),
        _tier("alias~", _words("label_aliases.text", query)),
        _tier("parent", {"term": {"label_parents": query}}),
        _tier("parent~", _words("label_parents.text", query)),
        _tier("text", text_phrase),
        _tier("text~", _words("text", query)),
        _tier("key", _words("key.text", query)),
    ]
    # Among equal reasons, the more confident label first (adds confidence / 100, at most 1).
    confidence = {
        "nested": {
            "path": "label_details",
            "score_mode": "max",
            "query": {
                "function_score": {
                    "query": {
                        "bool": {
                            "should": [
                                {"term": {"label_details.name": query}},
                                _words("label_details.name.text", query),
                                {"term": {"label_details.parents": query}},
                                {"term": {"label_details.aliases": query}},
                            ]
                        }
                    },
                    "field_value_factor": {
                        "field": "label_details.confidence",
                        "factor": 0.01,
                        "missing": 0,
                    },
                    "boost_mode": "replace",
                }
            },
        }
    }

    def highlight(field_name: str, highlight_query: dict[str, Any] | None = None) -> dict[str, Any]:
        # Whole values (labels, OCR lines), not fragments: they become the reasons.
        return {
            "number_of_fragments": 0,
            "highlight_query": highlight_query or _words(field_name, query),
        }

    return {
        "size": limit,
        "track_total_hits": False,
        "_source": ["bucket", "key", "label_details", "label_parents", "label_aliases", "text"],
        "query": {
            "bool": {
                "must": [{"dis_max": {"queries": tiers, "tie_breaker": _TIE_BREAKER}}],
                "should": [confidence],
            }
        },
        "highlight": {
            "fields": {
                "labels.text": highlight("labels.text"),
                "label_aliases.text": highlight("label_aliases.text"),
                "label_parents.text": highlight("label_parents.text"),
                "text": highlight(
                    "text", {"bool": {"should": [text_phrase, _words("text", query)]}}
                ),
            }
        },
    }


# -- why a hit matched --------------------------------------------------------------------------

_TAG = re.compile(r"</?em>")
_WORD = re.compile(r"\w+")


def _fold(value: str) -> str:
    """What the `lowercase` normalizer does: lowercase and drop accents."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)]
    return word


def _resembles(value: str, query: str) -> bool:
    """A rough stand-in for the english analyzer, when the server gave no highlight."""
    wanted = {_stem(w) for w in _WORD.findall(_fold(query))}
    return bool(wanted) and wanted <= {_stem(w) for w in _WORD.findall(_fold(value))}


def _matching(
    values: list[str], query: str, exact: bool, stemmed: bool, highlighted: list[str]
) -> list[str]:
    """The values of one field that the query matched."""
    found: list[str] = []
    if exact:
        found += [v for v in values if _fold(v) == _fold(query)]
    if stemmed:
        marked = {_TAG.sub("", h) for h in highlighted}
        found += [v for v in values if v in marked] or [v for v in values if _resembles(v, query)]
    return _unique(iter(found))


def _reasons(hit: dict[str, Any], query: str) -> list[str]:
    names = set(hit.get("matched_queries") or [])
    source = hit.get("_source") or {}
    marks = hit.get("highlight") or {}
    details = source.get("label_details") or []
    confidence = {d["name"]: d.get("confidence") for d in details}
    reasons: list[str] = []

    for name in _matching(
        list(confidence),
        query,
        "label" in names,
        "label~" in names,
        marks.get("labels.text", []),
    ):
        percent = confidence.get(name)
        reasons.append(f'label "{name}"' + (f" ({percent:.0f}%)" if percent is not None else ""))
    for kind, field_name in (("alias", "label_aliases"), ("parent", "label_parents")):
        values = _matching(
            source.get(field_name) or [],
            query,
            kind in names,
            f"{kind}~" in names,
            marks.get(f"{field_name}.text", []),
        )
        reasons += [f'{kind} "{value}"' for value in values]
    if names & {"text", "text~"}:
        lines = [_TAG.sub("", line) for line in marks.get("text", [])]
        lines = lines or [line for line in source.get("text") or [] if _resembles(line, query)]
        reasons += [f'text "{line}"' for line in _unique(iter(lines))[:_MAX_TEXT_REASONS]]
    if "key" in names:
        reasons.append(f'key "{source.get("key")}"')
    return reasons


# -- the index ----------------------------------------------------------------------------------


def _no_index(exc: NotFoundError) -> bool:
    """OpenSearch's own 404 for an index or alias that does not exist."""
    return exc.error == "index_not_found_exception"


def _reason(exc: TransportError) -> str:
    """OpenSearch's one-line explanation of an error."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    return str(error.get("reason", exc.error) if isinstance(error, dict) else exc.error)


def _opensearch_404(exc: NotFoundError) -> bool:
    """A 404 from OpenSearch itself (no such index, alias or document), not from a proxy or
    another server at the URL: those carry no OpenSearch body."""
    return isinstance(exc.info, dict) and bool({"status", "_index", "found"} & exc.info.keys())


def _mapping_problems(expected: dict[str, Any], actual: dict[str, Any], prefix: str) -> list[str]:
    """Fields of `expected` that `actual` lacks or maps to another type."""
    problems = []
    for name, spec in expected.get("properties", {}).items():
        path = f"{prefix}{name}"
        have = actual.get("properties", {}).get(name)
        if have is None:
            problems.append(f"{path} missing")
            continue
        want_type, have_type = spec.get("type", "object"), have.get("type", "object")
        if want_type != have_type:
            problems.append(f"{path} is {have_type}, not {want_type}")
            continue
        for sub, sub_spec in spec.get("fields", {}).items():
            have_sub = have.get("fields", {}).get(sub)
            if have_sub is None or have_sub.get("type") != sub_spec["type"]:
                problems.append(f"{path}.{sub} missing or not {sub_spec['type']}")
        problems += _mapping_problems(spec, have, path + ".")
    return problems


class SearchIndex:
    """The alias `settings.index` and the versioned index behind it."""

    def __init__(self, settings: Settings, client: OpenSearch | None = None) -> None:
        self.settings = settings
        self.alias = settings.index
        self._url = _redacted(_parse_url(settings.opensearch_url))
        self._client = client if client is not None else _new_client(settings)
        self._ensured: str | None = None

    # -- errors

    @contextmanager
    def _calling(self) -> Iterator[None]:
        """Turn the client's transport failures into rudolph's errors, with what to do."""
        try:
            yield
        except OpenSearchConnectionError as exc:
            raise IndexUnavailableError(
                f"OpenSearch at {self._url} cannot be reached ({exc.error or exc.info}): "
                "start it with `rudolph dev` or set RUDOLPH_OPENSEARCH_URL"
            ) from exc
        except (AuthenticationException, AuthorizationException) as exc:
            raise ConfigurationError(
                f"OpenSearch at {self._url} refused the request ({exc.status_code} {exc.error}): "
                "check RUDOLPH_OPENSEARCH_AUTH and the credentials it uses"
            ) from exc
        except NotFoundError as exc:
            if _opensearch_404(exc):
                raise
            raise ConfigurationError(
                f"{self._url} answered 404 ({exc.error or 'no body'}) where OpenSearch was "
                "expected: check that RUDOLPH_OPENSEARCH_URL is the OpenSearch endpoint"
            ) from exc
        except TransportError as exc:
            if exc.status_code in (429, 502, 503, 504):
                raise IndexUnavailableError(
                    f"OpenSearch at {self._url} is busy or down ({exc.status_code} {exc.error}): "
                    "try again later"
                ) from exc
            raise

    # -- the index and its alias

    def _aliased_index(self) -> str | None:
        """The concrete index the alias writes to, None when there is no alias."""
        if not self._client.indices.exists_alias(name=self.alias):  # HEAD: no 404 logged
            return None
        try:
            aliases = self._client.indices.get_alias(name=self.alias)
        except NotFoundError as exc:
            if _opensearch_404(exc):
                return None
            raise
        if len(aliases) == 1:
            return str(next(iter(aliases)))
        writers = [
            name
            for name, entry in aliases.items()
            if entry.get("aliases", {}).get(self.alias, {}).get("is_write_index")
        ]
        if len(writers) != 1:
            raise ConfigurationError(
                f"alias {self.alias!r} points at {sorted(aliases)} with no single write index: "
                f"leave it on one index, or mark one with is_write_index"
            )
        return writers[0]

    def _check_mapping(self, concrete: str) -> None:
        mappings = self._client.indices.get_mapping(index=concrete)[concrete]["mappings"]
        problems = _mapping_problems(MAPPING, mappings, "")
        if problems:
            raise ConfigurationError(
                f"index {concrete!r} behind alias {self.alias!r} does not have rudolph's mapping "
                f"({'; '.join(problems)}): point RUDOLPH_INDEX at a new name, or reindex into "
                "a new version and move the alias"
            )

    def _next_free_name(self) -> str:
        version = 1
        while self._client.indices.exists(index=f"{self.alias}-v{version}"):
            version += 1
        return f"{self.alias}-v{version}"

    def ensure(self) -> str:
        """Create the versioned index and its alias unless the alias exists; the index's name.

        Safe to call from many processes at once: the index and its alias are created in one
        request, and a process that loses the race uses the winner's index.
        """
        with self._calling():
            for _ in range(5):
                concrete = self._aliased_index()
                if concrete is not None:
                    self._check_mapping(concrete)
                    self._ensured = concrete
                    return concrete
                if self._client.indices.exists(index=self.alias):
                    raise ConfigurationError(
                        f"{self.alias!r} is an index, not an alias: set RUDOLPH_INDEX to another "
                        f"name, or reindex it into {self.alias}-v1 and replace it by an alias"
                    )
                name = self._next_free_name()
                body = {
                    "settings": INDEX_SETTINGS,
                    "mappings": MAPPING,
                    "aliases": {self.alias: {"is_write_index": True}},
                }
                try:
                    self._client.indices.create(index=name, body=body)
                except RequestError as exc:
                    if exc.error == "invalid_index_name_exception":
                        raise ConfigurationError(
                            f"RUDOLPH_INDEX={self.alias!r} cannot name an index ({_reason(exc)}): "
                            "use lowercase letters, digits and -, not starting with - or _"
                        ) from exc
                    if exc.error != "resource_already_exists_exception":
                        raise
                    continue  # another process created it: look again
                self._ensured = name
                return name
        raise IndexUnavailableError(
            f"could not create an index for alias {self.alias!r} at {self._url}: other processes "
            "keep creating indices of that name; try again"
        )

    # -- documents

    def put(self, record: Record, revision: int | None = None) -> bool:
        """Index a record, replacing the document of the same image if any; False when a
        newer revision is already indexed.

        `revision` is the record's revision in the table: with it the write uses external
        versioning, so of two racing writes the newer one wins whatever their order.
        The first write of a SearchIndex creates the index if need be (see `ensure`), and so
        does a write that finds the alias gone.
        """
        document = to_document(record)
        params = {"require_alias": "true"}
        if revision is not None:
            params |= {"version": str(revision), "version_type": "external"}
        for attempt in (1, 2):
            if self._ensured is None:
                self.ensure()
            with self._calling():
                try:
                    # require_alias: a write never auto-creates an index named like the alias.
                    self._client.index(
                        index=self.alias, id=record.image_id, body=document, params=params
                    )
                    return True
                except ConflictError:
                    return False
                except NotFoundError as exc:
                    if not _no_index(exc) or attempt == 2:
                        raise
                    self._ensured = None  # the alias was removed since: make it again
        raise AssertionError("unreachable: the second attempt returns or raises")

    def delete(self, image_id: str, revision: int | None = None) -> None:
        """Remove an image's document; nothing happens if there is none, or (with
        `revision`) if a newer revision is indexed."""
        params = {"version": str(revision), "version_type": "external"} if revision else {}
        with self._calling():
            try:
                self._client.delete(index=self.alias, id=image_id, params=params)
            except ConflictError:
                return
            except NotFoundError as exc:
                if not _opensearch_404(exc):
                    raise

    def get(self, image_id: str) -> dict[str, Any] | None:
        """The document of an image (see `to_document`), None if it is not indexed."""
        with self._calling():
            try:
                found = self._client.get(index=self.alias, id=image_id)
            except NotFoundError as exc:
                if _opensearch_404(exc):
                    return None
                raise
        source: dict[str, Any] = found["_source"]
        return source

    def count(self, query: dict[str, Any] | None = None) -> int:
        """How many searchable documents (match `query`, a query DSL clause, when given);
        0 when the index does not exist yet."""
        body = {"query": query} if query else None
        with self._calling():
            try:
                return int(self._client.count(index=self.alias, body=body)["count"])
            except NotFoundError as exc:
                if _no_index(exc):
                    return 0
                raise

    def searchable(self, image_id: str) -> bool:
        """Whether a search can find this image yet (a get sees writes before a refresh)."""
        return self.count({"ids": {"values": [image_id]}}) > 0

    def refresh(self) -> None:
        """Make every write so far visible to search (tests; writes show within ~1 s anyway)."""
        with self._calling():
            self._client.indices.refresh(index=self.alias)

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """Images whose labels, aliases, parents, OCR text or key match `query`, best first.

        An exact label (any case, any accents) beats a plural or other form of it, which beats
        an alias, then a parent category, then a phrase of OCR text, then words of the key.
        """
        query = " ".join(query.split())
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        if len(query) > MAX_QUERY_LENGTH:
            raise ValueError(
                f"the query is {len(query)} characters long: use at most {MAX_QUERY_LENGTH}"
            )
        if not query:
            return []
        with self._calling():
            try:
                response = self._client.search(index=self.alias, body=search_body(query, limit))
            except NotFoundError as exc:
                if _no_index(exc):
                    return []  # nothing indexed yet
                raise
        return [
            SearchHit(
                image_id=hit["_id"],
                bucket=hit["_source"].get("bucket"),
                key=hit["_source"].get("key"),
                score=float(hit["_score"] or 0.0),
                matched=_reasons(hit, query),
            )
            for hit in response["hits"]["hits"]
        ]

    # -- rebuilding from the table

    def _versions(self) -> dict[str, int]:
        """Every `<alias>-vN` index that exists, with its N."""
        pattern = re.compile(rf"^{re.escape(self.alias)}-v(\d+)$")
        try:
            found = self._client.indices.get_alias(index=f"{self.alias}-v*")
        except NotFoundError as exc:
            if _opensearch_404(exc):
                return {}
            raise
        return {name: int(m.group(1)) for name in found if (m := pattern.match(name))}

    def _behind_alias(self) -> list[str]:
        """The indices the alias points at now (several only if someone made it so)."""
        if not self._client.indices.exists_alias(name=self.alias):
            if self._client.indices.exists(index=self.alias):
                raise ConfigurationError(
                    f"{self.alias!r} is an index, not an alias: set RUDOLPH_INDEX to another "
                    "name, or delete that index and run `rudolph reindex` again"
                )
            return []
        try:
            return sorted(self._client.indices.get_alias(name=self.alias))
        except NotFoundError as exc:
            if _opensearch_404(exc):
                return []
            raise

    def _create_next_version(self) -> str:
        """Create, without alias, the versioned index after the newest one; its name."""
        body = {"settings": INDEX_SETTINGS, "mappings": MAPPING}
        for _ in range(5):
            name = f"{self.alias}-v{max(self._versions().values(), default=0) + 1}"
            try:
                self._client.indices.create(index=name, body=body)
            except RequestError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise
                continue  # someone else took that name just now: the next one then
            return name
        raise IndexUnavailableError(
            f"could not create a new version of {self.alias!r}: other processes keep creating "
            "indices of that name; try again"
        )

    def _bulk(self, concrete: str, records: Iterable[Record], report: RebuildReport) -> set[str]:
        """Index into `concrete` the records that have a document; their ids."""
        from opensearchpy.helpers import streaming_bulk

        indexed: set[str] = set()

        def actions() -> Iterator[dict[str, Any]]:
            for record in records:
                report.read += 1
                if record.status not in INDEXED_STATUSES:
                    report.skipped += 1
                    continue
                yield {"_id": record.image_id, "_source": to_document(record)}

        for ok, item in streaming_bulk(
            self._client,
            actions(),
            index=concrete,  # POST /<index>/_bulk: a request IAM can scope to the index
            chunk_size=BULK_CHUNK,
            max_retries=3,  # 429s, with backoff
            raise_on_error=False,
        ):
            result = item.get("index", {})
            if ok:
                indexed.add(str(result.get("_id")))
            else:
                error = result.get("error")
                reason = error.get("reason", error) if isinstance(error, dict) else error
                report.failed.append((str(result.get("_id")), str(reason)))
        report.indexed += len(indexed)
        return indexed

    def _swap(self, new: str) -> list[str]:
        """Point the alias at `new` alone, in one request; the indices it left."""
        for _ in range(3):
            old = [name for name in self._behind_alias() if name != new]
            actions: list[dict[str, Any]] = [
                {"remove": {"index": name, "alias": self.alias}} for name in old
            ]
            actions.append({"add": {"index": new, "alias": self.alias, "is_write_index": True}})
            try:
                self._client.indices.update_aliases(body={"actions": actions})
            except NotFoundError as exc:
                if not _opensearch_404(exc):
                    raise
                continue  # an old index or its alias went away meanwhile: look again
            return old
        raise IndexUnavailableError(
            f"could not move alias {self.alias!r} to {new}: the indices behind it keep "
            "changing; run `rudolph reindex` again"
        )

    def _catch_up(
        self,
        concrete: str,
        records: Iterable[Record],
        indexed: set[str],
        since: datetime,
        report: RebuildReport,
    ) -> None:
        """Copy again what changed in the table while the first pass ran; remove what went."""
        from opensearchpy.helpers import streaming_bulk

        present: set[str] = set()

        def changed(record: Record) -> bool:
            if record.image_id not in indexed:
                return True  # new, or refused by the first pass: try (again)
            if not record.analyzed_at:
                return False
            try:
                when = datetime.fromisoformat(record.analyzed_at)
            except ValueError:
                return True
            return (when if when.tzinfo else when.replace(tzinfo=UTC)) >= since

        def actions() -> Iterator[dict[str, Any]]:
            for record in records:
                present.add(record.image_id)
                if record.status in INDEXED_STATUSES and changed(record):
                    yield {"_id": record.image_id, "_source": to_document(record)}
            # Deleted during the rebuild: their delete went to the old index.
            for gone in indexed - present:
                yield {"_op_type": "delete", "_id": gone}

        for ok, item in streaming_bulk(
            self._client,
            actions(),
            index=concrete,
            chunk_size=BULK_CHUNK,
            max_retries=3,
            raise_on_error=False,
            raise_on_exception=True,
        ):
            op, result = next(iter(item.items()))
            if op == "delete":
                report.removed += ok  # a 404: the live delete reached the new index first
            elif ok:
                report.caught_up += 1
                report.failed = [f for f in report.failed if f[0] != result.get("_id")]
            else:
                error = result.get("error")
                reason = error.get("reason", error) if isinstance(error, dict) else error
                failed = (str(result.get("_id")), str(reason))
                if failed not in report.failed:
                    report.failed.append(failed)

    def rebuild_from(
        self,
        records: Iterable[Record],
        again: Callable[[], Iterable[Record]] | None = None,
        keep_old: bool = False,
    ) -> RebuildReport:
        """Rebuild the index from `records` (the table's) into a new version, then move the
        alias to it and delete the old one (unless `keep_old`).

        1. A new `<alias>-vN` (after the newest existing N) is created with the current
           MAPPING and INDEX_SETTINGS, beside the index searches use meanwhile.
        2. Every record with a document (status done, partial or failed) is bulk-indexed
           into it, `_id = image_id`; pending records and deletion markers are skipped.
        3. The new index is refreshed, then the alias is moved in one `_aliases` request
           (remove from the old, add to the new): searches never see a missing index.
        4. Writes meanwhile went through the alias to the old index. `again()`, when given,
           reads the table a second time after the move: records analysed since the rebuild
           started (less CATCH_UP_MARGIN for clock skew), or missing from the first pass, are
           copied again, and documents of records deleted meanwhile are removed. A record
           written again in the instant between that read and its copy may keep the copied
           document until its next write; running reindex again settles it.
        5. The old index is deleted, unless `keep_old`.

        If anything fails before the alias moves, the new index is deleted and searches go
        on with the old one.
        """
        started = datetime.now(UTC)
        with self._calling():
            self._behind_alias()  # refuses an index named like the alias, before any work
            new = self._create_next_version()
            report = RebuildReport(new=new)
            try:
                indexed = self._bulk(new, records, report)
                self._client.indices.refresh(index=new)
                report.old = self._swap(new)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._client.indices.delete(index=new)
                raise
            self._ensured = new
            if again is not None:
                self._catch_up(new, again(), indexed, started - CATCH_UP_MARGIN, report)
                self._client.indices.refresh(index=new)
            if report.old and not keep_old:
                for name in report.old:
                    try:
                        self._client.indices.delete(index=name)
                    except NotFoundError as exc:
                        if not _opensearch_404(exc):
                            raise
                report.old_deleted = True
        return report
