"""The alias `RUDOLPH_INDEX` and the versioned index behind it: create, write, read, search,
and rebuild from the table.

The index is an alias over a versioned index (`<alias>-v1`, `-v2`...), so a new mapping can be
built beside the old one and the alias moved. Documents are derived from records (DynamoDB stays
the source of truth), one per image with `_id = image_id`. Only OpenSearch's documented REST API
is used, so the same code runs on a real cluster, on Amazon OpenSearch Service (SigV4) and on
the local dev server.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opensearchpy import (
    AuthenticationException,
    AuthorizationException,
    ConflictError,
    NotFoundError,
    OpenSearch,
    RequestError,
    TransportError,
)
from opensearchpy import ConnectionError as OpenSearchConnectionError

from rudolph.errors import (
    ConfigurationError,
    IndexUnavailableError,
    PeopleOffError,
    SearchRefusedError,
)
from rudolph.index.client import _parse_url, _redacted
from rudolph.index.client import client as _new_client
from rudolph.index.documents import to_document
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


# -- the index ----------------------------------------------------------------------------------


def _no_index(exc: NotFoundError) -> bool:
    """OpenSearch's own 404 for an index or alias that does not exist."""
    return exc.error == "index_not_found_exception"


def _reason(exc: TransportError) -> str:
    """OpenSearch's one-line explanation of an error."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if not isinstance(error, dict):
        return str(exc.error)
    # A search's own reason is "all shards failed"; the shard's root cause says what.
    causes = error.get("root_cause")
    if isinstance(causes, list) and causes and isinstance(causes[0], dict):
        cause = causes[0].get("reason")
        if cause:
            return str(cause)
    return str(error.get("reason", exc.error))


def _opensearch_404(exc: NotFoundError) -> bool:
    """A 404 from OpenSearch itself (no such index, alias or document), not from a proxy or
    another server at the URL: those carry no OpenSearch body."""
    return isinstance(exc.info, dict) and bool({"status", "_index", "found"} & exc.info.keys())


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
        problems = mapping_problems(MAPPING, mappings)
        if problems:
            raise ConfigurationError(
                f"index {concrete!r} behind alias {self.alias!r} does not have rudolph's mapping "
                f"({'; '.join(problems)}): run `rudolph reindex` to build a new version with it "
                "and move the alias (or point RUDOLPH_INDEX at a new name)"
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

    def engine(self) -> str:
        """The search engine and its version, from `GET /`: 'opensearch 2.5.0'."""
        with self._calling():
            info = self._client.info()
        version = info.get("version") if isinstance(info, dict) else None
        if not isinstance(version, dict) or not version.get("number"):
            return "unknown"
        return f"{version.get('distribution', 'elasticsearch')} {version['number']}"

    def searchable(self, image_id: str) -> bool:
        """Whether a search can find this image yet (a get sees writes before a refresh)."""
        return self.count({"ids": {"values": [image_id]}}) > 0

    def refresh(self) -> None:
        """Make every write so far visible to search (tests; writes show within ~1 s anyway)."""
        with self._calling():
            self._client.indices.refresh(index=self.alias)

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
        with self._calling():
            try:
                response = self._client.search(index=self.alias, body=body)
            except NotFoundError as exc:
                if _no_index(exc):  # nothing indexed yet
                    return SearchPage([], 0, None, EMPTY_FACETS if facets else None)
                raise
            except RequestError as exc:  # a 400: something the query or cursor carried
                raise SearchRefusedError(
                    f"the index refused this search ({_reason(exc)}): change the query"
                    + (", or start again without the cursor" if after else "")
                ) from exc
        return page_of(response, parsed, limit, sort, facets)

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
