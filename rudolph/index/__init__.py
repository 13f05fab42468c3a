"""The OpenSearch index of records: what `rudolph search` asks.

One concern per module: `client` (connecting), `failures` (what OpenSearch's errors mean),
`mapping` (settings, mapping, synonyms analysis), `synonyms` (the rules from the taxonomy),
`documents` (record -> document), `dsl` (a parsed query -> query DSL), `search` (request, pages,
facets, cursors, reasons), `live` (the alias and the index behind it: ensure, write, read,
search), `rebuild` (a new version from the table, then the alias moved).
"""

from rudolph.index.client import client
from rudolph.index.documents import to_document
from rudolph.index.live import SearchIndex
from rudolph.index.mapping import INDEX_SETTINGS, MAPPING
from rudolph.index.rebuild import (
    BULK_CHUNK,
    CATCH_UP_MARGIN,
    INDEXED_STATUSES,
    RebuildReport,
    rebuild,
)
from rudolph.index.search import MAX_LIMIT, Facets, SearchHit, SearchPage, SortOrder
from rudolph.query import MAX_QUERY_LENGTH, QuerySyntaxError

__all__ = [
    "BULK_CHUNK",
    "CATCH_UP_MARGIN",
    "INDEXED_STATUSES",
    "INDEX_SETTINGS",
    "MAPPING",
    "MAX_LIMIT",
    "MAX_QUERY_LENGTH",
    "Facets",
    "QuerySyntaxError",
    "RebuildReport",
    "SearchHit",
    "SearchIndex",
    "SearchPage",
    "SortOrder",
    "client",
    "rebuild",
    "to_document",
]
