"""The live index: the alias `RUDOLPH_INDEX` that the fleet writes through and searches read,
and the versioned index behind it (created on first use, checked against MAPPING).

The index is an alias over a versioned index (`<alias>-v1`, `-v2`...), so a new mapping can be
built beside the old one and the alias moved (rudolph.index.rebuild). Documents are derived from
records (DynamoDB stays the source of truth), one per image with `_id = image_id`. Only
OpenSearch's documented REST API is used, so the same code runs on a real cluster, on Amazon
OpenSearch Service (SigV4) and on the local dev server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opensearchpy import ConflictError, NotFoundError, OpenSearch, RequestError

from rudolph.errors import (
    ConfigurationError,
    IndexUnavailableError,
    PeopleOffError,
    SearchRefusedError,
)
from rudolph.index.client import _parse_url, _redacted
from rudolph.index.client import client as _new_client
from rudolph.index.documents import to_document
from rudolph.index.failures import as_rudolph_errors, no_index, opensearch_404, reason
from rudolph.index.mapping import INDEX_SETTINGS, MAPPING, mapping_problems
from rudolph.index.search import (
    EMPTY_FACETS,
    MAX_LIMIT,
    SORTS,
    SearchPage,
    SortOrder,
    decode_cursor,
    page_of,
    search_body,
)
from rudolph.query import parse
from rudolph.record import Record
from rudolph.settings import Settings


class SearchIndex:
    """The alias `settings.index` and the versioned index behind it."""

    def __init__(
        self,
        settings: Settings,
        client: OpenSearch | None = None,
        persons: Callable[[str], Sequence[str]] | None = None,
    ) -> None:
        self.settings = settings
        #: A `person:` value (a name or a person id) -> the images of that person
        #: (rudolph.people.People.image_ids_for); None when RUDOLPH_PEOPLE is off.
        self._persons = persons
        self.alias = settings.index
        #: The server's URL without credentials, for messages.
        self.url = _redacted(_parse_url(settings.opensearch_url))
        self.client = client if client is not None else _new_client(settings)
        self._ensured: str | None = None

    @contextmanager
    def calling(self) -> Iterator[None]:
        """Around requests to this index's server: its failures become rudolph's errors."""
        with as_rudolph_errors(self.url):
            yield

    # -- the index and its alias

    def _aliased_index(self) -> str | None:
        """The concrete index the alias writes to, None when there is no alias."""
        if not self.client.indices.exists_alias(name=self.alias):  # HEAD: no 404 logged
            return None
        try:
            aliases = self.client.indices.get_alias(name=self.alias)
        except NotFoundError as exc:
            if opensearch_404(exc):
                return None
            raise
        if len(aliases) == 1:
            return str(next(iter(aliases)))
        writers = [
            str(name)
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
        mappings = self.client.indices.get_mapping(index=concrete)[concrete]["mappings"]
        problems = mapping_problems(MAPPING, mappings)
        if problems:
            raise ConfigurationError(
                f"index {concrete!r} behind alias {self.alias!r} does not have rudolph's mapping "
                f"({'; '.join(problems)}): run `rudolph reindex` to build a new version with it "
                "and move the alias (or point RUDOLPH_INDEX at a new name)"
            )

    def _next_free_name(self) -> str:
        version = 1
        while self.client.indices.exists(index=f"{self.alias}-v{version}"):
            version += 1
        return f"{self.alias}-v{version}"

    def ensure(self) -> str:
        """Create the versioned index and its alias unless the alias exists; the index's name.

        Safe to call from many processes at once: the index and its alias are created in one
        request, and a process that loses the race uses the winner's index.
        """
        with self.calling():
            for _ in range(5):
                concrete = self._aliased_index()
                if concrete is not None:
                    self._check_mapping(concrete)
                    self._ensured = concrete
                    return concrete
                if self.client.indices.exists(index=self.alias):
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
                    self.client.indices.create(index=name, body=body)
                except RequestError as exc:
                    if exc.error == "invalid_index_name_exception":
                        raise ConfigurationError(
                            f"RUDOLPH_INDEX={self.alias!r} cannot name an index ({reason(exc)}): "
                            "use lowercase letters, digits and -, not starting with - or _"
                        ) from exc
                    if exc.error != "resource_already_exists_exception":
                        raise
                    continue  # another process created it: look again
                self._ensured = name
                return name
        raise IndexUnavailableError(
            f"could not create an index for alias {self.alias!r} at {self.url}: other processes "
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
            with self.calling():
                try:
                    # require_alias: a write never auto-creates an index named like the alias.
                    self.client.index(
                        index=self.alias, id=record.image_id, body=document, params=params
                    )
                    return True
                except ConflictError:
                    return False
                except NotFoundError as exc:
                    if not no_index(exc) or attempt == 2:
                        raise
                    self._ensured = None  # the alias was removed since: make it again
        raise AssertionError("unreachable: the second attempt returns or raises")

    def delete(self, image_id: str, revision: int | None = None) -> None:
        """Remove an image's document; nothing happens if there is none, or (with
        `revision`) if a newer revision is indexed."""
        params = {"version": str(revision), "version_type": "external"} if revision else {}
        with self.calling():
            try:
                self.client.delete(index=self.alias, id=image_id, params=params)
            except ConflictError:
                return
            except NotFoundError as exc:
                if not opensearch_404(exc):
                    raise

    def get(self, image_id: str) -> dict[str, Any] | None:
        """The document of an image (see `to_document`), None if it is not indexed."""
        with self.calling():
            try:
                found = self.client.get(index=self.alias, id=image_id)
            except NotFoundError as exc:
                if opensearch_404(exc):
                    return None
                raise
        source: dict[str, Any] = found["_source"]
        return source

    def count(self, query: dict[str, Any] | None = None) -> int:
        """How many searchable documents (match `query`, a query DSL clause, when given);
        0 when the index does not exist yet."""
        body = {"query": query} if query else None
        with self.calling():
            try:
                return int(self.client.count(index=self.alias, body=body)["count"])
            except NotFoundError as exc:
                if no_index(exc):
                    return 0
                raise

    def engine(self) -> str:
        """The search engine and its version, from `GET /`: 'opensearch 2.5.0'."""
        with self.calling():
            info = self.client.info()
        version = info.get("version") if isinstance(info, dict) else None
        if not isinstance(version, dict) or not version.get("number"):
            return "unknown"
        return f"{version.get('distribution', 'elasticsearch')} {version['number']}"

    def searchable(self, image_id: str) -> bool:
        """Whether a search can find this image yet (a get sees writes before a refresh)."""
        return self.count({"ids": {"values": [image_id]}}) > 0

    def refresh(self) -> None:
        """Make every write so far visible to search (tests; writes show within ~1 s anyway)."""
        with self.calling():
            self.client.indices.refresh(index=self.alias)

    def search(
        self,
        query: str,
        *,
        limit: int = 20,
        after: str | None = None,
        sort: SortOrder = "score",
        facets: bool = False,
    ) -> SearchPage:
        """One page of the images matching `query` (rudolph's search language, see
        rudolph.query), best first or by date, with why each matched.

        An empty query matches every image. For the next page pass the page's `next_after` as
        `after`: pages follow `search_after` on a total order (score or event time, then
        image_id), so documents added meanwhile never make a page repeat or skip an older hit.
        Raises QuerySyntaxError (a ValueError) for a query it cannot read, ValueError for a
        bad limit, sort or cursor.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        parsed = parse(query)
        values = decode_cursor(after, sort) if after else None
        wanted = parsed.persons()
        if wanted and self._persons is None:
            raise PeopleOffError("a person: search")
        persons = {value: self._persons(value) for value in wanted} if self._persons else {}
        body = search_body(parsed, limit, sort, values, facets, persons)
        with self.calling():
            try:
                response = self.client.search(index=self.alias, body=body)
            except NotFoundError as exc:
                if no_index(exc):  # nothing indexed yet
                    return SearchPage([], 0, None, EMPTY_FACETS if facets else None)
                raise
            except RequestError as exc:  # a 400: something the query or cursor carried
                raise SearchRefusedError(
                    f"the index refused this search ({reason(exc)}): change the query"
                    + (", or start again without the cursor" if after else "")
                ) from exc
        return page_of(response, parsed, limit, sort, facets)
