"""Labels derived from the other features, the same for every backend, and how label lists
from several sources become one.

An ImageNet classifier has no person or text class, and the face detector and the OCR are the
better judges anyway: their findings become labels, so a search for "person" or "text" works.
"""

from __future__ import annotations

from collections.abc import Iterable

from rudolph.record import Face, Label, TextDetection


def _union(*lists: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for items in lists for item in items))


def merge_labels(*sources: Iterable[Label]) -> list[Label]:
    """One label per name: the best confidence of its sources, their parents, aliases and
    instances together; most confident first (then by name)."""
    merged: dict[str, Label] = {}
    for source in sources:
        for label in source:
            have = merged.get(label.name)
            if have is None:
                merged[label.name] = label
                continue
            instances = sorted([*have.instances, *label.instances], key=lambda i: -i.confidence)
            merged[label.name] = Label(
                name=label.name,
                confidence=max(have.confidence, label.confidence),
                parents=_union(have.parents, label.parents),
                aliases=_union(have.aliases, label.aliases),
                instances=instances,
            )
    return sorted(merged.values(), key=lambda label: (-label.confidence, label.name))


def derived_labels(
    labels: list[Label], text: list[TextDetection], faces: list[Face]
) -> list[Label]:
    """`labels` plus Person, Face and Text where faces or text lines were found."""
    extra: list[Label] = []
    if faces:
        confidence = max(face.confidence for face in faces)
        extra += [
            Label(name="Person", confidence=confidence, aliases=["Human"]),
            Label(name="Face", confidence=confidence, parents=["Person"]),
        ]
    lines = [t for t in text if t.type == "LINE"]
    if lines:
        extra.append(Label(name="Text", confidence=max(line.confidence for line in lines)))
    return merge_labels(labels, extra)
