"""The OpenSearch document of a record: every field of MAPPING, nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rudolph.record import Record


def _unique(values: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(values))


def to_document(record: Record) -> dict[str, Any]:
    """The OpenSearch document of a record (every field of MAPPING, nothing else)."""
    lines = [t.text for t in record.text if t.type == "LINE"]
    words = [t.text for t in record.text if t.type == "WORD"]
    if not lines:
        lines = words
    if not words:
        words = [word for line in lines for word in line.split()]
    return {
        "image_id": record.image_id,
        "bucket": record.bucket,
        "key": record.key,
        "metadata": [f"{name}={value}" for name, value in sorted(record.metadata.items())],
        "content_type": record.content_type,
        "size": record.size,
        "width": record.width,
        "height": record.height,
        "status": record.status,
        "labels": _unique(label.name for label in record.labels),
        "label_parents": _unique(p for label in record.labels for p in label.parents),
        "label_aliases": _unique(a for label in record.labels for a in label.aliases),
        "label_details": [
            {
                "name": label.name,
                "confidence": label.confidence,
                "rank": round(label.confidence),
                "instances": len(label.instances),
                "parents": list(label.parents),
                "aliases": list(label.aliases),
            }
            for label in record.labels
        ],
        "text": lines,
        "text_all": "\n".join(lines),
        "text_words": _unique(iter(words)),
        "face_count": len(record.faces),
        "has_text": bool(lines),
        "errors": dict(record.errors),
        "analyzer_backend": record.analyzer.backend if record.analyzer else None,
        "event_time": record.event_time,
        "analyzed_at": record.analyzed_at,
    }
