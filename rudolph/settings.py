"""Every setting rudolph reads, in one typed object, read from the environment once.

Names and defaults are listed in the README's settings table (docs/architecture.md has the
design); `Settings.from_env()` is the only place that touches `os.environ`, so the rest of the
code takes a `Settings` and stays testable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from rudolph.buckets import BucketFilter, parse_buckets
from rudolph.errors import ConfigurationError
from rudolph.vocabulary import FEATURES, Feature

__all__ = ["FEATURES", "Backend", "Feature", "People", "Settings", "get_settings"]

Backend = Literal["local", "rekognition"]
#: RUDOLPH_PEOPLE: whether faces get an identity embedding (biometric data, so off by default).
People = Literal["off", "on"]
#: Default of RUDOLPH_DECODE_BUDGET_MB (rudolph.images).
DECODE_BUDGET_MB = 512

# Environment variable -> field name. Unknown RUDOLPH_* variables are ignored on purpose so
# that a newer deployment's settings do not crash an older worker.
_ENV: dict[str, str] = {
    "RUDOLPH_AWS_ENDPOINT_URL": "aws_endpoint_url",
    "RUDOLPH_REKOGNITION_ENDPOINT_URL": "rekognition_endpoint_url",
    "AWS_REGION": "aws_region",
    "RUDOLPH_BUCKET": "bucket",
    "RUDOLPH_BUCKETS": "buckets",
    "RUDOLPH_QUEUE_NAME": "queue_name",
    "RUDOLPH_TABLE": "table",
    "RUDOLPH_OPENSEARCH_URL": "opensearch_url",
    "RUDOLPH_OPENSEARCH_AUTH": "opensearch_auth",
    "RUDOLPH_INDEX": "index",
    "RUDOLPH_ANALYZER": "analyzer",
    "RUDOLPH_MIN_CONFIDENCE": "min_confidence",
    "RUDOLPH_MAX_LABELS": "max_labels",
    "RUDOLPH_LOCAL_LABEL_CONFIDENCE": "local_label_confidence",
    "RUDOLPH_FACE_ATTRIBUTES": "face_attributes",
    "RUDOLPH_PEOPLE": "people",
    "RUDOLPH_FACE_COLLECTION": "face_collection",
    "RUDOLPH_MODEL_DIR": "model_dir",
    "RUDOLPH_THREADS": "threads",
    "RUDOLPH_REDIS_URL": "redis_url",
    "RUDOLPH_RATE_LIMITS": "rate_limits",
    "RUDOLPH_MAX_OBJECT_MB": "max_object_mb",
    "RUDOLPH_DECODE_BUDGET_MB": "decode_budget_mb",
    "RUDOLPH_PENDING_AFTER": "pending_after",
    "RUDOLPH_LOG_FORMAT": "log_format",
    "RUDOLPH_WEB_AUTH": "web_auth",
    "RUDOLPH_WEB_URL_EXPIRES": "web_url_expires",
}


def _default_redis_url() -> str:
    # The rate limiter shares the broker's Redis unless told otherwise.
    broker = os.environ.get("CELERY_BROKER_URL", "")
    return broker if broker.startswith(("redis://", "rediss://")) else "redis://127.0.0.1:6379/0"


def _parse_rates(value: object) -> object:
    """'DetectLabels=50,DetectText=50' -> (('DetectLabels', '50'), ('DetectText', '50'))."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if not isinstance(value, str):
        return value
    rates = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, rate = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not API=requests_per_second")
        rates.append((name.strip(), rate.strip()))
    return tuple(sorted(rates))


def _parse_bucket_list(value: object) -> object:
    return parse_buckets(value) if isinstance(value, str) else value


def _default_model_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rudolph" / "models"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    aws_endpoint_url: str | None = None
    # Rekognition somewhere else than S3/SQS/DynamoDB (an emulator only the tests have).
    rekognition_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    # The first watched bucket (RUDOLPH_BUCKET, or the first of RUDOLPH_BUCKETS): the one
    # `rudolph dev --demo` uploads to.
    bucket: str = "reindeer-dropzone"
    # Every watched bucket, each maybe narrowed to a key prefix and suffixes (rudolph/buckets.py);
    # RUDOLPH_BUCKET alone is a list of one.
    buckets: Annotated[tuple[BucketFilter, ...], BeforeValidator(_parse_bucket_list)] = ()
    # Which variable gave `buckets`, for messages that say what to change.
    buckets_setting: Literal["RUDOLPH_BUCKET", "RUDOLPH_BUCKETS"] = "RUDOLPH_BUCKET"
    queue_name: str = "rudolph-events"
    table: str = "rudolph-images"
    opensearch_url: str = "http://127.0.0.1:9200"
    opensearch_auth: Literal["none", "basic", "sigv4"] = "none"
    index: str = "rudolph-images"
    analyzer: Backend = "local"
    min_confidence: float = Field(55.0, ge=0, le=100)
    max_labels: int = Field(20, ge=1, le=1000)
    # The local classifier spreads its probability over 1000 fine-grained ImageNet classes,
    # so a clear photo's own class often scores 20-40% (parents sum their children and score
    # higher); its labels get their own floor instead of RUDOLPH_MIN_CONFIDENCE.
    local_label_confidence: float = Field(20.0, ge=0, le=100)
    # Rekognition DetectFaces attributes: DEFAULT (box, landmarks, pose, quality) or ALL.
    face_attributes: Literal["DEFAULT", "ALL"] = "DEFAULT"
    # Face identity (issue 17): with "on", the local backend gives each face a 128-d embedding
    # of who it is (dlib's face ResNet), stored with the record. That is biometric data, so it
    # stays "off" unless someone decides otherwise: no embedding is computed or stored then.
    people: People = "off"
    # The Rekognition face collection of the persons (RUDOLPH_ANALYZER=rekognition with
    # RUDOLPH_PEOPLE=on); unset: "<RUDOLPH_TABLE>-faces". CollectionId's own character set.
    face_collection: str | None = Field(None, pattern=r"^[a-zA-Z0-9_.\-]{1,255}$")
    # Where the local backend keeps models it derives at first use (the labels ONNX file).
    model_dir: Path = Field(default_factory=_default_model_dir)
    # onnxruntime threads per model; None lets onnxruntime use every core.
    threads: int | None = Field(None, ge=1)
    # Shared state of the fleet (the rate limiter's buckets).
    redis_url: str = Field(default_factory=_default_redis_url)
    # Fleet-wide requests per second per Rekognition API (AWS's default quotas in the big
    # regions); a call waits for its turn across every worker on every host.
    # (A tuple of pairs, not a dict, so that Settings stays hashable.)
    rate_limits: Annotated[tuple[tuple[str, float], ...], BeforeValidator(_parse_rates)] = (
        ("DetectFaces", 100.0),
        ("DetectLabels", 50.0),
        ("DetectText", 50.0),
    )
    # Objects larger than this get a failed record at the door instead of an analysis.
    max_object_mb: float = Field(50.0, gt=0)
    # Most memory the decoded pixels of one image may take; a larger image (a PNG bomb: a
    # few KB that decode to gigabytes) is refused before decoding. See rudolph.images.
    decode_budget_mb: int = Field(DECODE_BUDGET_MB, ge=16)
    # A record pending longer than this many seconds is dispatched again by `reconcile`.
    pending_after: float = Field(900.0, gt=0)
    # Log lines as text for people or JSON for log pipelines.
    log_format: Literal["text", "json"] = "text"
    # `rudolph web`: "user:password" for HTTP basic auth on every page and API (unset: none);
    # a SecretStr so that it never shows in a repr, a log line or an error message.
    web_auth: SecretStr | None = None
    # Seconds the presigned S3 URLs of `rudolph web` stay valid (the browser's only access).
    web_url_expires: int = Field(300, ge=1, le=7 * 86400)

    @model_validator(mode="before")
    @classmethod
    def _one_bucket_is_a_list_of_one(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if not values.get("buckets"):
            values["buckets"] = values.get("bucket") or cls.model_fields["bucket"].default
            values["buckets_setting"] = "RUDOLPH_BUCKET"
            return values
        values["buckets_setting"] = "RUDOLPH_BUCKETS"
        if not values.get("bucket") and isinstance(values["buckets"], str):
            with suppress(ValueError):  # the field's own validation says what is wrong
                values["bucket"] = parse_buckets(values["buckets"])[0].name
        return values

    @model_validator(mode="after")
    def _bucket_is_watched(self) -> Settings:
        if self.bucket not in {f.name for f in self.buckets}:
            raise ValueError(
                f"RUDOLPH_BUCKET={self.bucket!r} is not among RUDOLPH_BUCKETS: "
                "set only RUDOLPH_BUCKETS, or list that bucket in it"
            )
        return self

    @property
    def people_on(self) -> bool:
        """RUDOLPH_PEOPLE=on: faces get identity embeddings."""
        return self.people == "on"

    @property
    def collection_id(self) -> str:
        """The face collection's id: RUDOLPH_FACE_COLLECTION, else the table's name + -faces."""
        return self.face_collection or f"{self.table}-faces"[:255]

    def rate_limit(self, api: str) -> float | None:
        """Requests per second allowed fleet-wide for a Rekognition API, if limited."""
        return dict(self.rate_limits).get(api)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {field: env[name] for name, field in _ENV.items() if env.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                if not error["loc"]:  # a check across settings: its message names them
                    problems.append(str(error["msg"]).removeprefix("Value error, "))
                    continue
                field = str(error["loc"][0])
                if field == "buckets" and "buckets" not in values:
                    field = "bucket"  # the list of one that RUDOLPH_BUCKET makes
                name = next((n for n, f in _ENV.items() if f == field), field)
                problems.append(f"{name}={values.get(field)!r}: {error['msg']}")
            raise ConfigurationError(
                "invalid settings: " + "; ".join(problems) + " (fix or unset these variables)"
            ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()
