"""Rebuilding the index from the table (`rudolph reindex`): a new versioned index beside the
live one, filled from the records, then the alias moved to it in one request.

The live index (rudolph.index.live) keeps serving searches and writes while this runs; a second
pass after the move copies what the fleet wrote meanwhile.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opensearchpy import NotFoundError, RequestError

from rudolph.errors import ConfigurationError, IndexUnavailableError
from rudolph.index.documents import to_document
from rudolph.index.failures import opensearch_404
from rudolph.index.live import SearchIndex
from rudolph.index.mapping import INDEX_SETTINGS, MAPPING
from rudolph.record import Record
from rudolph.vocabulary import FINAL_STATUSES

#: Statuses of records that have a document: the final ones; `pending` (and any later status,
#: such as a deletion marker) is left out of a rebuild.
INDEXED_STATUSES = frozenset(FINAL_STATUSES)
#: Documents per bulk request of a rebuild.
BULK_CHUNK = 500
#: The catch-up pass of a rebuild re-copies records analysed since this long before the
#: rebuild started (the workers' clocks are not this machine's).
CATCH_UP_MARGIN = timedelta(seconds=60)


@dataclass
class RebuildReport:
    """What `rebuild` did."""

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


def _versions(index: SearchIndex) -> dict[str, int]:
    """Every `<alias>-vN` index that exists, with its N."""
    pattern = re.compile(rf"^{re.escape(index.alias)}-v(\d+)$")
    try:
        found = index.client.indices.get_alias(index=f"{index.alias}-v*")
    except NotFoundError as exc:
        if opensearch_404(exc):
            return {}
        raise
    return {name: int(m.group(1)) for name in found if (m := pattern.match(name))}


def _behind_alias(index: SearchIndex) -> list[str]:
    """The indices the alias points at now (several only if someone made it so)."""
    if not index.client.indices.exists_alias(name=index.alias):
        if index.client.indices.exists(index=index.alias):
            raise ConfigurationError(
                f"{index.alias!r} is an index, not an alias: set RUDOLPH_INDEX to another "
                "name, or delete that index and run `rudolph reindex` again"
            )
        return []
    try:
        return sorted(index.client.indices.get_alias(name=index.alias))
    except NotFoundError as exc:
        if opensearch_404(exc):
            return []
        raise


def _create_next_version(index: SearchIndex) -> str:
    """Create, without alias, the versioned index after the newest one; its name."""
    body = {"settings": INDEX_SETTINGS, "mappings": MAPPING}
    for _ in range(5):
        name = f"{index.alias}-v{max(_versions(index).values(), default=0) + 1}"
        try:
            index.client.indices.create(index=name, body=body)
        except RequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
            continue  # someone else took that name just now: the next one then
        return name
    raise IndexUnavailableError(
        f"could not create a new version of {index.alias!r}: other processes keep creating "
        "indices of that name; try again"
    )


def _refusal(result: dict[str, Any]) -> tuple[str, str]:
    """(image id, why) of a document a bulk request refused."""
    error = result.get("error")
    why = error.get("reason", error) if isinstance(error, dict) else error
    return str(result.get("_id")), str(why)


def _bulk(
    index: SearchIndex, concrete: str, records: Iterable[Record], report: RebuildReport
) -> set[str]:
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
        index.client,
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
            report.failed.append(_refusal(result))
    report.indexed += len(indexed)
    return indexed


def _swap(index: SearchIndex, new: str) -> list[str]:
    """Point the alias at `new` alone, in one request; the indices it left."""
    for _ in range(3):
        old = [name for name in _behind_alias(index) if name != new]
        actions: list[dict[str, Any]] = [
            {"remove": {"index": name, "alias": index.alias}} for name in old
        ]
        actions.append({"add": {"index": new, "alias": index.alias, "is_write_index": True}})
        try:
            index.client.indices.update_aliases(body={"actions": actions})
        except NotFoundError as exc:
            if not opensearch_404(exc):
                raise
            continue  # an old index or its alias went away meanwhile: look again
        return old
    raise IndexUnavailableError(
        f"could not move alias {index.alias!r} to {new}: the indices behind it keep "
        "changing; run `rudolph reindex` again"
    )


def _catch_up(
    index: SearchIndex,
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
        index.client,
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
            failed = _refusal(result)
            if failed not in report.failed:
                report.failed.append(failed)


def rebuild(
    index: SearchIndex,
    records: Iterable[Record],
    again: Callable[[], Iterable[Record]] | None = None,
    keep_old: bool = False,
) -> RebuildReport:
    """Rebuild `index` from `records` (the table's) into a new version, then move the alias to
    it and delete the old one (unless `keep_old`).

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
    with index.calling():
        _behind_alias(index)  # refuses an index named like the alias, before any work
        new = _create_next_version(index)
        report = RebuildReport(new=new)
        try:
            indexed = _bulk(index, new, records, report)
            index.client.indices.refresh(index=new)
            report.old = _swap(index, new)
        except BaseException:
            with contextlib.suppress(Exception):
                index.client.indices.delete(index=new)
            raise
        if again is not None:
            _catch_up(index, new, again(), indexed, started - CATCH_UP_MARGIN, report)
            index.client.indices.refresh(index=new)
        if report.old and not keep_old:
            for name in report.old:
                try:
                    index.client.indices.delete(index=name)
                except NotFoundError as exc:
                    if not opensearch_404(exc):
                        raise
            report.old_deleted = True
    return report
