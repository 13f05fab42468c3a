"""Persons and face assignments in the records' DynamoDB table (RUDOLPH_PEOPLE=on).

A sibling of RecordStore, in the same table and spirit (every write conditional, nothing
else parses these items). Two kinds of item, told from records by their `kind` attribute and
by keys that no image id (64 hex digits) can be:

- `person#<person id>`: a person: its `name` (absent until named), its `person_state`
  (`live`, or `merged#<into>`) and, once merged into another, `merged_into` (kept so a worker
  that read the old id a moment ago follows it).
- `face#<image id>#<face number>`: which person a face of a record is, written for the event
  `order` of the record it came from: a duplicate delivery finds it and changes nothing, a
  newer upload of the key replaces it.

Found through two sparse global secondary indexes (rudolph/store.py): `person` (a person's
faces, by `person_id`) and `persons` (persons by `person_state`: one Query lists the live ones,
another those merged into one person). Nothing a worker runs scans the table. The indexes are
eventually consistent: a face a Query does not show yet is still its person's, and every
reader resolves a merged person to the live one (rudolph/people.py), so a lagging index can
delay a merge's moves but never loses or doubles a face.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rudolph.record import MAX_EMBEDDED_FACES
from rudolph.settings import Settings
from rudolph.store import PERSON_INDEX, PERSONS_INDEX, RecordStore, _ConditionFailed

PERSON = "person"
FACE = "face"
#: `person_state` of a person not merged into another. One partition of the `persons` index
#: holds every live person: a person is written once and renamed or merged rarely, far below a
#: partition's 1,000 writes a second, and a paginated Query reads them in 1 MB pages.
LIVE = "live"
#: How far `resolve` follows merges (a chain longer than this is a bug, not data).
MAX_MERGE_CHAIN = 20


def person_key(person_id: str) -> str:
    return f"{PERSON}#{person_id}"


def face_key(image_id: str, face: int) -> str:
    return f"{FACE}#{image_id}#{face}"


def merged_state(into: str) -> str:
    """The `person_state` of a person merged into `into`."""
    return f"merged#{into}"


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str | None = None
    merged_into: str | None = None


@dataclass(frozen=True)
class Assignment:
    """A face of a record and the person it is."""

    image_id: str
    face: int
    person_id: str
    order: str
    #: The face's FaceId in the Rekognition face collection, when it has one.
    face_id: str | None = None


def _assignment(item: dict[str, Any]) -> Assignment:
    face_id = item.get("face_id")
    return Assignment(
        image_id=str(item["face_image"]),
        face=int(item["face"]),
        person_id=str(item["person_id"]),
        order=str(item.get("order", "")),
        face_id=str(face_id) if face_id is not None else None,
    )


def _item(a: Assignment) -> dict[str, Any]:
    item: dict[str, Any] = {
        "image_id": face_key(a.image_id, a.face),
        "kind": FACE,
        "face_image": a.image_id,
        "face": a.face,
        "person_id": a.person_id,
        "order": a.order,
    }
    if a.face_id is not None:
        item["face_id"] = a.face_id
    return item


def _person(item: dict[str, Any]) -> Person:
    name, merged = item.get("name"), item.get("merged_into")
    return Person(
        person_id=str(item["person_id"]),
        name=str(name) if name is not None else None,
        merged_into=str(merged) if merged is not None else None,
    )


class PeopleStore:
    """Persons and face assignments, in the table of `settings.table`."""

    def __init__(self, settings: Settings, records: RecordStore | None = None) -> None:
        self.records = records or RecordStore(settings)

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self.records._call(getattr(self.records.table, method), **kwargs)

    def _get(self, key: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._call(
            "get_item", Key={"image_id": key}, ConsistentRead=True
        ).get("Item")
        return item

    def _pages(self, method: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The items of a paginated Query or Scan."""
        while True:
            page = self._call(method, **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _persons_in(self, state: str) -> Iterator[Person]:
        """The persons of one `person_state` (the `persons` index: one partition each)."""
        items = self._pages(
            "query",
            IndexName=PERSONS_INDEX,
            KeyConditionExpression="person_state = :s",
            ExpressionAttributeValues={":s": state},
        )
        return map(_person, items)

    def _faces_of(self, person_id: str) -> Iterator[Assignment]:
        """The faces assigned to one person (the `person` index; the person's own item shares
        its partition and is left out by the key prefix)."""
        items = self._pages(
            "query",
            IndexName=PERSON_INDEX,
            KeyConditionExpression="person_id = :p AND begins_with(image_id, :face)",
            ExpressionAttributeValues={":p": person_id, ":face": f"{FACE}#"},
        )
        return map(_assignment, items)

    def _batch_get(self, keys: list[str]) -> list[dict[str, Any]]:
        """The items of these keys (consistent BatchGetItem, 100 keys a call)."""
        return self.records.get_items(keys, consistent=True)

    # -- persons

    def create_person(self, person_id: str, replace: bool = False) -> bool:
        """Write a new person unless it exists (or over it, nameless and not merged, with
        `replace`: recluster); True when this call created it."""
        condition = {} if replace else {"ConditionExpression": "attribute_not_exists(image_id)"}
        try:
            self._call(
                "put_item",
                Item={
                    "image_id": person_key(person_id),
                    "kind": PERSON,
                    "person_id": person_id,
                    "person_state": LIVE,
                    "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                },
                **condition,
            )
        except _ConditionFailed:
            return False
        return True

    def person(self, person_id: str) -> Person | None:
        item = self._get(person_key(person_id))
        return _person(item) if item else None

    def resolve(self, person_id: str) -> str | None:
        """The live person `person_id` is now (following merges); None when it was forgotten."""
        for _ in range(MAX_MERGE_CHAIN):
            found = self.person(person_id)
            if found is None:
                return None
            if found.merged_into is None:
                return found.person_id
            person_id = found.merged_into
        return person_id

    def persons_by_id(self, person_ids: Iterable[str]) -> dict[str, Person]:
        """Person id -> person, for those that exist (one BatchGetItem a hundred)."""
        keys = sorted({person_key(p) for p in person_ids})
        return {p.person_id: p for p in map(_person, self._batch_get(keys))}

    def resolve_many(self, person_ids: Iterable[str]) -> dict[str, str | None]:
        """`resolve` of many persons at once: one BatchGetItem a step of the merge chains."""
        resolved: dict[str, str | None] = {}
        at = {p: p for p in person_ids}  # person asked -> where its chain is now
        for _ in range(MAX_MERGE_CHAIN):
            if not at:
                break
            found = self.persons_by_id(set(at.values()))
            for asked, now in list(at.items()):
                person = found.get(now)
                if person is None or person.merged_into is None:
                    resolved[asked] = person.person_id if person else None
                    del at[asked]
                else:
                    at[asked] = person.merged_into
        return {**resolved, **at}

    def persons(self) -> list[Person]:
        """Every live person (not merged into another), by id."""
        return list(self._persons_in(LIVE))

    def merged_into(self, person_id: str) -> list[str]:
        """The persons merged into this one, directly or through others merged into it."""
        found: dict[str, None] = {}
        todo = [person_id]
        while todo:
            for p in self._persons_in(merged_state(todo.pop())):
                if p.person_id not in found and p.person_id != person_id:  # no cycle twice
                    found[p.person_id] = None
                    todo.append(p.person_id)
        return list(found)

    def set_name(self, person_id: str, name: str | None) -> bool:
        """Name a live person (None: unname); False when there is no such live person."""
        if name is None:
            update: dict[str, Any] = {"UpdateExpression": "REMOVE #n"}
        else:
            update = {"UpdateExpression": "SET #n = :n", "ExpressionAttributeValues": {":n": name}}
        try:
            self._call(
                "update_item",
                Key={"image_id": person_key(person_id)},
                ConditionExpression="attribute_exists(image_id) AND attribute_not_exists(#m)",
                ExpressionAttributeNames={"#n": "name", "#m": "merged_into"},
                **update,
            )
        except _ConditionFailed:
            return False
        return True

    def mark_merged(self, person_id: str, into: str) -> bool:
        """Mark a live person as merged into another; False when it is not live."""
        try:
            self._call(
                "update_item",
                Key={"image_id": person_key(person_id)},
                UpdateExpression="SET #m = :into, person_state = :state",
                ConditionExpression="attribute_exists(image_id) AND attribute_not_exists(#m)",
                ExpressionAttributeNames={"#m": "merged_into"},
                ExpressionAttributeValues={":into": into, ":state": merged_state(into)},
            )
        except _ConditionFailed:
            return False
        return True

    def delete_person(self, person_id: str) -> None:
        self._call("delete_item", Key={"image_id": person_key(person_id)})

    # -- assignments

    def assignment(self, image_id: str, face: int) -> Assignment | None:
        item = self._get(face_key(image_id, face))
        return _assignment(item) if item else None

    def assign(
        self, image_id: str, face: int, person_id: str, order: str, face_id: str | None = None
    ) -> Assignment:
        """Assign a face of the record written for event `order`, unless an assignment for
        this event or a newer one exists: then that one stands. The assignment in force."""
        wanted = Assignment(image_id, face, person_id, order, face_id)
        try:
            self._call(
                "put_item",
                Item=_item(wanted),
                ConditionExpression="attribute_not_exists(image_id) OR #o < :o",
                ExpressionAttributeNames={"#o": "order"},
                ExpressionAttributeValues={":o": order},
            )
        except _ConditionFailed:
            found = self.assignment(image_id, face)
            if found is not None:
                return found
            return self.assign(image_id, face, person_id, order, face_id)  # deleted meanwhile
        return wanted

    def move(self, image_id: str, face: int, from_person: str, to_person: str) -> bool:
        """Reassign a face from one person to another, only if it is still the first's."""
        try:
            self._call(
                "update_item",
                Key={"image_id": face_key(image_id, face)},
                UpdateExpression="SET person_id = :to",
                ConditionExpression="person_id = :from",
                ExpressionAttributeValues={":to": to_person, ":from": from_person},
            )
        except _ConditionFailed:
            return False
        return True

    def set_face_id(self, image_id: str, face: int, order: str, face_id: str) -> bool:
        """Give a face's assignment for event `order` the FaceId of a rerun (the faces
        analysed again at the same event); False when the assignment is not that event's."""
        try:
            self._call(
                "update_item",
                Key={"image_id": face_key(image_id, face)},
                UpdateExpression="SET face_id = :f",
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "order"},
                ExpressionAttributeValues={":f": face_id, ":o": order},
            )
        except _ConditionFailed:
            return False
        return True

    def put_assignments(self, assignments: Iterable[Assignment]) -> None:
        """Write assignments as they are (recluster, which rewrites them all)."""
        with self.records.table.batch_writer() as batch:
            for a in assignments:
                batch.put_item(Item=_item(a))

    def assignments(self, person_ids: Iterable[str] | None = None) -> list[Assignment]:
        """The assignments of some persons (one paginated Query of the `person` index each),
        or every assignment (a Scan of that index: operator commands and the people listing,
        never a worker; the sparse index holds people's items only, not the records)."""
        if person_ids is not None:
            return [a for p in dict.fromkeys(person_ids) for a in self._faces_of(p)]
        return [
            _assignment(item)
            for item in self._pages("scan", IndexName=PERSON_INDEX)
            if str(item["image_id"]).startswith(f"{FACE}#")
        ]

    def assignments_exactly(self, person_ids: Iterable[str]) -> list[Assignment]:
        """Every assignment of these persons as the table holds it now: a consistent Scan of
        the table, for `forget` (an operator's command), which must not miss a face written
        a moment ago that the `person` index does not show yet."""
        wanted = set(person_ids)
        items = self._pages(
            "scan",
            FilterExpression="#k = :face",
            ExpressionAttributeNames={"#k": "kind"},
            ExpressionAttributeValues={":face": FACE},
            ConsistentRead=True,
        )
        # Filtered here, not in the expression: its IN takes at most 100 persons.
        return [a for a in map(_assignment, items) if a.person_id in wanted]

    def mark_live(self) -> int:
        """Give `person_state` to the persons of a table written before the `persons` index
        (`rudolph init`, an operator's Scan: only a person with a state is in the index); the
        number of persons it changed."""
        items = self._pages(
            "scan",
            FilterExpression="#k = :person AND attribute_not_exists(person_state)",
            ExpressionAttributeNames={"#k": "kind"},
            ExpressionAttributeValues={":person": PERSON},
            ProjectionExpression="image_id, merged_into",
        )
        changed = 0
        for item in items:
            merged = item.get("merged_into")
            state = merged_state(str(merged)) if merged is not None else LIVE
            try:
                self._call(
                    "update_item",
                    Key={"image_id": item["image_id"]},
                    UpdateExpression="SET person_state = :s",
                    ConditionExpression="attribute_exists(image_id) AND "
                    "attribute_not_exists(person_state)",
                    ExpressionAttributeValues={":s": state},
                )
            except _ConditionFailed:
                continue  # deleted, or given its state by a newer rudolph meanwhile
            changed += 1
        return changed

    def assignments_of_image(self, image_id: str) -> dict[int, Assignment]:
        """Face number -> assignment, for one image (one BatchGetItem: at most 100 faces carry
        an embedding)."""
        keys = [face_key(image_id, n) for n in range(MAX_EMBEDDED_FACES)]
        return {a.face: a for a in map(_assignment, self._batch_get(keys))}

    def delete_assignment(self, image_id: str, face: int, before: str | None = None) -> None:
        """Delete a face's assignment (only one older than event `before`, when given)."""
        condition: dict[str, Any] = {}
        if before is not None:
            condition = {
                "ConditionExpression": "#o < :o",
                "ExpressionAttributeNames": {"#o": "order"},
                "ExpressionAttributeValues": {":o": before},
            }
        try:
            self._call("delete_item", Key={"image_id": face_key(image_id, face)}, **condition)
        except _ConditionFailed:
            return
