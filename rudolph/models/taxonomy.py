"""Rekognition-style labels from ImageNet-1k class probabilities.

The vocabulary lives in `rudolph/data/taxonomy.json`, built by `scripts/build_taxonomy.py` from
WordNet 3.0 and a curated list of display names: each of the 1000 classes has a display name,
aliases and its curated ancestors ("Tabby Cat" -> Cat, Pet, Feline, Mammal, Animal), and each
ancestor label has its own parents and aliases.

`Taxonomy.labels` scores every name at once: a class name gets its probability (classes sharing a
display name are summed) and an ancestor label gets the summed probability of all classes under
it, each class counted once. One matrix product per image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

# WordNet abstractions that are true but useless as labels ("a tabby is a whole object").
# The build script refuses to curate any of them and the tests check none reaches the output.
ABSTRACT_LABELS: frozenset[str] = frozenset(
    {
        "abstraction",
        "abstract entity",
        "article",
        "artifact",
        "artefact",
        "being",
        "causal agent",
        "chordate",
        "commodity",
        "consumer goods",
        "container",
        "conveyance",
        "covering",
        "craniate",
        "creation",
        "device",
        "durables",
        "entity",
        "equipment",
        "eutherian",
        "eutherian mammal",
        "implement",
        "instrument",
        "instrumentality",
        "instrumentation",
        "living thing",
        "matter",
        "mechanism",
        "natural object",
        "object",
        "organism",
        "part",
        "physical entity",
        "physical object",
        "piece",
        "placental",
        "placental mammal",
        "plant organ",
        "plant part",
        "plant structure",
        "portion",
        "product",
        "protective covering",
        "relation",
        "reproductive structure",
        "restraint",
        "solid",
        "structure",
        "substance",
        "system",
        "thing",
        "unit",
        "vertebrate",
        "ware",
        "whole",
    }
)

_DATA_PACKAGE = "rudolph"
_DATA_PATH = ("data", "taxonomy.json")


@dataclass(frozen=True)
class ScoredLabel:
    """One label for one image; confidence in percent (0-100), like Rekognition's."""

    name: str
    confidence: float
    parents: list[str]
    aliases: list[str]


def _merge(into: list[str], items: list[str]) -> None:
    for item in items:
        if item not in into:
            into.append(item)


class Taxonomy:
    """Names (class names and their ancestor labels) scored from class probabilities."""

    def __init__(
        self,
        names: list[str],
        membership: np.ndarray,
        parents: dict[str, list[str]],
        aliases: dict[str, list[str]],
    ) -> None:
        if membership.shape[0] != len(names):
            raise ValueError("membership needs one row per name")
        self.names = names
        self.num_classes = int(membership.shape[1])
        # Each name's classes as one flat index list: summing with np.add.reduceat avoids a
        # BLAS matrix product, whose helper threads cost ~100 ms of CPU an image and broke
        # the one-thread-per-worker-process budget.
        rows, columns = np.nonzero(membership)
        self._members = columns.astype(np.intp)
        self._starts = np.searchsorted(rows, np.arange(len(names))).astype(np.intp)
        self._has_members = np.bincount(rows, minlength=len(names)) > 0
        self._parents = parents
        self._aliases = aliases

    @classmethod
    def load(cls, path: str | Path | None = None) -> Taxonomy:
        """Read the taxonomy JSON: `path`, or the file packaged with rudolph."""
        if path is None:
            resource = resources.files(_DATA_PACKAGE)
            for part in _DATA_PATH:
                resource = resource / part
            text = resource.read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Taxonomy:
        classes = sorted(data["classes"], key=lambda c: c["index"])
        if [c["index"] for c in classes] != list(range(len(classes))):
            raise ValueError("taxonomy classes must be numbered 0..n-1")
        labels: dict[str, dict[str, Any]] = data["labels"]

        parents: dict[str, list[str]] = {}
        aliases: dict[str, list[str]] = {}
        for name, entry in labels.items():
            parents[name] = list(entry.get("parents", []))
            aliases[name] = list(entry.get("aliases", []))
        members: dict[str, set[int]] = {}
        for c in classes:
            name = c["name"]
            _merge(parents.setdefault(name, []), [p for p in c["parents"] if p != name])
            _merge(aliases.setdefault(name, []), c["aliases"])
            for label in (name, *c["parents"]):
                if label not in labels and label != name:
                    raise ValueError(f"class {c['index']}: parent {label!r} has no labels entry")
                members.setdefault(label, set()).add(c["index"])

        names = sorted(members)
        membership = np.zeros((len(names), len(classes)), dtype=np.float32)
        for row, name in enumerate(names):
            membership[row, sorted(members[name])] = 1.0
        return cls(names, membership, parents, aliases)

    def parents(self, name: str) -> list[str]:
        return list(self._parents.get(name, []))

    def aliases(self, name: str) -> list[str]:
        return list(self._aliases.get(name, []))

    def scores(self, probabilities: np.ndarray) -> np.ndarray:
        """Confidence in percent (0-100) of every name in `self.names`."""
        p = np.asarray(probabilities, dtype=np.float32).reshape(-1)
        if p.shape[0] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} class probabilities, got {p.shape[0]}")
        sums = np.zeros(len(self.names), dtype=np.float64)
        if self._members.size:
            # reduceat sums p[members] between consecutive starts; rows without members
            # would pick up a neighbour's value, hence the mask.
            starts = np.minimum(self._starts, self._members.size - 1)
            reduced = np.add.reduceat(p[self._members].astype(np.float64), starts)
            sums = np.where(self._has_members, reduced, 0.0)
        return np.clip(sums * 100.0, 0.0, 100.0)

    def labels(
        self, probabilities: np.ndarray, min_confidence: float, max_labels: int
    ) -> list[ScoredLabel]:
        """Names with confidence >= min_confidence, most confident first (then by name)."""
        if max_labels <= 0:
            return []
        confidence = self.scores(probabilities)
        rows = np.flatnonzero(confidence >= min_confidence)
        ranked = sorted(rows.tolist(), key=lambda r: (-confidence[r], self.names[r]))
        return [
            ScoredLabel(
                name=self.names[r],
                confidence=float(confidence[r]),
                parents=self.parents(self.names[r]),
                aliases=self.aliases(self.names[r]),
            )
            for r in ranked[:max_labels]
        ]
