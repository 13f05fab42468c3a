"""The Rekognition face collection of the persons (RUDOLPH_ANALYZER=rekognition with
RUDOLPH_PEOPLE=on): CreateCollection, SearchFaces and DeleteFaces (IndexFaces is the faces
task's own call, rudolph/backends/rekognition.py).

Every face rudolph indexes carries its image id as ExternalImageId. An image id is 64 hex
digits, inside ExternalImageId's characters (`[a-zA-Z0-9_.\\-:]+`, at most 255), so the mapping
is the identity, checked both ways: a face whose ExternalImageId is not an image id was not
indexed by rudolph, and is refused rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rudolph import aws
from rudolph.errors import (
    AnalyzerError,
    ConfigurationError,
    FaceCollectionError,
    TransientAnalyzerError,
)
from rudolph.ratelimit import Limiter, limiter_for
from rudolph.record import FACE_ID, Box
from rudolph.settings import Settings

#: Similarity (0-100) from which SearchFaces' match is taken for the same person: between
#: the API's default (80) and the 99 AWS advises where a wrong match harms someone.
SAME_PERSON_SIMILARITY = 90.0
#: Matches SearchFaces returns for clustering: as many faces of one person as k-NN looks at.
MATCHES = 20
#: Seconds a call may wait for its turn under RUDOLPH_RATE_LIMITS (e.g. SearchFaces=50) before
#: it gives its worker back (RateLimitedError: the task retries later).
MAX_RATE_WAIT = 2.0
#: DeleteFaces takes at most this many FaceIds a call (FaceIdList in the API model).
DELETE_BATCH = 4096
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")
_FACE_ID = re.compile(FACE_ID)
#: Rekognition's error codes a later try may get past (throttling, server errors): every
#: Rekognition call of rudolph's (analysis and collection) retries them as TransientErrors.
TRANSIENT = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
}
#: The IAM actions the workers need on the collection (deploy/aws's worker policy has them).
ACTIONS = (
    "rekognition:CreateCollection",
    "rekognition:IndexFaces",
    "rekognition:SearchFaces",
    "rekognition:DeleteFaces",
)


def external_id(image_id: str) -> str:
    """The ExternalImageId of an image's faces: the image id itself (64 hex digits, inside
    ExternalImageId's character set)."""
    if not _IMAGE_ID.fullmatch(image_id):
        raise ValueError(f"{image_id!r} is not an image id (64 hex digits)")
    return image_id


def image_of(external: str, collection: str) -> str:
    """The image id behind an ExternalImageId (the inverse of `external_id`)."""
    if not _IMAGE_ID.fullmatch(external):
        raise FaceCollectionError(
            f"face collection {collection!r} holds a face with ExternalImageId {external!r}, "
            "which rudolph did not index: give rudolph a collection of its own "
            "(RUDOLPH_FACE_COLLECTION) and run `rudolph init`"
        )
    return external


def face_id_of(face: dict[str, Any], collection: str) -> str:
    """A face's FaceId as the collection answered it; refused when missing or misshapen."""
    found = face.get("FaceId")
    if not isinstance(found, str) or not _FACE_ID.fullmatch(found):
        raise FaceCollectionError(
            f"face collection {collection!r} answered a face without a usable FaceId "
            f"({found!r}); nothing was changed: try again, and report it if it stays"
        )
    return found


def service_error(exc: ClientError, what: str) -> AnalyzerError:
    """A Rekognition ClientError as rudolph's error: throttling and 5xx are transient (the
    task retries), anything else is final."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message") or "no message")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in TRANSIENT or status >= 500:
        return TransientAnalyzerError(f"{what}: {message}", code)
    return AnalyzerError(f"{what}: {message}", code)


@dataclass(frozen=True)
class Match:
    """A face SearchFaces found: its id, its image and how similar (0-100)."""

    face_id: str
    image_id: str
    similarity: float
    box: Box


class FaceCollection:
    """One Rekognition face collection (`settings.collection_id`)."""

    def __init__(
        self, settings: Settings, client: Any = None, limiter: Limiter | None = None
    ) -> None:
        self.settings = settings
        self.client = client or aws.client("rekognition", settings)
        self.name = settings.collection_id
        self._limiter = limiter

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        if self._limiter is None:  # APIs without a rate never touch Redis
            self._limiter = limiter_for(self.settings)
        # search_faces -> SearchFaces: the API's name, as quotas and RUDOLPH_RATE_LIMITS say.
        self._limiter.wait(self.client.meta.method_to_api_mapping[operation], MAX_RATE_WAIT)
        try:
            response: dict[str, Any] = getattr(self.client, operation)(
                CollectionId=self.name, **params
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"Rekognition face collection {self.name!r} does not exist: run "
                    "`rudolph init` with RUDOLPH_PEOPLE=on (or set RUDOLPH_FACE_COLLECTION)"
                ) from exc
            if code == "AccessDeniedException":
                raise ConfigurationError(
                    f"access denied to face collection {self.name!r}: grant "
                    f"{', '.join(ACTIONS)} to the worker's role"
                ) from exc
            raise service_error(exc, f"face collection {self.name!r}") from exc
        except BotoCoreError as exc:
            raise TransientAnalyzerError(
                f"Rekognition unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        return response

    def ensure(self) -> bool:
        """Create the collection unless it exists (safe from many processes); True when this
        call created it."""
        try:
            self._call("create_collection")
        except AnalyzerError as exc:
            if exc.service_code == "ResourceAlreadyExistsException":
                return False
            raise
        return True

    def search(
        self, face_id: str, limit: int = MATCHES, threshold: float = SAME_PERSON_SIMILARITY
    ) -> list[Match]:
        """The faces most like a face of the collection (itself excluded), most similar first."""
        response = self._call(
            "search_faces", FaceId=face_id, MaxFaces=limit, FaceMatchThreshold=threshold
        )
        matches = []
        for found in response.get("FaceMatches", []):
            face = found.get("Face", {})
            box = face.get("BoundingBox", {})
            matches.append(
                Match(
                    face_id=face_id_of(face, self.name),
                    image_id=image_of(str(face.get("ExternalImageId", "")), self.name),
                    similarity=float(found.get("Similarity", 0.0)),
                    box=Box(
                        left=box.get("Left", 0.0),
                        top=box.get("Top", 0.0),
                        width=box.get("Width", 0.0),
                        height=box.get("Height", 0.0),
                    ),
                )
            )
        return sorted((m for m in matches if m.face_id != face_id), key=lambda m: -m.similarity)

    def delete(self, face_ids: Sequence[str]) -> None:
        """Delete faces from the collection (those already gone are no error)."""
        wanted = sorted(set(face_ids))
        for start in range(0, len(wanted), DELETE_BATCH):
            self._call("delete_faces", FaceIds=wanted[start : start + DELETE_BATCH])
