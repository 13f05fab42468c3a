"""The record: one per image, the same shape everywhere (CLI, DynamoDB, OpenSearch).

Confidences are percentages (0-100) and boxes are ratios of the image size, as Rekognition
gives them, whatever backend produced them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rudolph.vocabulary import DONE, FAILED, PARTIAL, PENDING, Status

TextType = Literal["LINE", "WORD"]

#: At most this many faces of one record carry an embedding (the most confident ones), so that
#: a crowd cannot push the DynamoDB item towards its 400 KB limit: 100 take ~34 KB.
MAX_EMBEDDED_FACES = 100
#: A Rekognition FaceId (a UUID, as its API model spells it).
FACE_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
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


#: Rekognition's EmotionName values (DetectFaces' FaceDetail.Emotions[].Type).
EmotionType = Literal[
    "HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR", "UNKNOWN"
]
EMOTION_TYPES: tuple[EmotionType, ...] = get_args(EmotionType)
Percent = Annotated[float, Field(ge=0, le=100)]
Degrees = Annotated[float, Field(ge=-180, le=180)]


def _absent_if_none(value: object) -> bool:
    return value is None


class Smile(_Model):
    """DetectFaces' Smile: is the face smiling, and how sure (0-100) of that answer."""

    value: bool
    confidence: Percent


class Emotion(_Model):
    """One of DetectFaces' Emotions: a type and how likely it is (0-100)."""

    type: EmotionType
    confidence: Percent


class Pose(_Model):
    """DetectFaces' Pose, in degrees: roll (clockwise in the image), yaw (positive towards the
    image's right), pitch (positive looking up)."""

    roll: Degrees
    yaw: Degrees
    pitch: Degrees


class Quality(_Model):
    """DetectFaces' Quality, 0-100: how bright and how sharp the face is."""

    brightness: Percent
    sharpness: Percent


class Face(_Model):
    confidence: float
    box: Box
    landmarks: list[Landmark] = Field(default_factory=list)
    # DetectFaces' face attributes, typed, whichever backend gave them (rudolph/backends):
    # absent (not even null) when the backend did not say.
    smile: Smile | None = Field(default=None, exclude_if=_absent_if_none)
    # Most likely first; at most one entry per type.
    emotions: list[Emotion] | None = Field(
        default=None, max_length=len(EMOTION_TYPES), exclude_if=_absent_if_none
    )
    pose: Pose | None = Field(default=None, exclude_if=_absent_if_none)
    quality: Quality | None = Field(default=None, exclude_if=_absent_if_none)
    # Other attributes a backend may give (Rekognition with RUDOLPH_FACE_ATTRIBUTES=ALL: age
    # range, glasses, beard...), kept as the service returned them.
    attributes: dict[str, Any] = Field(default_factory=dict)
    # Who the face is, as a point in dlib's 128-d face space (same person: within 0.6), in
    # base64 of float16; only with RUDOLPH_PEOPLE=on, else absent (not even null). Biometric
    # data: kept in the record, never in the search document (k-NN vectors go to their own
    # index).
    embedding: str | None = Field(default=None, pattern=_EMBEDDING, exclude_if=_absent_if_none)
    # The face's FaceId in the Rekognition face collection (RUDOLPH_ANALYZER=rekognition with
    # RUDOLPH_PEOPLE=on): how SearchFaces and DeleteFaces name it. Absent otherwise.
    face_id: str | None = Field(default=None, pattern=FACE_ID, exclude_if=_absent_if_none)

    @model_validator(mode="after")
    def _one_emotion_per_type(self) -> Face:
        types = [emotion.type for emotion in self.emotions or ()]
        if len(set(types)) != len(types):
            raise ValueError(f"an emotion type is given twice: {types}")
        return self


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
