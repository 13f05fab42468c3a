"""The OpenSearch index of records: what `rudolph search` asks.

One concern per module: `client` (connecting), `mapping` (settings, mapping, synonyms analysis),
`synonyms` (the rules from the taxonomy), `documents` (record -> document), `dsl` (a parsed query
-> query DSL), `search` (request, pages, facets, cursors, reasons), `searchindex` (the alias and
its versioned indices: ensure, write, read, search, rebuild).
"""

from rudolph.index.client import client
from rudolph.index.documents import to_document
from rudolph.index.mapping import INDEX_SETTINGS, MAPPING
from rudolph.index.search import MAX_LIMIT, Facets, SearchHit, SearchPage, SortOrder
from rudolph.index.searchindex import (
    BULK_CHUNK,
    CATCH_UP_MARGIN,
    INDEXED_STATUSES,
    RebuildReport,
    SearchIndex,
)
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
    "to_document",
]
