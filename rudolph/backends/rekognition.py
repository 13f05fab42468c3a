"""Amazon Rekognition: DetectLabels, DetectText and DetectFaces, mapped to the record.

Objects already in S3 are passed by reference (no download, 15 MB limit); anything else is
sent as bytes, converted to JPEG first when it is another format, and shrunk to fit the 5 MB
limit for bytes. What was done to the image is said in the record's notes.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from rudolph import aws
from rudolph.backends.base import Analyzer
from rudolph.collection import (
    ACTIONS,
    MAX_RATE_WAIT,
    TRANSIENT,
    FaceCollection,
    external_id,
    face_id_of,
)
from rudolph.errors import AnalyzerError, TransientAnalyzerError
from rudolph.images import decode, encode_jpeg, open_image
from rudolph.ratelimit import Limiter, limiter_for
from rudolph.record import (
    EMOTION_TYPES,
    MAX_EMBEDDED_FACES,
    Box,
    Emotion,
    EmotionType,
    Face,
    Instance,
    Label,
    Landmark,
    Pose,
    Quality,
    Smile,
    TextDetection,
    image_id,
)
from rudolph.settings import Feature, Settings
from rudolph.source import ImageInput

S3_OBJECT_LIMIT = 15 * 1024 * 1024
BYTES_LIMIT = 5 * 1024 * 1024
MAX_SIDE = 10_000
_S3_FORMATS = {".jpg", ".jpeg", ".png"}

# Refusals of an S3Object that a converted copy sent as bytes can fix.
_FIX_BY_CONVERTING = {
    "ImageTooLargeException",
    "InvalidImageFormatException",
    "InvalidParameterException",
}
_ADVICE = {
    "InvalidImageFormatException": "Rekognition accepts JPEG and PNG only: convert the image",
    "ImageTooLargeException": "downscale the image (15 MB in S3, 5 MB as bytes, 10,000 px)",
    "InvalidS3ObjectException": "check the object exists and Rekognition's region matches "
    "the bucket's",
    "AccessDeniedException": "grant rekognition:Detect* and s3:GetObject to the worker's role",
    "ResourceNotFoundException": "the face collection is missing: run `rudolph init` with "
    "RUDOLPH_PEOPLE=on (RUDOLPH_FACE_COLLECTION names it)",
    "InvalidParameterException": "the image is probably too small or corrupt",
}


def _api_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def _box(geometry: dict[str, Any]) -> Box:
    return Box(
        left=geometry.get("Left", 0.0),
        top=geometry.get("Top", 0.0),
        width=geometry.get("Width", 0.0),
        height=geometry.get("Height", 0.0),
    )


def map_labels(response: dict[str, Any], min_confidence: float) -> list[Label]:
    return [
        Label(
            name=label["Name"],
            confidence=label["Confidence"],
            parents=[p["Name"] for p in label.get("Parents", [])],
            aliases=[a["Name"] for a in label.get("Aliases", [])],
            instances=[
                Instance(confidence=found["Confidence"], box=_box(found["BoundingBox"]))
                for found in label.get("Instances", [])
                if "BoundingBox" in found and found.get("Confidence", 0.0) >= min_confidence
            ],
        )
        for label in response.get("Labels", [])
        if label["Confidence"] >= min_confidence
    ]


def map_text(response: dict[str, Any], min_confidence: float) -> list[TextDetection]:
    return [
        TextDetection(
            text=item["DetectedText"],
            type=item["Type"],
            confidence=item["Confidence"],
            id=item["Id"],
            parent_id=item.get("ParentId"),
            box=_box(item["Geometry"]["BoundingBox"]),
        )
        for item in response.get("TextDetections", [])
        if item["Confidence"] >= min_confidence
    ]


#: IndexFaces' filter: AUTO leaves out the faces Rekognition itself deems too poor to match
#: (tiny, blurred, turned away); they stay in the record, unindexed.
QUALITY_FILTER = "AUTO"
#: What DetectFaces is asked for: its DEFAULT set (box, landmarks, Pose, Quality) and the two
#: attributes the record and the index carry (Smile, Emotions); RUDOLPH_FACE_ATTRIBUTES=ALL
#: asks for everything (age range, glasses...), kept in `attributes`. The price is the same.
FACE_ATTRIBUTES = {"DEFAULT": ["DEFAULT", "SMILE", "EMOTIONS"], "ALL": ["ALL"]}
# FaceDetail keys that have a field of their own in the record.
_MAPPED = ("BoundingBox", "Confidence", "Landmarks", "Smile", "Emotions", "Pose", "Quality")


def _bounded(value: Any, low: float, high: float) -> float:
    return min(high, max(low, float(value)))


def _smile(detail: dict[str, Any]) -> Smile | None:
    smile = detail.get("Smile")
    if not smile or "Value" not in smile:
        return None
    return Smile(
        value=bool(smile["Value"]), confidence=_bounded(smile.get("Confidence", 0), 0, 100)
    )


def _emotions(detail: dict[str, Any]) -> list[Emotion] | None:
    if "Emotions" not in detail:
        return None
    best: dict[str, float] = {}
    for emotion in detail["Emotions"]:
        kind = emotion.get("Type")
        if kind in EMOTION_TYPES:  # a type newer than this code is left out
            best[kind] = max(best.get(kind, 0.0), _bounded(emotion.get("Confidence", 0), 0, 100))
    ranked = sorted(best.items(), key=lambda item: -item[1])
    return [Emotion(type=cast(EmotionType, kind), confidence=c) for kind, c in ranked]


def _pose(detail: dict[str, Any]) -> Pose | None:
    pose = detail.get("Pose")
    if not pose:
        return None
    return Pose(
        **{k.lower(): _bounded(pose.get(k, 0), -180, 180) for k in ("Roll", "Yaw", "Pitch")}
    )


def _quality(detail: dict[str, Any]) -> Quality | None:
    quality = detail.get("Quality")
    if not quality:
        return None
    return Quality(
        **{k.lower(): _bounded(quality.get(k, 0), 0, 100) for k in ("Brightness", "Sharpness")}
    )


def map_faces(response: dict[str, Any], min_confidence: float) -> list[Face]:
    faces = []
    for detail in response.get("FaceDetails", []):
        if detail["Confidence"] < min_confidence:
            continue
        attributes = {k: v for k, v in detail.items() if k not in _MAPPED}
        faces.append(
            Face(
                confidence=detail["Confidence"],
                box=_box(detail["BoundingBox"]),
                landmarks=[
                    Landmark(type=m["Type"], x=m["X"], y=m["Y"])
                    for m in detail.get("Landmarks", [])
                ],
                smile=_smile(detail),
                emotions=_emotions(detail),
                pose=_pose(detail),
                quality=_quality(detail),
                attributes=attributes,
            )
        )
    return faces


class RekognitionAnalyzer(Analyzer):
    name = "rekognition"

    def __init__(
        self, settings: Settings, client: Any = None, limiter: Limiter | None = None
    ) -> None:
        super().__init__(settings)
        self.client = client or aws.client("rekognition", settings)
        # The fleet-wide limiter (settings.redis_url, settings.rate_limits), made on the first
        # call; pass rudolph.ratelimit.NO_LIMIT where no Redis is wanted (a stubbed client).
        self._limiter = limiter
        self._versions: dict[str, str] = {}
        # botocore retries a throttled call by itself (standard mode: up to 3 times): those
        # attempts wait for their turn too, or one throttle would bring on more.
        events = getattr(getattr(self.client, "meta", None), "events", None)
        if events is not None:
            events.register_first(
                "request-created.rekognition",
                self._limit_retry,
                unique_id="rudolph-ratelimit-retries",
            )

    @property
    def limiter(self) -> Limiter:
        if self._limiter is None:
            self._limiter = limiter_for(self.settings)
        return self._limiter

    def _limit_retry(self, request: Any, operation_name: str, **_: Any) -> None:
        if request.context.get("retries", {}).get("attempt", 1) > 1:
            self.limiter.wait(operation_name, max_wait=MAX_RATE_WAIT)

    # -- image parameter ------------------------------------------------------------------

    def _image_param(self, image: ImageInput) -> tuple[dict[str, Any], list[str]]:
        if self.name not in image.prepared:
            image.prepared[self.name] = self._prepare(image)
        prepared: tuple[dict[str, Any], list[str]] = image.prepared[self.name]
        return prepared

    def _prepare(self, image: ImageInput) -> tuple[dict[str, Any], list[str]]:
        location = image.s3
        if (
            location is not None
            and PurePosixPath(location.key).suffix.lower() in _S3_FORMATS
            and (location.size is None or location.size <= S3_OBJECT_LIMIT)
        ):
            s3_object = {"Bucket": location.bucket, "Name": location.key}
            if location.version_id:
                s3_object["Version"] = location.version_id
            return {"S3Object": s3_object}, []
        return self._as_bytes(image)

    def _as_bytes(self, image: ImageInput) -> tuple[dict[str, Any], list[str]]:
        """The image as bytes Rekognition accepts: JPEG or PNG, upright, <= 5 MB, <= 10,000 px."""
        data = image.data()
        opened = open_image(data)
        orientation = opened.getexif().get(0x0112, 1)
        if (
            opened.format in ("JPEG", "PNG")
            and len(data) <= BYTES_LIMIT
            and max(opened.size) <= MAX_SIDE
            and orientation == 1
        ):
            return {"Bytes": data}, []
        return self._reencode(data, opened.format or "unknown", len(data))

    def _reencode(self, data: bytes, fmt: str, size: int) -> tuple[dict[str, Any], list[str]]:
        decoded = decode(data, max_side=4096, budget_mb=self.settings.decode_budget_mb)
        rgb, quality = decoded.rgb, 90
        encoded = encode_jpeg(rgb, quality)
        while len(encoded) > BYTES_LIMIT:
            # Halve the pixels each round: quality alone cannot shrink a 40 MP photo enough.
            rgb = rgb[::2, ::2] if quality <= 75 else rgb
            quality = max(60, quality - 15)
            encoded = encode_jpeg(rgb, quality)
        height, width = rgb.shape[:2]
        note = (
            f"sent to Rekognition as a {width}x{height} JPEG of {len(encoded) / 1e6:.1f} MB "
            f"(original: {fmt}, {decoded.width}x{decoded.height} px, {size / 1e6:.1f} MB)"
        )
        return {"Bytes": encoded}, [note]

    # -- calls ------------------------------------------------------------------------------

    def _call(self, operation: str, image: ImageInput, **params: Any) -> dict[str, Any]:
        try:
            return self._call_once(operation, image, **params)
        except AnalyzerError as exc:
            if exc.service_code not in _FIX_BY_CONVERTING or "Bytes" in self._image_param(image)[0]:
                raise
        # Rekognition refused the object as it is in S3 (over 10,000 px, a JPEG it cannot
        # read, ...): send a downscaled, re-encoded copy instead, once, for every feature.
        data = image.data()
        fmt = open_image(data).format or "unknown"
        image.prepared[self.name] = self._reencode(data, fmt, len(data))
        return self._call_once(operation, image, **params)

    def _call_once(self, operation: str, image: ImageInput, **params: Any) -> dict[str, Any]:
        image_param, _ = self._image_param(image)
        # detect_labels -> DetectLabels: the API's name, as quotas and settings spell it.
        self.limiter.wait(_api_name(operation), max_wait=MAX_RATE_WAIT)
        try:
            response: dict[str, Any] = getattr(self.client, operation)(Image=image_param, **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            message = str(error.get("Message") or "no message")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in TRANSIENT or status >= 500:
                raise TransientAnalyzerError(message, code) from exc
            advice = _ADVICE.get(code, "see the Rekognition documentation for this error")
            raise AnalyzerError(f"{message}; {advice}", code) from exc
        except BotoCoreError as exc:
            raise TransientAnalyzerError(
                f"Rekognition unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        return response

    def labels(self, image: ImageInput) -> list[Label]:
        response = self._call(
            "detect_labels",
            image,
            MaxLabels=self.settings.max_labels,
            MinConfidence=self.settings.min_confidence,
        )
        self._remember("labels", response.get("LabelModelVersion"))
        return map_labels(response, self.settings.min_confidence)

    def text(self, image: ImageInput) -> list[TextDetection]:
        response = self._call("detect_text", image)
        self._remember("text", response.get("TextModelVersion"))
        return map_text(response, self.settings.min_confidence)

    def faces(self, image: ImageInput) -> list[Face]:
        attributes = FACE_ATTRIBUTES[self.settings.face_attributes]
        if self.settings.people_on and image.s3 is not None:
            return self._index_faces(image, image_id(image.s3.bucket, image.s3.key), attributes)
        response = self._call("detect_faces", image, Attributes=attributes)
        self._remember("faces", None)
        return map_faces(response, self.settings.min_confidence)

    def _index_faces(self, image: ImageInput, key: str, attributes: list[str]) -> list[Face]:
        """IndexFaces instead of DetectFaces (RUDOLPH_PEOPLE=on): the same face details, and
        the faces it kept go into the collection, their FaceIds into the record."""
        collection = FaceCollection(self.settings, self.client, self.limiter)
        try:
            response = self._call(
                "index_faces",
                image,
                CollectionId=collection.name,
                ExternalImageId=external_id(key),
                DetectionAttributes=attributes,
                MaxFaces=MAX_EMBEDDED_FACES,
                QualityFilter=QUALITY_FILTER,
            )
        except AnalyzerError as exc:
            if exc.service_code != "AccessDeniedException":
                raise
            # The generic advice names Detect*: with people on, the missing grant is another.
            raise AnalyzerError(
                f"access denied to IndexFaces on face collection {collection.name!r}: grant "
                f"{', '.join(ACTIONS)} on it to the worker's role",
                exc.service_code,
            ) from exc
        self._remember("faces", response.get("FaceModelVersion"))
        found: list[tuple[str | None, dict[str, Any]]] = [
            (face_id_of(r.get("Face", {}), collection.name), r.get("FaceDetail", {}))
            for r in response.get("FaceRecords", [])
        ]
        # Faces IndexFaces left out (too small, blurred, over MaxFaces) are faces all the same.
        found += [(None, u.get("FaceDetail", {})) for u in response.get("UnindexedFaces", [])]
        found = [(i, d) for i, d in found if "BoundingBox" in d and "Confidence" in d]
        found.sort(key=lambda pair: -float(pair[1]["Confidence"]))
        low = self.settings.min_confidence
        # An indexed face the record does not keep would be a match nobody could name.
        dropped = [i for i, d in found if i is not None and d["Confidence"] < low]
        if dropped:
            collection.delete(dropped)
        kept = [(i, d) for i, d in found if d["Confidence"] >= low]
        faces = map_faces({"FaceDetails": [d for _, d in kept]}, low)
        return [
            face.model_copy(update={"face_id": i}) for face, (i, _) in zip(faces, kept, strict=True)
        ]

    def _remember(self, feature: str, model_version: str | None) -> None:
        self._versions[feature] = f"rekognition {model_version}" if model_version else "rekognition"

    def version(self, feature: Feature) -> str:
        return self._versions.get(feature, "rekognition")

    def notes(self, image: ImageInput) -> list[str]:
        prepared = image.prepared.get(self.name)
        return list(prepared[1]) if prepared else []
