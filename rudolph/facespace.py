"""Where People finds the faces near a face: the one interface of the two face stores.

- `LocalFaces`: the k-NN face index of the local backend's embeddings (rudolph/index/faces.py).
- `CollectionFaces`: a Rekognition face collection (rudolph/collection.py), the faces indexed
  by the faces task (IndexFaces), found with SearchFaces and deleted with DeleteFaces.

Persons and assignments stay in the table (PeopleStore) either way, so the commands, `person:`
search and the web page are the same; `face_space` chooses, from settings, in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from rudolph.collection import FaceCollection, Match
from rudolph.index.faces import FaceDoc, FaceIndex, Neighbour, face_doc_id
from rudolph.models.faceid import SAME_PERSON_DISTANCE, decode
from rudolph.peoplestore import Assignment, PeopleStore
from rudolph.record import Face, Record
from rudolph.settings import Settings

#: A face of a record: (image id, face number).
Key = tuple[str, int]


class FaceSpace(Protocol):
    """What People asks of the faces' store (the assignments are the table's either way)."""

    def takes(self, face: Face) -> bool:
        """Whether this face can get a person (it has an embedding, or a FaceId)."""
        ...

    def near(self, record: Record, number: int) -> list[Neighbour]:
        """The assigned faces close enough to be the same person (not itself), nearest first."""
        ...

    def similar(self, record: Record, number: int, limit: int) -> list[Neighbour]:
        """The `limit` assigned faces most like this one (not itself), nearest first."""
        ...

    def put(self, record: Record, number: int, person_id: str, refresh: bool) -> None:
        """This face is now this person's (`refresh`: visible to `near` at once)."""
        ...

    def set_person(self, person_ids: Sequence[str], to: str) -> None:
        """The faces of `person_ids` are now `to`'s (a merge)."""
        ...

    def drop(self, image_id: str, faces: Sequence[Assignment], whole: bool = False) -> None:
        """Delete these faces of an image (`whole`: every face of it, assigned or not)."""
        ...

    def drop_persons(self, person_ids: Sequence[str], faces: Sequence[Assignment]) -> None:
        """Delete every face of these persons (`forget`)."""
        ...

    def image_ids_of(self, person_ids: Sequence[str]) -> list[str]:
        """The images with a face of one of these persons."""
        ...

    def drop_strays(self, image_id: str, current: Callable[[], bool]) -> int:
        """Delete the faces of this image that `near` met in the store but that neither the
        record nor an assignment holds (left by an earlier run of the faces task whose result
        never reached the aggregate), if `current()` still says the record saved is the
        image's newest; how many."""
        ...

    def ensure(self) -> str:
        """Create the store unless it exists (`rudolph init`); what to call it."""
        ...

    def rebuild(self, records: Iterable[Record], assigned: dict[Key, Assignment]) -> int:
        """Write the store again from the records and assignments (`rudolph reindex`); the
        number of faces it holds for them."""
        ...

    def cluster(self, faces: Sequence[tuple[Key, Face]]) -> list[int]:
        """Cluster numbers of faces taken in order: each joins the cluster of the nearest
        earlier face of the same person, else starts one (`recluster`)."""
        ...

    def rewrite(self, faces: Sequence[tuple[Key, Face, str]]) -> None:
        """Every face with its new person, after `recluster`."""
        ...


def face_space(settings: Settings, store: PeopleStore, faces: FaceIndex | None = None) -> FaceSpace:
    """The Rekognition collection with RUDOLPH_ANALYZER=rekognition, else the k-NN index."""
    if settings.analyzer == "rekognition":
        return CollectionFaces(FaceCollection(settings), store)
    return LocalFaces(faces or FaceIndex(settings))


def cluster(vectors: np.ndarray, threshold: float = SAME_PERSON_DISTANCE) -> list[int]:
    """Cluster numbers of vectors taken in order: each joins the cluster of its nearest
    earlier vector within `threshold`, else starts one (what the workers do, in one order)."""
    labels: list[int] = []
    for i in range(len(vectors)):
        if i:
            distances = np.linalg.norm(vectors[:i] - vectors[i], axis=1)
            nearest = int(np.argmin(distances))
            if distances[nearest] < threshold:
                labels.append(labels[nearest])
                continue
        labels.append(max(labels, default=-1) + 1)
    return labels


class LocalFaces:
    """The local backend's embeddings in the k-NN face index."""

    def __init__(self, index: FaceIndex) -> None:
        self.index = index

    def takes(self, face: Face) -> bool:
        return face.embedding is not None

    @staticmethod
    def _vector(record: Record, number: int) -> np.ndarray:
        embedding = record.faces[number].embedding
        assert embedding is not None  # People asks only of faces this space takes
        return decode(embedding)

    def _others(self, record: Record, number: int, found: list[Neighbour]) -> list[Neighbour]:
        return [n for n in found if (n.image_id, n.face) != (record.image_id, number)]

    def near(self, record: Record, number: int) -> list[Neighbour]:
        found = self.index.nearest(self._vector(record, number), within=SAME_PERSON_DISTANCE)
        return self._others(record, number, found)

    def similar(self, record: Record, number: int, limit: int) -> list[Neighbour]:
        found = self.index.nearest(self._vector(record, number), k=limit + 1)
        return self._others(record, number, found)[:limit]

    def put(self, record: Record, number: int, person_id: str, refresh: bool) -> None:
        vector = self._vector(record, number)
        doc = FaceDoc(record.image_id, number, record.faces[number].box, person_id, list(vector))
        self.index.put([doc], refresh=refresh)

    def set_person(self, person_ids: Sequence[str], to: str) -> None:
        self.index.set_person(person_ids, to)

    def drop(self, image_id: str, faces: Sequence[Assignment], whole: bool = False) -> None:
        if whole:
            self.index.delete_where("image_id", [image_id])
        else:
            self.index.delete_where("_id", [face_doc_id(image_id, a.face) for a in faces])

    def drop_persons(self, person_ids: Sequence[str], faces: Sequence[Assignment]) -> None:
        self.index.delete_where("person_id", person_ids)

    def image_ids_of(self, person_ids: Sequence[str]) -> list[str]:
        return self.index.image_ids_of(person_ids)

    def drop_strays(self, image_id: str, current: Callable[[], bool]) -> int:
        return 0  # a face document's id is its image and number: a rerun writes over it

    def ensure(self) -> str:
        return f"{self.index.ensure()} (k-NN)"

    def rebuild(self, records: Iterable[Record], assigned: dict[Key, Assignment]) -> int:
        self.index.ensure()
        docs = [
            FaceDoc(
                record.image_id,
                n,
                face.box,
                assigned[(record.image_id, n)].person_id,
                list(decode(face.embedding)),
            )
            for record in records
            for n, face in enumerate(record.faces)
            if face.embedding is not None and (record.image_id, n) in assigned
        ]
        self.index.put(docs)
        self.index.refresh()
        return len(docs)

    def cluster(self, faces: Sequence[tuple[Key, Face]]) -> list[int]:
        vectors = [decode(face.embedding) for _, face in faces if face.embedding is not None]
        return cluster(np.array(vectors, dtype=np.float32).reshape(-1, 128))

    def rewrite(self, faces: Sequence[tuple[Key, Face, str]]) -> None:
        self.index.clear()
        self.index.put(
            FaceDoc(key[0], key[1], face.box, person, list(decode(face.embedding)))
            for key, face, person in faces
            if face.embedding is not None
        )
        self.index.refresh()


class CollectionFaces:
    """A Rekognition face collection: the faces task indexed each face (IndexFaces, its
    FaceId in the record); the table's assignments say whose each FaceId is."""

    def __init__(self, collection: FaceCollection, store: PeopleStore) -> None:
        self.collection = collection
        self.store = store
        #: Image id -> FaceIds of it that `near` found in the collection but nobody holds.
        self._strays: dict[str, set[str]] = {}

    def takes(self, face: Face) -> bool:
        return face.face_id is not None

    @staticmethod
    def _face_id(record: Record, number: int) -> str:
        face_id = record.faces[number].face_id
        assert face_id is not None  # People asks only of faces this space takes
        return face_id

    def _neighbours(self, matches: list[Match], record: Record | None = None) -> list[Neighbour]:
        """The matches whose face is assigned (one read per image): a face indexed but not
        assigned yet (its record still being saved) has no person to join. With `record`, a
        match of its own image that neither it nor an assignment holds is noted as a stray."""
        by_image: dict[str, dict[str, Assignment]] = {}
        found = []
        own = {f.face_id for f in record.faces} if record is not None else set()
        for m in matches:
            if m.image_id not in by_image:
                by_image[m.image_id] = {
                    a.face_id: a
                    for a in self.store.assignments_of_image(m.image_id).values()
                    if a.face_id is not None
                }
            a = by_image[m.image_id].get(m.face_id)
            ours = record is not None and m.image_id == record.image_id
            if a is None and ours and m.face_id not in own:  # indexed by a run that was lost
                self._strays.setdefault(m.image_id, set()).add(m.face_id)
            if a is not None:
                # Similarity 100 is distance 0: nearest first, as the k-NN index answers.
                found.append(
                    Neighbour(a.image_id, a.face, a.person_id, 1 - m.similarity / 100, m.box)
                )
        return found

    def near(self, record: Record, number: int) -> list[Neighbour]:
        return self._neighbours(self.collection.search(self._face_id(record, number)), record)

    def similar(self, record: Record, number: int, limit: int) -> list[Neighbour]:
        matches = self.collection.search(self._face_id(record, number), limit, threshold=0.0)
        return self._neighbours(matches)[:limit]

    def put(self, record: Record, number: int, person_id: str, refresh: bool) -> None:
        # Nothing to write: the face is in the collection since the faces task indexed it,
        # and whose it is lives in the assignment, which SearchFaces' matches are read through.
        return

    def set_person(self, person_ids: Sequence[str], to: str) -> None:
        return  # the collection knows no persons: the moved assignments say it all

    def drop(self, image_id: str, faces: Sequence[Assignment], whole: bool = False) -> None:
        self.collection.delete([a.face_id for a in faces if a.face_id is not None])

    def drop_persons(self, person_ids: Sequence[str], faces: Sequence[Assignment]) -> None:
        self.collection.delete([a.face_id for a in faces if a.face_id is not None])

    def image_ids_of(self, person_ids: Sequence[str]) -> list[str]:
        return sorted({a.image_id for a in self.store.assignments(person_ids)})

    def drop_strays(self, image_id: str, current: Callable[[], bool]) -> int:
        strays = self._strays.pop(image_id, set())
        # Asked after the search: a newer upload's faces task indexes only after its event
        # claimed the record, so faces it indexed before the search are seen to be newer here.
        if not strays or not current():
            return 0
        held = {a.face_id for a in self.store.assignments_of_image(image_id).values()}
        gone = sorted(strays - held)
        self.collection.delete(gone)
        return len(gone)

    def ensure(self) -> str:
        created = self.collection.ensure()
        return (
            f"{self.collection.name} (Rekognition collection, {'created' if created else 'exists'})"
        )

    def rebuild(self, records: Iterable[Record], assigned: dict[Key, Assignment]) -> int:
        # The collection is written by IndexFaces as images are analysed, not from the
        # table: there is nothing to write again, only to count.
        self.collection.ensure()
        return sum(1 for a in assigned.values() if a.face_id is not None)

    def cluster(self, faces: Sequence[tuple[Key, Face]]) -> list[int]:
        position = {face.face_id: i for i, (_, face) in enumerate(faces) if face.face_id}
        labels: list[int] = []
        for i, (_, face) in enumerate(faces):
            earlier = (
                [
                    position[m.face_id]
                    for m in self.collection.search(face.face_id)
                    if m.face_id in position
                ]
                if face.face_id
                else []
            )
            # Matches come most similar first: the first earlier one is the nearest.
            nearest = next((j for j in earlier if j < i), None)
            labels.append(labels[nearest] if nearest is not None else max(labels, default=-1) + 1)
        return labels

    def rewrite(self, faces: Sequence[tuple[Key, Face, str]]) -> None:
        return  # the assignments were rewritten: the collection's faces stay as they are
