"""Labels derived from the other features, the same for every backend.

An ImageNet classifier has no person or text class, and the face detector and the OCR are the
better judges anyway: their findings become labels, so a search for "person" or "text" works.
"""

from __future__ import annotations

from rudolph.record import Face, Label, TextDetection


def derived_labels(
    labels: list[Label], text: list[TextDetection], faces: list[Face]
) -> list[Label]:
    """`labels` plus Person, Face and Text where faces or text lines were found."""
    have = {label.name for label in labels}
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
    added = [label for label in extra if label.name not in have]
    return sorted(labels + added, key=lambda label: (-label.confidence, label.name))
