"""The face index: one OpenSearch document per embedded face, beside the image index.

Only with RUDOLPH_PEOPLE=on. `<RUDOLPH_INDEX>-faces` holds, per face, its image id, its number
in the record, its box, its person id and its embedding as a `knn_vector` (k-NN plugin, Lucene
HNSW engine, l2: no native library, so the same on Amazon OpenSearch Service). "Faces like this
one" is a k-NN query; the Lucene engine answers l2 with a score of 1 / (1 + d²), from which the
distance is recovered. Like the image index it is derived: the table (records' embeddings,
PeopleStore's assignments) is the source of truth, and `rudolph reindex` rewrites it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch, RequestError

from rudolph.errors import ConfigurationError, IndexUnavailableError
from rudolph.index.live import SearchIndex
from rudolph.index.mapping import mapping_problems
from rudolph.record import Box
from rudolph.settings import Settings

DIMENSION = 128
#: Faces a k-NN query looks at for clustering: enough that a person with many faces near the
#: new one still leaves room for a second person.
NEIGHBOURS = 20

FACE_INDEX_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "auto_expand_replicas": "0-1",
    "knn": True,
}

FACE_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "image_id": {"type": "keyword"},
        "face": {"type": "integer"},
        "box": {
            "properties": {name: {"type": "float"} for name in ("left", "top", "width", "height")}
        },
        "person_id": {"type": "keyword"},
        "embedding": {
            "type": "knn_vector",
            "dimension": DIMENSION,
            "method": {
                "name": "hnsw",
                "space_type": "l2",
                "engine": "lucene",
                "parameters": {"ef_construction": 128, "m": 16},
            },
        },
    },
}


def face_doc_id(image: str, face: int) -> str:
    return f"{image}-{face}"


@dataclass(frozen=True)
class FaceDoc:
    """One face as the face index holds it."""

    image_id: str
    face: int
    box: Box
    person_id: str
    embedding: Sequence[float]

    @property
    def doc_id(self) -> str:
        return face_doc_id(self.image_id, self.face)

    def source(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "face": self.face,
            "box": self.box.model_dump(),
            "person_id": self.person_id,
            "embedding": [float(v) for v in self.embedding],
        }


@dataclass(frozen=True)
class Neighbour:
    """A face found near a vector: which, whose, and how far (Euclidean)."""

    image_id: str
    face: int
    person_id: str
    distance: float
    box: Box


def _distance(score: float) -> float:
    """The l2 distance behind a Lucene l2 score, 1 / (1 + d²)."""
    return math.sqrt(max(0.0, 1.0 / score - 1.0)) if score > 0 else math.inf


class FaceIndex:
    """`<RUDOLPH_INDEX>-faces`: the faces' vectors, for k-NN queries."""

    def __init__(self, settings: Settings, client: OpenSearch | None = None) -> None:
        # The image index's client and its translation of transport errors.
        self._images = SearchIndex(settings, client)
        self._client = self._images.client
        self.name = f"{settings.index}-faces"
        self._ensured = False

    def ensure(self) -> str:
        """Create the face index unless it exists (safe from many processes); its name."""
        with self._images.calling():
            if self._client.indices.exists(index=self.name):
                self._check_mapping()
            else:
                body = {"settings": FACE_INDEX_SETTINGS, "mappings": FACE_MAPPING}
                try:
                    self._client.indices.create(index=self.name, body=body)
                except RequestError as exc:
                    if exc.error != "resource_already_exists_exception":
                        raise
        self._ensured = True
        return self.name

    def _check_mapping(self) -> None:
        found = self._client.indices.get_mapping(index=self.name)
        mappings = next(iter(found.values()))["mappings"]
        problems = mapping_problems(FACE_MAPPING, mappings, prefix="face.")
        if problems:
            raise ConfigurationError(
                f"index {self.name!r} is not rudolph's face index ({'; '.join(problems)}): "
                "delete it and run `rudolph reindex`, or set RUDOLPH_INDEX to another name"
            )

    def _ready(self) -> None:
        if not self._ensured:
            self.ensure()

    def put(self, faces: Iterable[FaceDoc], refresh: bool = False) -> None:
        """Index faces (replacing those of the same image and number)."""
        from opensearchpy.helpers import bulk

        actions = [
            {"_index": self.name, "_id": face.doc_id, "_source": face.source()} for face in faces
        ]
        if not actions:
            return
        self._ready()
        with self._images.calling():
            _, errors = bulk(
                self._client, actions, refresh="true" if refresh else "false", raise_on_error=False
            )
        if errors:
            raise IndexUnavailableError(
                f"the face index refused {len(errors)} face(s) ({errors[0]}); will retry"
            )

    def refresh(self) -> None:
        self._ready()
        with self._images.calling():
            self._client.indices.refresh(index=self.name)

    def nearest(
        self, vector: Iterable[float], k: int = NEIGHBOURS, within: float | None = None
    ) -> list[Neighbour]:
        """The `k` faces nearest `vector`, nearest first (only those within `within`)."""
        self._ready()
        body = {
            "size": k,
            "_source": ["image_id", "face", "person_id", "box"],
            "query": {"knn": {"embedding": {"vector": [float(v) for v in vector], "k": k}}},
        }
        with self._images.calling():
            response = self._client.search(index=self.name, body=body)
        found = []
        for hit in response["hits"]["hits"]:
            source, distance = hit["_source"], _distance(float(hit["_score"]))
            if within is not None and distance >= within:
                continue
            found.append(
                Neighbour(
                    image_id=str(source["image_id"]),
                    face=int(source["face"]),
                    person_id=str(source["person_id"]),
                    distance=distance,
                    box=Box.model_validate(source["box"]),
                )
            )
        return sorted(found, key=lambda n: n.distance)

    def faces_where(self, field: str, values: Sequence[str]) -> Iterator[dict[str, Any]]:
        """The face documents (without their vectors) whose `field` is one of `values`."""
        from opensearchpy.helpers import scan

        if not values:
            return
        self._ready()
        with self._images.calling():
            yield from (
                hit["_source"]
                for hit in scan(
                    self._client,
                    index=self.name,
                    query={"query": {"terms": {field: list(values)}}},
                    _source_excludes=["embedding"],
                )
            )

    def image_ids_of(self, person_ids: Sequence[str]) -> list[str]:
        """The images with a face of one of these persons."""
        return sorted({str(f["image_id"]) for f in self.faces_where("person_id", person_ids)})

    def set_person(self, person_ids: Sequence[str], to: str) -> None:
        """Give the faces of `person_ids` the person `to` (after a merge)."""
        self._by_query(
            "_update_by_query",
            "person_id",
            person_ids,
            {"source": "ctx._source.person_id = params.to", "params": {"to": to}},
        )

    def delete_where(self, field: str, values: Sequence[str]) -> None:
        """Delete the faces whose `field` is one of `values` (an image's, a person's)."""
        self._by_query("_delete_by_query", field, values)

    def _by_query(self, op: str, field: str, values: Sequence[str], script: Any = None) -> None:
        """`_update_by_query` or `_delete_by_query` on the faces whose `field` is one of
        `values` (none: nothing to do)."""
        if not values:
            return
        self._ready()
        body: dict[str, Any] = {"query": {"terms": {field: list(values)}}}
        if script is not None:
            body["script"] = script
        with self._images.calling():
            # Refreshed first: a face written a moment ago is changed too.
            self._client.indices.refresh(index=self.name)
            self._client.transport.perform_request(
                "POST",
                f"/{self.name}/{op}",
                params={"conflicts": "proceed", "refresh": "true"},
                body=body,
            )

    def clear(self) -> None:
        """Delete every face (before `rudolph people recluster` rewrites them all)."""
        self._ready()
        with self._images.calling():
            self._client.transport.perform_request(
                "POST",
                f"/{self.name}/_delete_by_query",
                params={"conflicts": "proceed", "refresh": "true"},
                body={"query": {"match_all": {}}},
            )
