"""The JSON API's response bodies: what /openapi.json describes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from rudolph.record import Box, Record


class Hit(BaseModel):
    image_id: str
    bucket: str | None
    key: str | None
    score: float
    matched: list[str] = Field(description="Why it matched, best first.")
    labels: list[str] = Field(description="Label names of the image, most confident first.")
    face_count: int
    url: str | None = Field(description="Presigned S3 GET URL of the image (expires).")
    page: str = Field(description="The image's page on this server.")


class Count(BaseModel):
    value: str
    count: int


class Facets(BaseModel):
    labels: list[Count] = Field(description="Top labels: images matching the query per label.")
    with_faces: int
    with_text: int
    status: list[Count] = Field(description="Images matching the query per record status.")


class SearchResult(BaseModel):
    query: str
    sort: str
    total: int = Field(description="Images matching the query (all pages).")
    hits: list[Hit]
    next_after: str | None = Field(
        description="Cursor of the next page: pass it as `after`; null on the last page."
    )
    facets: Facets | None = Field(description="Present when asked for with facets=true.")
    url_expires_in: int = Field(description="Seconds the hits' presigned URLs stay valid.")


class Image(BaseModel):
    record: Record = Field(description="The record, as stored in DynamoDB (the source of truth).")
    url: str | None = Field(description="Presigned S3 GET URL of the image (expires).")
    url_expires_in: int
    page: str


class Problem(BaseModel):
    """Every error answer: what was wrong and what to do."""

    detail: str
    column: int | None = Field(default=None, description="1-based column of a query syntax error.")
    query: str | None = Field(default=None, description="The query that has the syntax error.")


class SimilarFace(BaseModel):
    image_id: str
    face: int = Field(description="The face's number in its record's faces, from 0.")
    person_id: str
    distance: float = Field(
        description="Euclidean, between embeddings (same person: < 0.6); with the Rekognition "
        "backend 1 - SearchFaces' similarity / 100 (same person: < 0.1)."
    )
    box: Box
    page: str


class SimilarFaces(BaseModel):
    image_id: str
    face: int
    similar: list[SimilarFace]


class Person(BaseModel):
    """A person, as `rudolph people --json` prints it."""

    person_id: str
    name: str | None = Field(description="null until named.")
    face_count: int
    image_ids: list[str] = Field(description="The images with a face of this person.")


class Rename(BaseModel):
    name: str | None = Field(
        description="The new name (at most 100 characters, one line); empty or null unnames."
    )


class PersonName(BaseModel):
    person_id: str
    name: str | None = Field(description="The name as stored (stripped), null when unnamed.")
