"""One image through one backend, feature by feature, into a record.

A feature that fails does not sink the others: its outcome carries an error message and the
record's status says `partial` or `failed`. The CLI runs the features in one process; the fleet
runs each as its own task and hands the outcomes to `build_record` in the aggregator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rudolph.backends.base import Analyzer
from rudolph.enrich import derived_labels
from rudolph.errors import RudolphError
from rudolph.record import AnalyzerInfo, Face, Label, Record, TextDetection, image_id, status_for
from rudolph.settings import Feature
from rudolph.source import ImageInput, ObjectAttributes

log = logging.getLogger(__name__)


class FeatureOutcome(BaseModel):
    """What one feature found in one image, or why it could not (JSON for task results)."""

    model_config = ConfigDict(frozen=True)

    feature: Feature
    labels: list[Label] = Field(default_factory=list)
    text: list[TextDetection] = Field(default_factory=list)
    faces: list[Face] = Field(default_factory=list)
    error: str | None = None
    backend: str | None = None
    version: str | None = None
    notes: list[str] = Field(default_factory=list)
    width: int | None = None
    height: int | None = None
    ms: float = 0.0
    #: What S3 returned with the bytes the feature read, so the aggregate needs no HEAD.
    s3_object: ObjectAttributes | None = None


def feature_error(exc: BaseException) -> str:
    """The message a record keeps for a failed feature: what went wrong and what to do."""
    if isinstance(exc, RudolphError):
        return f"{exc.code}: {exc}"
    # A bug or a model runtime failure: keep the type so it can be found in the logs.
    return f"InternalError: {type(exc).__name__}: {exc} (this is a bug in rudolph; please report)"


def run_feature(
    analyzer: Analyzer, feature: Feature, image: ImageInput, *, raise_retryable: bool = True
) -> FeatureOutcome:
    """Run one feature; errors that retrying cannot fix become the outcome's error.

    Retryable errors (throttling, timeouts) are raised when `raise_retryable`, so a task can
    retry later; otherwise they become the outcome's error too.
    """
    started = time.perf_counter()
    try:
        found: list[Any] = list(analyzer.run(feature, image))
    except Exception as exc:
        if raise_retryable and getattr(exc, "retryable", False):
            raise
        if not isinstance(exc, RudolphError):
            log.exception("%s failed on %s", feature, image.name)
        return FeatureOutcome(
            feature=feature,
            error=feature_error(exc),
            backend=analyzer.name,
            ms=(time.perf_counter() - started) * 1000,
        )
    dimensions = image.dimensions()
    return FeatureOutcome.model_validate(
        {
            "feature": feature,
            feature: found,
            "backend": analyzer.name,
            "version": analyzer.version(feature),
            "notes": analyzer.notes(image),
            "width": dimensions[0] if dimensions else None,
            "height": dimensions[1] if dimensions else None,
            "ms": (time.perf_counter() - started) * 1000,
        }
    )


def build_record(
    outcomes: Sequence[FeatureOutcome], *, image_id: str, backend: str, **fields: Any
) -> Record:
    """Merge feature outcomes into the record; `fields` fill the object's own attributes."""
    by_feature = {o.feature: o for o in outcomes}
    errors: dict[str, str] = {o.feature: o.error for o in outcomes if o.error}
    labels = by_feature["labels"].labels if "labels" in by_feature else []
    text = by_feature["text"].text if "text" in by_feature else []
    faces = by_feature["faces"].faces if "faces" in by_feature else []
    if "labels" in by_feature and "labels" not in errors:
        labels = derived_labels(labels, text, faces)
    fields.setdefault("width", _first(o.width for o in outcomes))
    fields.setdefault("height", _first(o.height for o in outcomes))
    return Record(
        image_id=image_id,
        status=status_for(len(outcomes), errors),
        labels=labels,
        text=text,
        faces=faces,
        errors=errors,
        analyzer=AnalyzerInfo(
            backend=_first(o.backend for o in outcomes) or backend,
            versions={o.feature: o.version for o in outcomes if o.version},
            notes=list(dict.fromkeys(note for o in outcomes for note in o.notes)),
        ),
        analyzed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
    )


def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def analyze(image: ImageInput, analyzer: Analyzer, features: Sequence[Feature]) -> Record:
    """All requested features of one image in this process (the CLI's path: no retries, a
    temporary failure is reported like any other)."""
    outcomes = [
        run_feature(analyzer, feature, image, raise_retryable=False) for feature in features
    ]
    location = image.s3
    return build_record(
        outcomes,
        image_id=image_id(location.bucket, location.key) if location else image_id("", image.name),
        backend=analyzer.name,
        source=image.name,
        bucket=location.bucket if location else None,
        key=location.key if location else None,
        version_id=location.version_id if location else None,
        size=location.size if location else None,
    )
