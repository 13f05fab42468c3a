"""People: faces clustered into persons as records are saved (RUDOLPH_PEOPLE=on).

Online clustering: a face joins the person of its nearest face of the same person, else
starts a new person whose id is derived from the face itself (so a duplicate delivery founds
the same person, not a second one). "Nearest" is the face space's (rudolph/facespace.py): the
k-NN face index within `faceid.SAME_PERSON_DISTANCE` (0.6, dlib's threshold, Euclidean on the
128-d embedding) for the local backend, or SearchFaces over the Rekognition face collection
for the Rekognition backend. The table (PeopleStore) holds the assignments either way.

With many workers at once:
- a duplicate delivery finds the face's assignment for the same event and changes nothing;
- two concurrent assignments of one face: the conditional write lets one stand, the other
  adopts it (no face assigned twice);
- two workers founding the same new person at once: each writes its face (refreshed), then
  queries again and merges every person within the threshold into the smallest id, so both
  converge on one person whichever order their writes became visible in;
- a merge marks the old person first, then moves the faces the `person` index shows it
  (conditional on still being the old person's), querying again until it shows none; a worker
  that assigned a face to the old person meanwhile sees the mark after its write (a consistent
  read) and moves its own face;
- the index is eventually consistent, so a face written just before the mark may not show yet:
  it stays on the merged person, and every reader resolves a merged person to the live one
  (the listing, `person:` search, `forget`, `show`), so it is neither lost nor counted twice;
  merging again, or `recluster`, moves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from rudolph.errors import PersonNameError, UnknownFaceError, UnknownPersonError
from rudolph.facespace import FaceSpace, Key, face_space
from rudolph.index import SearchIndex
from rudolph.index.faces import FaceIndex, Neighbour
from rudolph.models.faceid import SAME_PERSON_DISTANCE
from rudolph.peoplestore import Assignment, PeopleStore, Person
from rudolph.record import Face, Record
from rudolph.settings import Settings
from rudolph.store import RecordStore

log = logging.getLogger(__name__)

THRESHOLD = SAME_PERSON_DISTANCE
#: What a person id looks like (founder_id): "p" and 15 hex digits.
PERSON_ID = re.compile(r"p[0-9a-f]{15}")
#: The longest name a person may have, in characters (a caption, not a biography).
MAX_NAME = 100
#: How many times a merge queries the old person's faces (each round finds those the index
#: showed late); a bound, not a wait: what is left after is resolved by its readers.
MAX_MOVE_ROUNDS = 10


def checked_name(name: str) -> str | None:
    """A person's name as it is stored: stripped, None when empty (unnamed). Control and
    format characters (newlines, bidi overrides) are refused: a name is printed in terminals
    and captions, where they would rewrite what is around it."""
    name = name.strip()
    if len(name) > MAX_NAME:
        raise PersonNameError(
            f"a name has at most {MAX_NAME} characters, this one {len(name)}: shorten it"
        )
    bad = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in ("Cc", "Cf")})
    if bad:
        raise PersonNameError(
            f"a name may not contain control or format characters ({', '.join(bad)}): "
            "write it on one line, in plain characters"
        )
    return name or None


def founder_id(image_id: str, face: int) -> str:
    """The id of a person founded by this face: the same for every delivery of it."""
    return "p" + hashlib.sha256(f"{image_id}#{face}".encode()).hexdigest()[:15]


@dataclass(frozen=True)
class PersonSummary:
    """A person as `rudolph people` lists it."""

    person_id: str
    name: str | None
    face_count: int
    image_ids: list[str]

    def as_json(self) -> dict[str, object]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "face_count": self.face_count,
            "image_ids": self.image_ids,
        }


@dataclass(frozen=True)
class ReclusterReport:
    faces: int
    persons: int
    kept: int
    removed: int


def search_index(settings: Settings) -> SearchIndex:
    """The image index, resolving `person:` terms when RUDOLPH_PEOPLE=on."""
    persons = People(settings).image_ids_for if settings.people_on else None
    return SearchIndex(settings, persons=persons)


class People:
    """Persons of the faces of the records: assign, list, name, merge, forget, recluster."""

    def __init__(
        self,
        settings: Settings,
        store: PeopleStore | None = None,
        faces: FaceIndex | None = None,
        records: RecordStore | None = None,
        space: FaceSpace | None = None,
    ) -> None:
        self.settings = settings
        self.records = records or (store.records if store else RecordStore(settings))
        self.store = store or PeopleStore(settings, self.records)
        self.space = space or face_space(settings, self.store, faces)

    # -- as records are saved

    def index_record(self, record: Record, order: str) -> dict[int, str]:
        """Give each face of a just-saved record that the face space takes (an embedding, a
        FaceId) its person, in the table and the face space; face number -> person id. Faces
        of an older version of the image that the record no longer has are dropped."""
        assigned: dict[int, str] = {}
        for number, face in enumerate(record.faces):
            if self.space.takes(face):
                assigned[number] = self._assign(record, number, order)
        stale = [
            a
            for n, a in self.store.assignments_of_image(record.image_id).items()
            if n not in assigned and a.order < order
        ]
        for a in stale:
            self.store.delete_assignment(record.image_id, a.face, before=order)
        self.space.drop(record.image_id, stale)
        # A faces task delivered again indexed the faces again: the first run's are strays.
        self.space.drop_strays(
            record.image_id, lambda: self.records.order_of(record.image_id) == order
        )
        return assigned

    def _assign(self, record: Record, number: int, order: str) -> str:
        current = self.store.assignment(record.image_id, number)
        face_id = record.faces[number].face_id
        if current is not None and current.order == order:  # a duplicate delivery, or a rerun
            person = self.store.resolve(current.person_id) or current.person_id
            # A rerun indexed the face anew: the assignment follows the new FaceId and the
            # old one goes (forget must find every FaceId of the person).
            rerun = face_id is not None and current.face_id != face_id
            if rerun and self.store.set_face_id(record.image_id, number, order, str(face_id)):
                self.space.drop(record.image_id, [current])
            self.space.put(record, number, person, refresh=False)
            return person
        near = self.space.near(record, number)
        chosen = self.store.resolve(near[0].person_id) if near else None
        founded = chosen is None
        if chosen is None:
            chosen = founder_id(record.image_id, number)
            self.store.create_person(chosen)
        held = self.store.assign(record.image_id, number, chosen, order, face_id)
        person = held.person_id
        if current is not None and held.order == order and current.face_id != face_id:
            # The face of an older upload of the key: its FaceId would match nobody's.
            self.space.drop(record.image_id, [current])
        # A founder's face is refreshed at once: a worker founding the same person now must
        # see it. A face that joined a person is found through that person's other faces.
        self.space.put(record, number, person, refresh=founded)
        if founded and held.person_id == chosen:
            # Another worker may have founded the same person at the same moment: every
            # person within reach now goes into the smallest id (both workers pick the same).
            near_now = self.space.near(record, number)
            reach = set(self.store.resolve_many({n.person_id for n in near_now}).values())
            candidates = sorted({p for p in reach if p} | {chosen})
            for other in candidates[1:]:
                # Either may have been merged by the other worker meanwhile: it finishes it.
                with contextlib.suppress(UnknownPersonError):
                    self.merge(candidates[0], other)
        return self.follow(record.image_id, number, person)

    def follow(self, image_id: str, number: int, person: str) -> str:
        """After assigning a face to `person`: read the person again (consistent) and, when it
        was merged (or forgotten) meanwhile, move the face to where it went, since the merge's
        Query of the index may not have shown it. The face's person now."""
        live = self.store.resolve(person)
        if live is None:  # forgotten since we chose it: this new face founds a person anew
            live = founder_id(image_id, number)
            self.store.create_person(live)
        if live != person:  # merged (or forgotten) since we chose it: follow
            self.store.move(image_id, number, person, live)
            self.space.set_person([person], live)
        return live

    def remove_image(self, image_id: str, order: str) -> None:
        """Drop the assignments and the faces (face documents, collection faces) of a
        deleted image."""
        faces = list(self.store.assignments_of_image(image_id).values())
        for a in faces:
            self.store.delete_assignment(image_id, a.face, before=order)
        self.space.drop(image_id, faces, whole=True)

    # -- commands

    def _live(self, person_id: str) -> Person:
        found = self.store.person(person_id) if PERSON_ID.fullmatch(person_id) else None
        if found is None or found.merged_into is not None:
            raise UnknownPersonError(person_id)
        return found

    def summaries(self) -> list[PersonSummary]:
        """Every person with a face, most photos first (then most faces, then id). A person
        whose faces all went (their images deleted or replaced) is left out; `recluster`
        deletes it."""
        return [summary for summary, _ in self.portraits()]

    def portraits(self) -> list[tuple[PersonSummary, Assignment]]:
        """`summaries()`, each with one face of the person to show it by (its first, in image
        id and face order: the same face every time)."""
        by_person: dict[str, list[Assignment]] = defaultdict(list)
        for a in self.live_assignments(self.store.assignments()):
            by_person[a.person_id].append(a)
        portraits = [
            (
                PersonSummary(
                    person_id=p.person_id,
                    name=p.name,
                    face_count=len(faces),
                    image_ids=sorted({a.image_id for a in faces}),
                ),
                min(faces, key=lambda a: (a.image_id, a.face)),
            )
            for p in self.store.persons()
            if (faces := by_person.get(p.person_id))
        ]
        return sorted(
            portraits,
            key=lambda sa: (-len(sa[0].image_ids), -sa[0].face_count, sa[0].person_id),
        )

    def live_assignments(self, assignments: Iterable[Assignment]) -> list[Assignment]:
        """The assignments with their persons resolved to the live ones (a face left on a
        merged person, which the index had not shown the merge yet, counts as the live
        person's); faces of forgotten persons left out. One BatchGetItem a hundred merged
        persons, none when every person is live."""
        found = list(assignments)
        live = {p.person_id for p in self.store.persons()}
        stray = {a.person_id for a in found} - live
        resolved: dict[str, str | None] = {p: p for p in live}
        if stray:
            resolved.update(self.store.resolve_many(stray))
        return [
            replace(a, person_id=person)
            for a in found
            if (person := resolved.get(a.person_id)) is not None
        ]

    def name(self, person_id: str, name: str) -> str | None:
        """Name a person (an empty name unnames it); the name as stored."""
        stored = checked_name(name)
        self._live(person_id)
        if not self.store.set_name(person_id, stored):
            raise UnknownPersonError(person_id)
        return stored

    def merge(self, person_id: str, other_id: str) -> None:
        """Move every face of `other_id` to `person_id`; `other_id` is gone after. The name
        stays `person_id`'s, or becomes `other_id`'s when `person_id` had none."""
        if person_id == other_id:
            return
        keep = self._live(person_id)
        other = self.store.person(other_id) if PERSON_ID.fullmatch(other_id) else None
        if other is None:
            raise UnknownPersonError(other_id)
        if other.merged_into is None:
            if not self.store.mark_merged(other_id, person_id):
                return  # merged by someone else meanwhile: they move its faces
            if keep.name is None and other.name is not None:
                self.store.set_name(person_id, other.name)
        elif other.merged_into != person_id:
            return
        # Marked first: a face assigned to other_id after this sees the mark itself (follow).
        # Queried until the index shows none; what it shows late stays other_id's, which
        # readers resolve to person_id (module docstring).
        for _ in range(MAX_MOVE_ROUNDS):
            faces = self.store.assignments([other_id])
            if not faces:
                break
            for a in faces:
                self.store.move(a.image_id, a.face, other_id, person_id)
        self.space.set_person([other_id], person_id)

    def forget(self, person_id: str) -> int:
        """Delete a person everywhere: its assignments, its face documents or collection
        faces, the embeddings and FaceIds of its faces in the records, the person; the number
        of faces forgotten."""
        self._live(person_id)
        ids = [person_id, *self.store.merged_into(person_id)]
        # Not the index: forgetting must not miss a face assigned a moment ago.
        faces = self.store.assignments_exactly(ids)
        by_image: dict[str, list[int]] = defaultdict(list)
        for a in faces:
            by_image[a.image_id].append(a.face)
        # Vectors first (the search side), then the records' embeddings, then the table's
        # assignments and the persons: a failure part way is finished by running it again.
        self.space.drop_persons(ids, faces)
        for image, numbers in by_image.items():
            self.records.drop_embeddings(image, numbers)
        for a in faces:
            self.store.delete_assignment(a.image_id, a.face)
        for gone in ids:
            self.store.delete_person(gone)
        return len(faces)

    def similar(self, image_id: str, face: int, limit: int = 10) -> list[Neighbour]:
        """The faces nearest one face of one image (itself excluded), nearest first."""
        record = self.records.get(image_id)
        if record is None or not 0 <= face < len(record.faces):
            raise UnknownFaceError(image_id, face)
        if not self.space.takes(record.faces[face]):
            raise UnknownFaceError(image_id, face)
        return self.space.similar(record, face, limit)

    def persons_of_image(self, image_id: str) -> dict[int, str]:
        """Face number -> person id, for `rudolph show` and the image page (two batched
        reads, not one a face)."""
        faces = self.store.assignments_of_image(image_id)
        resolved = self.store.resolve_many({a.person_id for a in faces.values()})
        return {n: resolved.get(a.person_id) or a.person_id for n, a in faces.items()}

    def image_ids_for(self, value: str) -> list[str]:
        """The images of a `person:` value: a person id (followed through merges), else the
        persons of that name."""
        by_id = self.store.resolve(value) if PERSON_ID.fullmatch(value) else None
        persons = [by_id] if by_id else self.person_ids_named(value)
        # With the persons merged into them: a face a merge did not move yet is theirs too.
        persons += [m for p in persons for m in self.store.merged_into(p)]
        return self.space.image_ids_of(persons) if persons else []

    def person_ids_named(self, name: str) -> list[str]:
        """The live persons called `name` (case and surrounding spaces ignored)."""
        wanted = name.strip().casefold()
        return sorted(
            p.person_id for p in self.store.persons() if (p.name or "").casefold() == wanted
        )

    def rebuild_faces(self) -> int:
        """Write the face space again from the records and the table's assignments (`rudolph
        reindex`); faces never assigned are left to `recluster`. The number of faces."""
        assigned = {
            (a.image_id, a.face): a for a in self.live_assignments(self.store.assignments())
        }
        return self.space.rebuild(self.records.scan(), assigned)

    # -- recluster

    def recluster(self) -> ReclusterReport:
        """Cluster every embedded face again, from the records, in a fixed order; a cluster
        keeps the id (and name) of the old person most of whose faces it holds, so merges and
        splits are repaired and names stay where a named person's faces stay together.
        Run it while no worker saves records (a face saved meanwhile is clustered by the next
        run)."""
        taken_faces: list[tuple[Key, Face]] = []
        # Scans (the records, the `person` index): every face is clustered again, so every one
        # is read; an operator's command, never a worker's. It also finishes an upgrade that
        # `rudolph init` left part way: persons without their `person_state`.
        self.store.mark_live()
        old = {(a.image_id, a.face): a for a in self.live_assignments(self.store.assignments())}
        for record in self.records.scan():
            for number, face in enumerate(record.faces):
                if self.space.takes(face):
                    taken_faces.append(((record.image_id, number), face))
        taken_faces.sort(key=lambda kf: kf[0])
        keys = [k for k, _ in taken_faces]
        cluster_of = self.space.cluster(taken_faces)
        members: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for key, c in zip(keys, cluster_of, strict=True):
            members[c].append(key)
        resolved = {p.person_id for p in self.store.persons()}
        old_person = {k: a.person_id for k, a in old.items() if a.person_id in resolved}
        totals = Counter(old_person.values())
        ids: dict[int, str] = {}
        taken: set[str] = set()
        for c, faces in sorted(members.items(), key=lambda kv: -len(kv[1])):
            votes = Counter(old_person[k] for k in faces if k in old_person)
            keep = next(
                (p for p, n in votes.most_common() if p not in taken and 2 * n > totals[p]), None
            )
            # A new person's id is a face's own, unless a live person has it (kept by a
            # later cluster, or left to be removed): then the next face's.
            fresh = (founder_id(*face) for face in sorted(faces))
            ids[c] = (
                keep
                or next((p for p in fresh if p not in taken | resolved), None)
                or (founder_id(f"recluster {min(faces)[0]}", min(faces)[1]))
            )
            taken.add(ids[c])
            if keep is None:  # a new person, even where a merged-away one had this id
                self.store.create_person(ids[c], replace=True)
        assignments = [
            # A face never assigned gets no event order: its next delivery writes over it.
            Assignment(k[0], k[1], ids[c], old[k].order if k in old else "", f.face_id)
            for (k, f), c in zip(taken_faces, cluster_of, strict=True)
        ]
        self.store.put_assignments(assignments)
        kept = set(ids.values())
        removed = [p for p in {p.person_id for p in self.store.persons()} if p not in kept]
        for p in removed:
            self.store.delete_person(p)
        self.space.rewrite(
            [(k, f, ids[c]) for (k, f), c in zip(taken_faces, cluster_of, strict=True)]
        )
        return ReclusterReport(len(keys), len(kept), len(kept & resolved), len(removed))
