"""The OpenSearch document of a record: every field of MAPPING, nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rudolph.record import Face, Record

#: At most this many faces of an image (the most confident) are indexed one by one in
#: `face_details`; the counts and emotions cover every face.
MAX_INDEXED_FACES = 100


def _face_detail(face: Face) -> dict[str, Any]:
    """One face's attributes as the index keeps them (its dominant emotion only)."""
    top = face.emotions[0] if face.emotions else None
    detail: dict[str, Any] = {
        "confidence": face.confidence,
        "smile": face.smile.value if face.smile else None,
        "smile_confidence": face.smile.confidence if face.smile else None,
        "emotion": top.type if top else None,
        "emotion_confidence": top.confidence if top else None,
    }
    if face.pose:
        detail |= {"roll": face.pose.roll, "yaw": face.pose.yaw, "pitch": face.pose.pitch}
    if face.quality:
        detail |= {"brightness": face.quality.brightness, "sharpness": face.quality.sharpness}
    return {name: value for name, value in detail.items() if value is not None}


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
        # What `smile:yes` and `smile:no` look at: faces a backend said smile, or do not.
        "smiling_faces": sum(1 for f in record.faces if f.smile and f.smile.value),
        "unsmiling_faces": sum(1 for f in record.faces if f.smile and not f.smile.value),
        # Each face's most likely emotion (`emotion:happy`), as Rekognition names it.
        "face_emotions": _unique(f.emotions[0].type for f in record.faces if f.emotions),
        "face_details": [
            _face_detail(face)
            for face in sorted(record.faces, key=lambda f: -f.confidence)[:MAX_INDEXED_FACES]
        ],
        "has_text": bool(lines),
        "errors": dict(record.errors),
        "analyzer_backend": record.analyzer.backend if record.analyzer else None,
        "event_time": record.event_time,
        "analyzed_at": record.analyzed_at,
    }
