"""`rudolph reindex`: the index rebuilt from the table (moto's DynamoDB, OpenSearch 2.5.0)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from opensearchpy import OpenSearch

from rudolph.cli import main
from rudolph.errors import ConfigurationError
from rudolph.events import ObjectRef
from rudolph.index import INDEX_SETTINGS, MAPPING, SearchIndex, rebuild
from rudolph.record import Box, Emotion, Face, Label, Record, Smile, image_id
from rudolph.settings import Settings, get_settings
from rudolph.store import RecordStore

BUCKET = "reindeer-dropzone"
LONG_AGO = "2024-05-01T12:00:03.250000+00:00"
COUNT = 30


def make_record(n: int, label: str | None = None, analyzed_at: str = LONG_AGO) -> Record:
    key = f"herd/{n:02d}.jpg"
    return Record(
        image_id=image_id(BUCKET, key),
        bucket=BUCKET,
        key=key,
        size=1000 + n,
        content_type="image/jpeg",
        width=640,
        height=480,
        status=("done", "partial", "failed")[n % 3],
        labels=[Label(name=label or f"Reindeer{n:02d}", confidence=90.0, parents=["Herd"])],
        errors={"faces": "boom"} if n % 3 else {},
        event_time="2024-05-01T12:00:00.000Z",
        analyzed_at=analyzed_at,
    )


RECORDS = [make_record(n) for n in range(COUNT)]


@pytest.fixture
def settings(moto_url: str, opensearch_url: str) -> Settings:
    name = f"t-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        aws_endpoint_url=moto_url, table=name, opensearch_url=opensearch_url, index=name
    )
    store = RecordStore(settings)
    store.ensure()
    for record in RECORDS:
        store.put(record)
    return settings


@pytest.fixture
def raw(opensearch_url: str) -> OpenSearch:
    return OpenSearch(opensearch_url)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "RUDOLPH_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "RUDOLPH_TABLE": settings.table,
        "RUDOLPH_OPENSEARCH_URL": settings.opensearch_url,
        "RUDOLPH_INDEX": settings.index,
    }.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _behind(raw: OpenSearch, alias: str) -> list[str]:
    return sorted(raw.indices.get_alias(name=alias)) if raw.indices.exists_alias(name=alias) else []


def _all_found(index: SearchIndex, records: list[Record]) -> None:
    for record in records:
        label = record.labels[0].name
        hits = index.search(label.lower()).hits
        assert [hit.image_id for hit in hits] == [record.image_id], label


def _broken(settings: Settings, raw: OpenSearch) -> SearchIndex:
    """An index that missed writes: 20 of 30 records indexed, then 5 of those lost."""
    index = SearchIndex(settings)
    for record in RECORDS[:20]:
        index.put(record)
    for record in RECORDS[:5]:
        raw.delete(index=f"{settings.index}-v1", id=record.image_id)
    index.refresh()
    assert index.count() == 15
    return index


# -- the command


@pytest.mark.usefixtures("cli_env")
def test_reindex_repairs_an_index_that_missed_writes(settings: Settings, raw: OpenSearch) -> None:
    index = _broken(settings, raw)
    alias = settings.index

    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    assert f"records read      {COUNT} (0 skipped" in result.stdout
    assert f"documents indexed {COUNT}" in result.stdout
    assert f"alias             {alias}: {alias}-v1 -> {alias}-v2" in result.stdout
    assert "old index         deleted" in result.stdout
    assert _behind(raw, alias) == [f"{alias}-v2"]
    assert not raw.indices.exists(index=f"{alias}-v1")
    assert index.count() == COUNT
    _all_found(index, RECORDS)
    assert index.count({"term": {"labels": "Herd"}}) == 0  # a parent, not a label
    assert len(index.search("herd", limit=100).hits) == COUNT

    # And again: v2 -> v3.
    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    assert f"{alias}-v2 -> {alias}-v3" in result.stdout
    assert _behind(raw, alias) == [f"{alias}-v3"]
    assert not raw.indices.exists(index=f"{alias}-v2")
    assert SearchIndex(settings).count() == COUNT


@pytest.mark.usefixtures("cli_env")
def test_reindex_after_the_whole_index_was_deleted(settings: Settings, raw: OpenSearch) -> None:
    _broken(settings, raw)
    raw.indices.delete(index=f"{settings.index}-v1")  # and its alias with it
    assert _behind(raw, settings.index) == []

    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    assert f"{settings.index}: (no index) -> {settings.index}-v1" in result.stdout
    index = SearchIndex(settings)
    assert _behind(raw, settings.index) == [f"{settings.index}-v1"]
    assert index.count() == COUNT
    _all_found(index, RECORDS)


@pytest.mark.usefixtures("cli_env")
def test_keep_old_keeps_the_previous_index_without_the_alias(
    settings: Settings, raw: OpenSearch
) -> None:
    _broken(settings, raw)
    result = CliRunner().invoke(main, ["reindex", "--keep-old"])
    assert result.exit_code == 0, result.output
    assert "old index         kept" in result.stdout
    alias = settings.index
    assert _behind(raw, alias) == [f"{alias}-v2"]
    assert raw.indices.exists(index=f"{alias}-v1")
    assert raw.count(index=f"{alias}-v1")["count"] == 15
    # The next version comes after every existing one.
    result = CliRunner().invoke(main, ["reindex"])
    assert f"{alias}-v2 -> {alias}-v3" in result.stdout


@pytest.mark.usefixtures("cli_env")
def test_pending_records_and_deletion_markers_have_no_document(settings: Settings) -> None:
    store = RecordStore(settings)
    store.mark_pending(ObjectRef(bucket=BUCKET, key="new/upload.jpg", etag="e1"))
    gone = ObjectRef(bucket=BUCKET, key="herd/gone.jpg", etag="e2")
    assert store.tombstone(gone) is not None  # a marker, which scan() leaves out

    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    assert f"records read      {COUNT + 1} (1 skipped" in result.stdout
    assert f"documents indexed {COUNT}" in result.stdout
    index = SearchIndex(settings)
    assert index.count() == COUNT
    assert index.get(image_id(BUCKET, "new/upload.jpg")) is None
    assert index.get(image_id(BUCKET, "herd/gone.jpg")) is None


# -- the library


def test_statuses_without_a_document_are_skipped(settings: Settings) -> None:
    # A status records may gain later (model_construct: the model does not know it yet).
    deleted = Record.model_construct(**{**make_record(99).__dict__, "status": "deleted"})
    report = rebuild(SearchIndex(settings), [*RECORDS, deleted])
    assert (report.read, report.indexed, report.skipped) == (COUNT + 1, COUNT, 1)
    assert SearchIndex(settings).get(deleted.image_id) is None


def test_the_alias_moves_in_one_request(
    settings: Settings, raw: OpenSearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    _broken(settings, raw)
    index = SearchIndex(settings)
    calls: list[dict[str, Any]] = []
    real = index.client.indices.update_aliases

    def spy(body: dict[str, Any], **kwargs: Any) -> Any:
        calls.append(body)
        return real(body=body, **kwargs)

    monkeypatch.setattr(index.client.indices, "update_aliases", spy)
    report = rebuild(index, RecordStore(settings).scan())
    alias = settings.index
    assert calls == [
        {
            "actions": [
                {"remove": {"index": f"{alias}-v1", "alias": alias}},
                {"add": {"index": f"{alias}-v2", "alias": alias, "is_write_index": True}},
            ]
        }
    ]
    assert (report.old, report.new, report.old_deleted) == ([f"{alias}-v1"], f"{alias}-v2", True)


def test_writes_during_the_rebuild_are_caught_up(settings: Settings, raw: OpenSearch) -> None:
    """The aggregate keeps writing through the alias (to the old index) while the rebuild
    reads the table; the second pass brings those writes into the new index."""
    store = RecordStore(settings)
    index = SearchIndex(settings)
    for record in RECORDS:
        index.put(record)
    live = SearchIndex(settings)  # the fleet's own writer
    now = datetime.now(UTC).isoformat()
    changed = make_record(3, label="Rudolph", analyzed_at=now)
    added = make_record(77, label="Comet", analyzed_at=now)
    removed = RECORDS[4]

    def first_pass() -> Iterator[Record]:
        for n, record in enumerate(store.scan()):
            yield record
            if n == COUNT // 2:  # halfway through, the fleet writes
                for write in (changed, added):
                    store.put(write)
                    live.put(write)
                store.delete(removed.image_id)
                live.delete(removed.image_id)

    report = rebuild(index, first_pass(), again=store.scan)
    assert report.read == COUNT
    assert report.caught_up >= 2 and report.removed == 1
    assert _behind(raw, settings.index) == [f"{settings.index}-v2"]
    assert index.count() == COUNT  # 30 - 1 removed + 1 added
    assert [h.image_id for h in index.search("rudolph").hits] == [changed.image_id]
    assert index.search("reindeer03").hits == []
    assert [h.image_id for h in index.search("comet").hits] == [added.image_id]
    assert index.get(removed.image_id) is None


def test_a_failure_before_the_swap_leaves_the_old_index_in_place(
    settings: Settings, raw: OpenSearch
) -> None:
    _broken(settings, raw)

    def failing() -> Iterator[Record]:
        yield from RECORDS[:10]
        raise RuntimeError("the table went away")

    with pytest.raises(RuntimeError, match="went away"):
        rebuild(SearchIndex(settings), failing())
    assert _behind(raw, settings.index) == [f"{settings.index}-v1"]
    assert not raw.indices.exists(index=f"{settings.index}-v2")
    assert SearchIndex(settings).count() == 15


def test_an_index_named_like_the_alias_is_refused(settings: Settings, raw: OpenSearch) -> None:
    raw.indices.create(index=settings.index)
    with pytest.raises(ConfigurationError, match="is an index, not an alias"):
        rebuild(SearchIndex(settings), RECORDS)
    assert not raw.indices.exists(index=f"{settings.index}-v1")


@pytest.mark.usefixtures("cli_env")
def test_an_index_with_older_settings_says_reindex_and_reindex_builds_the_new_ones(
    settings: Settings, raw: OpenSearch
) -> None:
    alias = settings.index
    older = copy.deepcopy(MAPPING)
    older["_meta"] = {"rudolph_schema": "before-synonyms"}
    without = copy.deepcopy(INDEX_SETTINGS)  # the same fields, no synonyms yet
    del without["analysis"]["filter"]["rudolph_synonyms"]
    del without["analysis"]["analyzer"]["rudolph_synonyms"]
    raw.indices.create(
        index=f"{alias}-v1",
        body={"settings": without, "mappings": older, "aliases": {alias: {}}},
    )
    index = SearchIndex(settings)
    with pytest.raises(ConfigurationError, match="run `rudolph reindex`"):
        index.put(RECORDS[0])

    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    assert _behind(raw, alias) == [f"{alias}-v2"]
    analysis = raw.indices.get_settings(index=f"{alias}-v2")[f"{alias}-v2"]["settings"]["index"]
    assert analysis["analysis"]["filter"]["rudolph_synonyms"]["type"] == "synonym_graph"
    index = SearchIndex(settings)
    assert index.ensure() == f"{alias}-v2"  # no complaint now
    index.put(make_record(99, label="Cat"))
    index.refresh()
    assert [hit.key for hit in index.search("kittens").hits] == ["herd/99.jpg"]


@pytest.mark.usefixtures("cli_env")
def test_an_index_from_before_face_attributes_is_rebuilt_with_them(
    settings: Settings, raw: OpenSearch
) -> None:
    """Face attributes added fields to the mapping: an index built before them is refused,
    naming them, and `rudolph reindex` rebuilds it from the table, smiles searchable."""
    alias = settings.index
    older = copy.deepcopy(MAPPING)
    for field in ("smiling_faces", "unsmiling_faces", "face_emotions", "face_details"):
        del older["properties"][field]
    older["_meta"] = {"rudolph_schema": "before-face-attributes"}
    raw.indices.create(
        index=f"{alias}-v1",
        body={"settings": INDEX_SETTINGS, "mappings": older, "aliases": {alias: {}}},
    )
    smiling = make_record(98, label="Portrait").model_copy(
        update={
            "faces": [
                Face(
                    confidence=99.0,
                    box=Box(left=0.1, top=0.1, width=0.3, height=0.4),
                    smile=Smile(value=True, confidence=97.0),
                    emotions=[Emotion(type="HAPPY", confidence=95.0)],
                )
            ]
        }
    )
    RecordStore(settings).put(smiling)
    with pytest.raises(ConfigurationError, match=r"face_details missing.*run `rudolph reindex`"):
        SearchIndex(settings).put(smiling)

    result = CliRunner().invoke(main, ["reindex"])
    assert result.exit_code == 0, result.output
    assert _behind(raw, alias) == [f"{alias}-v2"]
    index = SearchIndex(settings)
    assert [hit.key for hit in index.search("smile:yes").hits] == [smiling.key]
    assert [hit.key for hit in index.search("emotion:happy portrait").hits] == [smiling.key]
