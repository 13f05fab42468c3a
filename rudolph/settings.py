"""Every setting rudolph reads, in one typed object, read from the environment once.

Names and defaults are the ones in ARCHITECTURE.md; `Settings.from_env()` is the only place
that touches `os.environ`, so the rest of the code takes a `Settings` and stays testable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rudolph.errors import ConfigurationError

Backend = Literal["local", "rekognition"]
Feature = Literal["labels", "text", "faces"]
FEATURES: tuple[Feature, ...] = ("labels", "text", "faces")

# Environment variable -> field name. Unknown RUDOLPH_* variables are ignored on purpose so
# that a newer deployment's settings do not crash an older worker.
_ENV: dict[str, str] = {
    "RUDOLPH_AWS_ENDPOINT_URL": "aws_endpoint_url",
    "RUDOLPH_REKOGNITION_ENDPOINT_URL": "rekognition_endpoint_url",
    "AWS_REGION": "aws_region",
    "RUDOLPH_BUCKET": "bucket",
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
    "RUDOLPH_MODEL_DIR": "model_dir",
    "RUDOLPH_THREADS": "threads",
}


def _default_model_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rudolph" / "models"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    aws_endpoint_url: str | None = None
    # Rekognition somewhere else than S3/SQS/DynamoDB (an emulator only the tests have).
    rekognition_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    bucket: str = "reindeer-dropzone"
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
    # Where the local backend keeps models it derives at first use (the labels ONNX file).
    model_dir: Path = Field(default_factory=_default_model_dir)
    # onnxruntime threads per model; None lets onnxruntime use every core.
    threads: int | None = Field(None, ge=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {field: env[name] for name, field in _ENV.items() if env.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else "?"
                name = next((n for n, f in _ENV.items() if f == field), field)
                problems.append(f"{name}={values.get(field)!r}: {error['msg']}")
            raise ConfigurationError(
                "invalid settings: " + "; ".join(problems) + " (fix or unset these variables)"
            ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()
