"""The index's settings and mapping, and how an existing index is checked against them.

Label fields are keywords (exact, any case and accents) with a `.text` subfield analysed by
`rudolph_label` (lowercase, ascii folding, english stemmer: "kittens" finds "Kitten"); queries
that want synonyms name the search-time analyzer `rudolph_synonyms`, which adds the taxonomy's
synonym rules after the stemmer ("automobiles" -> car, "puppies" -> dog).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rudolph.index import synonyms

NORMALIZED = "lowercase"  # the normalizer of every case-insensitive keyword field
LABEL_ANALYZER = "rudolph_label"
SYNONYM_ANALYZER = "rudolph_synonyms"

_LABEL_FILTERS = ["lowercase", "asciifolding", "rudolph_english"]

INDEX_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    # No replica on a single node (no yellow dev cluster), one as soon as there is a second.
    "auto_expand_replicas": "0-1",
    "analysis": {
        "normalizer": {
            NORMALIZED: {"type": "custom", "filter": ["lowercase", "asciifolding"]},
        },
        "tokenizer": {
            "key_path": {"type": "path_hierarchy", "delimiter": "/"},
            # The standard tokenizer keeps "tabby.jpg" and "a_b" whole: split on anything but
            # letters and digits instead.
            "key_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"},
        },
        "filter": {
            "rudolph_english": {"type": "stemmer", "language": "english"},
            # Rules are analysed by the filters before this one, so they match stemmed words.
            "rudolph_synonyms": {"type": "synonym_graph", "synonyms": list(synonyms.rules())},
        },
        "analyzer": {
            "key_path": {"type": "custom", "tokenizer": "key_path"},
            "key_words": {
                "type": "custom",
                "tokenizer": "key_words",
                "filter": ["lowercase", "asciifolding"],
            },
            LABEL_ANALYZER: {"type": "custom", "tokenizer": "standard", "filter": _LABEL_FILTERS},
            SYNONYM_ANALYZER: {
                "type": "custom",
                "tokenizer": "standard",
                "filter": [*_LABEL_FILTERS, "rudolph_synonyms"],
            },
        },
    },
}


def _label_field() -> dict[str, Any]:
    """Exact and case-insensitive as a keyword; `.text` matches plurals (and, with the
    synonym analyzer at search time, synonyms)."""
    return {
        "type": "keyword",
        "normalizer": NORMALIZED,
        "fields": {
            "text": {"type": "text", "analyzer": LABEL_ANALYZER},
            # As written ("Cat", not "cat"): what facets count and show.
            "display": {"type": "keyword"},
        },
    }


_PROPERTIES: dict[str, Any] = {
    "image_id": {"type": "keyword"},
    "bucket": {"type": "keyword"},
    "key": {
        "type": "keyword",
        "fields": {
            # Words of the key: "cars/red_car.jpg" is found by "red" and "car".
            "text": {"type": "text", "analyzer": "key_words"},
            # Every folder of the key: a term query on "cars/2024" is a prefix query.
            "path": {"type": "text", "analyzer": "key_path", "search_analyzer": "keyword"},
        },
    },
    # S3 user metadata as "name=value" keywords: portable, and uploader-chosen names cannot
    # grow the mapping.
    "metadata": {"type": "keyword"},
    "content_type": {"type": "keyword"},
    "size": {"type": "long"},
    "width": {"type": "integer"},
    "height": {"type": "integer"},
    "status": {"type": "keyword"},
    "labels": _label_field(),
    "label_parents": _label_field(),
    "label_aliases": _label_field(),
    "label_details": {
        "type": "nested",
        "properties": {
            "name": _label_field(),
            "confidence": {"type": "float"},
            # The whole percent, which scores ties: whole numbers times a power of two add up
            # exactly in float and double, so search_after on _score never skips a hit.
            "rank": {"type": "integer"},
            # How many of it the image holds (its instances: boxes): `label:person count>=3`.
            "instances": {"type": "integer"},
            "parents": _label_field(),
            "aliases": _label_field(),
        },
    },
    # OCR lines, one array value each; the gap keeps a phrase inside one line here.
    "text": {"type": "text", "analyzer": "standard", "position_increment_gap": 100},
    # The whole OCR text in reading order, lines joined: a phrase across consecutive lines
    # ("DOUBLE" / "PARKING") matches here, and ranks below the same phrase within one line.
    "text_all": {"type": "text", "analyzer": "standard"},
    "text_words": {"type": "keyword", "normalizer": NORMALIZED, "ignore_above": 256},
    "face_count": {"type": "integer"},
    "smiling_faces": {"type": "integer"},
    "unsmiling_faces": {"type": "integer"},
    "face_emotions": {"type": "keyword", "normalizer": NORMALIZED},
    # DetectFaces' attributes of each face (the 100 most confident), one nested entry each, so
    # that conditions on one face hold together (a smiling face that is also sharp).
    "face_details": {
        "type": "nested",
        "properties": {
            "confidence": {"type": "float"},
            "smile": {"type": "boolean"},
            "smile_confidence": {"type": "float"},
            "emotion": {"type": "keyword", "normalizer": NORMALIZED},
            "emotion_confidence": {"type": "float"},
            "roll": {"type": "float"},
            "yaw": {"type": "float"},
            "pitch": {"type": "float"},
            "brightness": {"type": "float"},
            "sharpness": {"type": "float"},
        },
    },
    "has_text": {"type": "boolean"},
    # Kept with the document, never searched.
    "errors": {"type": "object", "enabled": False},
    "analyzer_backend": {"type": "keyword"},
    "event_time": {"type": "date"},
    "analyzed_at": {"type": "date"},
}

#: The mapping's version: a digest of the settings and mapping, so any change (text_all, other
#: synonyms) bumps it. An index built with another is told apart by its `_meta` and must be
#: rebuilt with `rudolph reindex`.
SCHEMA = hashlib.sha256(
    json.dumps([INDEX_SETTINGS, _PROPERTIES], sort_keys=True).encode()
).hexdigest()[:16]

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "_meta": {"rudolph_schema": SCHEMA},
    "properties": _PROPERTIES,
}


def mapping_problems(
    expected: dict[str, Any], actual: dict[str, Any], prefix: str = ""
) -> list[str]:
    """Fields of `expected` that `actual` lacks or maps to another type or analyzer."""
    problems = []
    for name, spec in expected.get("properties", {}).items():
        path = f"{prefix}{name}"
        have = actual.get("properties", {}).get(name)
        if have is None:
            problems.append(f"{path} missing")
            continue
        want_type, have_type = spec.get("type", "object"), have.get("type", "object")
        if want_type != have_type:
            problems.append(f"{path} is {have_type}, not {want_type}")
            continue
        for sub, sub_spec in spec.get("fields", {}).items():
            have_sub = have.get("fields", {}).get(sub)
            if have_sub is None or have_sub.get("type") != sub_spec["type"]:
                problems.append(f"{path}.{sub} missing or not {sub_spec['type']}")
            elif have_sub.get("analyzer", "standard") != sub_spec.get("analyzer", "standard"):
                problems.append(f"{path}.{sub} analysed by {have_sub.get('analyzer')}")
        problems += mapping_problems(spec, have, path + ".")
    if not prefix and (actual.get("_meta") or {}).get("rudolph_schema") != SCHEMA:
        problems.append("built with other analysis settings or synonyms")
    return problems
