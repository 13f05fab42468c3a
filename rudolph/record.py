"""The record: one per image, the same shape everywhere (CLI, DynamoDB, OpenSearch).

Confidences are percentages (0-100) and boxes are ratios of the image size, as Rekognition
gives them, whatever backend produced them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rudolph.vocabulary import DONE, FAILED, PARTIAL, PENDING, Status

TextType = Literal["LINE", "WORD"]

#: At most this many faces of one record carry an embedding (the most confident ones), so that
#: a crowd cannot push the DynamoDB item towards its 400 KB limit: 100 take ~34 KB.
MAX_EMBEDDED_FACES = 100
#: An embedding as stored: base64 of 128 little-endian float16 (rudolph.models.faceid.encode).
EMBEDDING_CHARS = 344
_EMBEDDING = r"^[A-Za-z0-9+/]{342}==$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Box(_Model):
    left: float
    top: float
    width: float
    height: float


class Landmark(_Model):
    type: str
    x: float
    y: float


class Instance(_Model):
    """One occurrence of a label in the image (a person, a dog), as DetectLabels' Instances."""

    confidence: float
    box: Box


class Label(_Model):
    name: str
    confidence: float
    parents: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    # Where the label is, one entry per object found (most confident first); empty for labels
    # that are about the whole image (Outdoors, Text) or that no detector locates.
    instances: list[Instance] = Field(default_factory=list)


class TextDetection(_Model):
    text: str
    type: TextType
    confidence: float
    id: int
    parent_id: int | None = None
    box: Box


class Face(_Model):
    confidence: float
    box: Box
    landmarks: list[Landmark] = Field(default_factory=list)
    # Extra attributes a backend may give (Rekognition with Attributes=ALL: age range,
    # emotions, pose...), kept as the service returned them.
    attributes: dict[str, Any] = Field(default_factory=dict)
    # Who the face is, as a point in dlib's 128-d face space (same person: within 0.6), in
    # base64 of float16; only with RUDOLPH_PEOPLE=on, else absent (not even null). Biometric
    # data: kept in the record, never in the search document (k-NN vectors go to their own
    # index).
    embedding: str | None = Field(
        default=None, pattern=_EMBEDDING, exclude_if=lambda value: value is None
    )


class AnalyzerInfo(_Model):
    backend: str
    versions: dict[str, str] = Field(default_factory=dict)
    # What was done to the image before analysis that a reader should know about
    # (downscaled, re-encoded, converted from another format).
    notes: list[str] = Field(default_factory=list)


class Record(_Model):
    image_id: str
    source: str | None = None
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    content_type: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    status: Status = PENDING
    labels: list[Label] = Field(default_factory=list)
    text: list[TextDetection] = Field(default_factory=list)
    faces: list[Face] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)
    analyzer: AnalyzerInfo | None = None
    event_time: str | None = None
    sequencer: str | None = None
    analyzed_at: str | None = None

    @model_validator(mode="after")
    def _embeddings_are_bounded(self) -> Record:
        embedded = sum(face.embedding is not None for face in self.faces)
        if embedded > MAX_EMBEDDED_FACES:
            raise ValueError(
                f"{embedded} faces carry an embedding; at most {MAX_EMBEDDED_FACES} may"
            )
        return self


#: What `image_id` returns: a SHA-256 in lowercase hex.
IMAGE_ID = re.compile(r"[0-9a-f]{64}")


def image_id(bucket: str, key: str) -> str:
    """Fixed-length id of an S3 object (OpenSearch ids are limited to 512 bytes)."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()


def status_for(requested: int, errors: dict[str, str]) -> Status:
    """done when nothing failed, failed when every requested feature failed, else partial."""
    if not errors:
        return DONE
    return FAILED if len(errors) >= requested else PARTIAL
