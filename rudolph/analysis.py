"""Analyse one image with one backend into a record; a failing feature does not sink the others."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rudolph.backends.base import Analyzer
from rudolph.enrich import derived_labels
from rudolph.errors import RudolphError
from rudolph.record import AnalyzerInfo, Face, Label, Record, image_id, status_for
from rudolph.settings import Feature
from rudolph.source import ImageInput

log = logging.getLogger(__name__)


def feature_error(exc: BaseException) -> str:
    """The message a record keeps for a failed feature: what went wrong and what to do."""
    if isinstance(exc, RudolphError):
        return f"{exc.code}: {exc}"
    # A bug or a model runtime failure: keep the type so it can be found in the logs.
    return f"InternalError: {type(exc).__name__}: {exc} (this is a bug in rudolph; please report)"


def run_feature(
    analyzer: Analyzer, feature: Feature, image: ImageInput
) -> tuple[list[Any], str | None]:
    """(results, None) on success, ([], message) on failure."""
    try:
        return list(analyzer.run(feature, image)), None
    except Exception as exc:
        if not isinstance(exc, RudolphError):
            log.exception("%s failed on %s", feature, image.name)
        return [], feature_error(exc)


def analyze(image: ImageInput, analyzer: Analyzer, features: Sequence[Feature]) -> Record:
    results: dict[str, list[Any]] = {}
    errors: dict[str, str] = {}
    for feature in features:
        results[feature], error = run_feature(analyzer, feature, image)
        if error:
            errors[feature] = error
    labels: list[Label] = results.get("labels", [])
    faces: list[Face] = results.get("faces", [])
    if "labels" in features and "labels" not in errors:
        labels = derived_labels(labels, results.get("text", []), faces)
    dimensions = image.dimensions()
    location = image.s3
    return Record(
        image_id=image_id(location.bucket, location.key) if location else image_id("", image.name),
        source=image.name,
        bucket=location.bucket if location else None,
        key=location.key if location else None,
        version_id=location.version_id if location else None,
        size=location.size if location else None,
        width=dimensions[0] if dimensions else None,
        height=dimensions[1] if dimensions else None,
        status=status_for(len(features), errors),
        labels=labels,
        text=results.get("text", []),
        faces=faces,
        errors=errors,
        analyzer=AnalyzerInfo(
            backend=analyzer.name,
            versions={f: analyzer.version(f) for f in features if f not in errors},
            notes=analyzer.notes(image),
        ),
        analyzed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
