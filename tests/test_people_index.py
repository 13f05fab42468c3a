"""People's items found through the table's sparse indexes (`person`, `persons`), on moto's
server: the tables `rudolph init` makes or upgrades carry them, no people path scans the table
(but the listing's scan of the `person` index), a merge racing new assignments loses and doubles
no face, a face the eventually consistent index shows the merge late still counts as the live
person's, and the people listing's reads do not grow with the persons."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from fastapi.testclient import TestClient

from rudolph.collection import FaceCollection
from rudolph.facespace import CollectionFaces
from rudolph.people import People, founder_id
from rudolph.peoplestore import Assignment, PeopleStore, person_key
from rudolph.record import Box, Face, Record, image_id
from rudolph.settings import Settings
from rudolph.store import GLOBAL_INDEXES, PENDING_INDEX_SPEC, RecordStore
from rudolph.web.app import create_app

BOX = Box(left=0.1, top=0.1, width=0.2, height=0.3)
#: Bounds every wait of the concurrent tests (seconds).
DEADLINE = 120


class _Quiet:
    """A face space with nothing to say: these tests are about the table."""

    def takes(self, face: Any) -> bool:
        return True

    def set_person(self, person_ids: Any, to: str) -> None:
        return

    def drop(self, image_id: str, faces: Any, whole: bool = False) -> None:
        return

    def drop_persons(self, person_ids: Any, faces: Any) -> None:
        return


class _LaggingIndex(PeopleStore):
    """The `person` index as DynamoDB may answer just after a write: some faces not shown."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.hidden: set[tuple[str, int]] = set()

    def _faces_of(self, person_id: str) -> Iterator[Assignment]:
        found = super()._faces_of(person_id)
        return (a for a in found if (a.image_id, a.face) not in self.hidden)


@pytest.fixture
def settings(moto_url: str) -> Settings:
    settings = Settings(aws_endpoint_url=moto_url, table=f"t-{uuid.uuid4().hex[:8]}", people="on")
    RecordStore(settings).ensure()
    return settings


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """(operation, index) of every DynamoDB call made in this process from now on."""
    calls: list[tuple[str, str | None]] = []
    original = BaseClient._make_api_call

    def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            calls.append((operation, params.get("IndexName")))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return calls


def _people(settings: Settings, store: PeopleStore | None = None) -> People:
    store = store or PeopleStore(settings)
    return People(settings, store=store, space=_Quiet())  # type: ignore[arg-type]


def _person(people: People, name: str) -> str:
    person = founder_id(image_id("b", name), 0)
    assert people.store.create_person(person)
    return person


def _assign(people: People, person: str, images: range, prefix: str = "img") -> list[str]:
    ids = [image_id("b", f"{prefix}-{n}.jpg") for n in images]
    for i in ids:
        people.store.assign(i, 0, person, "0A")
    return ids


def test_the_table_has_peoples_indexes_and_an_older_table_gets_them(settings: Settings) -> None:
    records = RecordStore(settings)
    described = records.client.describe_table(TableName=settings.table)["Table"]
    assert sorted(i["IndexName"] for i in described["GlobalSecondaryIndexes"]) == sorted(
        i["IndexName"] for i in GLOBAL_INDEXES
    )
    # A table made before people's indexes: `rudolph init` adds them, one at a time.
    old = Settings(aws_endpoint_url=settings.aws_endpoint_url, table=f"old-{settings.table}")
    records.client.create_table(
        TableName=old.table,
        KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"}
            for a in ("image_id", "pending", "pending_since")
        ],
        GlobalSecondaryIndexes=[PENDING_INDEX_SPEC],
        BillingMode="PAY_PER_REQUEST",
    )
    upgraded = RecordStore(old)
    assert upgraded.ensure() is False
    assert upgraded.added_indexes == ["person", "persons"]
    described = records.client.describe_table(TableName=old.table)["Table"]
    assert {i["IndexName"]: i["IndexStatus"] for i in described["GlobalSecondaryIndexes"]} == {
        i["IndexName"]: "ACTIVE" for i in GLOBAL_INDEXES
    }
    assert upgraded.ensure() is False and upgraded.added_indexes == []  # nothing left to add


def test_the_upgrade_gives_the_persons_of_an_older_table_their_state(settings: Settings) -> None:
    people = _people(settings)
    live, merged = founder_id("a", 0), founder_id("b", 0)
    for person, extra in ((live, {}), (merged, {"merged_into": live})):
        # As rudolph wrote persons before the `persons` index: no `person_state`.
        people.records.table.put_item(
            Item={"image_id": person_key(person), "kind": "person", "person_id": person, **extra}
        )
    assert people.store.persons() == []  # not in the index yet
    assert people.store.mark_live() == 2
    assert [p.person_id for p in people.store.persons()] == [live]
    assert people.store.merged_into(live) == [merged]
    assert people.store.mark_live() == 0  # once


def test_persons_merges_and_faces_are_queried_never_scanned(
    settings: Settings, dynamodb_calls: list[tuple[str, str | None]]
) -> None:
    people = _people(settings)
    keep, other, third = (_person(people, n) for n in ("keep", "other", "third"))
    images = _assign(people, other, range(3)) + _assign(people, third, range(3, 5))
    people.merge(third, other)
    people.merge(keep, third)
    assert [p.person_id for p in people.store.persons()] == [keep]
    assert sorted(people.store.merged_into(keep)) == sorted([other, third])  # the whole chain
    assert sorted(a.image_id for a in people.store.assignments([keep])) == sorted(images)
    assert people.store.set_name(keep, "Ada Lovelace")
    assert people.person_ids_named(" ada lovelace") == [keep]
    made = {op for op, _ in dynamodb_calls}
    assert "Scan" not in made
    assert {index for op, index in dynamodb_calls if op == "Query"} == {"person", "persons"}
    # forget, an operator's command, scans the table itself: it must not miss what the
    # index does not show yet (test_forget_right_after_a_merge_misses_no_face_the_index_hides).
    dynamodb_calls.clear()
    assert people.forget(keep) == 5
    assert people.store.persons() == []
    assert ("Scan", None) in dynamodb_calls


def test_a_merge_racing_new_assignments_loses_and_doubles_no_face(settings: Settings) -> None:
    """Eight workers assign faces to a person while another merges it away: each face ends
    assigned once, to the live person (moto's index is consistent, so the merge's queries and
    the workers' own follow-up move every face; the lagging case is the next test's)."""
    people = _people(settings)
    keep, other = _person(people, "keep"), _person(people, "other")
    before = _assign(people, other, range(20))
    start, done = threading.Barrier(9), threading.Event()

    def assign(n: int, i: int) -> str:
        """A worker's assignment to `other`, chosen while it was live, then its follow-up."""
        face = image_id("b", f"w{n}-{i}.jpg")
        assert people.store.assign(face, 0, other, "0A").person_id == other
        people.follow(face, 0, other)
        return face

    def worker(n: int) -> list[str]:
        start.wait(DEADLINE)
        ids = [assign(n, i) for i in range(10)]  # racing the merge
        assert done.wait(DEADLINE)
        return ids + [assign(n, i) for i in range(10, 12)]  # after its last query

    def merger() -> None:
        start.wait(DEADLINE)
        people.merge(keep, other)
        done.set()

    with ThreadPoolExecutor(max_workers=9) as pool:
        workers = [pool.submit(worker, n) for n in range(8)]
        merged = pool.submit(merger)
        merged.result(timeout=DEADLINE)
        written = before + [i for w in workers for i in w.result(timeout=DEADLINE)]
    faces = people.store.assignments()
    assert sorted(a.image_id for a in faces) == sorted(written), "none lost, none doubled"
    assert {a.person_id for a in faces} == {keep}
    [summary] = people.summaries()
    assert (summary.person_id, summary.face_count) == (keep, 20 + 8 * 12)


def test_a_face_the_index_shows_the_merge_late_is_still_the_live_persons(
    settings: Settings,
) -> None:
    store = _LaggingIndex(settings)
    collection = FaceCollection(settings, boto3.client("rekognition", region_name="us-east-1"))
    people = People(settings, store=store, space=CollectionFaces(collection, store))
    keep, other = _person(people, "keep"), _person(people, "other")
    images = _assign(people, keep, range(2), "k") + _assign(people, other, range(3), "o")
    late = (images[-1], 0)
    store.hidden = {late}  # written just before the mark; the index does not show it yet
    people.merge(keep, other)
    store.hidden = set()  # the index caught up, after the merge's last query
    assert store.assignment(*late).person_id == other  # left behind by the merge...
    # ...yet the listing, `person:` search and `show` count it as the live person's.
    [summary] = people.summaries()
    assert (summary.person_id, summary.face_count) == (keep, 5)
    assert sorted(summary.image_ids) == sorted(images)
    assert people.image_ids_for(keep) == sorted(images)  # `person:` search
    assert people.persons_of_image(late[0]) == {0: keep}
    # Merging again moves it; forget finds every face either way.
    people.merge(keep, other)
    assert store.assignment(*late).person_id == keep
    assert people.forget(keep) == 5
    assert store.assignments() == []


def test_forget_right_after_a_merge_misses_no_face_the_index_hides(settings: Settings) -> None:
    """The right to be forgotten does not wait for the index: a face written a moment ago,
    which the `person` index does not show yet, is forgotten too."""
    store = _LaggingIndex(settings)
    people = People(settings, store=store, space=_Quiet())
    keep, other = _person(people, "keep"), _person(people, "other")
    images = _assign(people, keep, range(2), "k") + _assign(people, other, range(3), "o")
    store.hidden = {(images[-1], 0), (images[0], 0)}  # the index lags on both persons
    people.merge(keep, other)
    assert people.forget(keep) == 5
    store.hidden = set()
    assert store.assignments() == []


def test_the_people_listing_reads_do_not_grow_with_the_persons(
    settings: Settings, dynamodb_calls: list[tuple[str, str | None]]
) -> None:
    """GET /api/people and /people read the table in a fixed number of calls (a Query, the
    index's scan, one BatchGetItem for the portraits' records), not one a person or face."""
    people = _people(settings)
    client = TestClient(create_app(settings))

    def add(names: range) -> None:
        for n in names:
            person = _person(people, f"p{n}")
            for i in _assign(people, person, range(2), f"p{n}"):
                people.records.put(
                    Record(
                        image_id=i,
                        bucket="b",
                        key=f"{i}.jpg",
                        status="done",
                        faces=[Face(confidence=99.0, box=BOX)],
                    )
                )

    def reads(path: str) -> int:
        dynamodb_calls.clear()
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        return len(dynamodb_calls)

    add(range(2))
    few = {path: reads(path) for path in ("/api/people", "/people")}
    assert len(client.get("/api/people").json()) == 2
    add(range(2, 14))
    assert len(client.get("/api/people").json()) == 14
    assert {path: reads(path) for path in ("/api/people", "/people")} == few
    assert few["/people"] <= 4, dynamodb_calls
