"""Labels derived from other features, the same for every backend."""

from __future__ import annotations

from rudolph.record import Face, Label


def with_people(labels: list[Label], faces: list[Face]) -> list[Label]:
    """Add Person and Face labels when faces were found and the labels lack them.

    ImageNet classifiers have no person class, and a face detector is the better judge anyway.
    """
    if not faces:
        return labels
    names = {label.name for label in labels}
    confidence = max(face.confidence for face in faces)
    extra = []
    if "Person" not in names:
        extra.append(Label(name="Person", confidence=confidence, aliases=["Human"]))
    if "Face" not in names:
        extra.append(Label(name="Face", confidence=confidence, parents=["Person"]))
    return sorted(labels + extra, key=lambda label: (-label.confidence, label.name))
