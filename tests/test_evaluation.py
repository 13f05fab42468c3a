"""How good the local backend is, judged on real photographs shipped in PyPI packages
(tests/photos.py lists them and their licences) and on pictures made from them.

Runs the real `rudolph analyze --json` once over every image, then checks the issue's bar:
the expected label (or a parent) in the top 5 for >= 90% of the images; at most one useless
abstract label in any top 5; every face counted; every person boxed; >= 90% of the expected
words read on each image and >= 95% over all, as WORD entries (evenly spaced letters on a sign
split into their words, a tight crop of one word read); no text line >= 80% on images without
text; the same words on an EXIF-rotated copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rudolph.models.taxonomy import ABSTRACT_LABELS
from tests.analyze_cli import analyze_json
from tests.photos import (
    PHOTOS,
    encode,
    exif_rotated_jpeg,
    group_picture,
    load,
    person_and_cat_picture,
    sign_picture,
    word_crop,
)

PAGE_WORDS = (
    "Region-based segmentation Let us first determine markers of the coins and the background "
    "These markers are pixels that we can label unambiguously as either object or background "
    "Here the markers are found at the two extreme parts of the histogram of grey values markers"
)


@dataclass(frozen=True)
class Expected:
    labels: frozenset[str] = frozenset()  # any of these in the top 5 counts as a hit
    faces: int | None = None
    people: int | None = None  # Person instances (boxes)
    words: tuple[str, ...] | None = None  # None: the image has no text at all
    has_text: bool = False  # text we do not check word by word


@dataclass
class Case:
    path: Path
    expected: Expected
    record: dict[str, Any] = field(default_factory=dict)


def _words(text: str) -> list[str]:
    return [w for w in (re.sub(r"^\W+|\W+$", "", t).lower() for t in text.split()) if w]


def _labels(*names: str) -> frozenset[str]:
    return frozenset(names)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    made = tmp_path_factory.mktemp("made")

    def save(name: str, data: bytes) -> Path:
        path = made / name
        path.write_bytes(data)
        return path

    page = load("page")
    cases = {
        "chelsea": Case(PHOTOS["chelsea"], Expected(_labels("Cat"), faces=0)),
        "coffee": Case(PHOTOS["coffee"], Expected(_labels("Coffee", "Cup", "Beverage"), faces=0)),
        "rocket": Case(PHOTOS["rocket"], Expected(_labels("Missile", "Space Shuttle"), faces=0)),
        "motorcycle": Case(
            PHOTOS["motorcycle"], Expected(_labels("Motorcycle"), faces=0, has_text=True)
        ),
        "china": Case(
            PHOTOS["china"], Expected(_labels("Building", "Architecture", "Palace"), faces=0)
        ),
        "flower": Case(PHOTOS["flower"], Expected(_labels("Flower", "Daisy"), faces=0)),
        "clock": Case(PHOTOS["clock"], Expected(_labels("Clock"), faces=0)),
        "hubble": Case(PHOTOS["hubble"], Expected(faces=0)),
        "camera": Case(PHOTOS["camera"], Expected(_labels("Camera", "Person"), faces=1)),
        "astronaut": Case(PHOTOS["astronaut"], Expected(_labels("Person"), faces=1)),
        # Re-encoded as JPEG, the space-suit collar once scored as a second face.
        "astronaut_jpeg": Case(
            save("astronaut.jpg", encode(load("astronaut"), "JPEG", quality=88)),
            Expected(_labels("Person"), faces=1),
        ),
        "grace_hopper": Case(
            PHOTOS["grace_hopper"], Expected(_labels("Person"), faces=1, words=("como", "hopper"))
        ),
        "group": Case(
            save("group.jpg", encode(group_picture(), "JPEG", quality=92)),
            Expected(_labels("Person"), faces=3, people=3, has_text=True),
        ),
        "person_and_cat": Case(
            save("person-and-cat.jpg", encode(person_and_cat_picture(), "JPEG", quality=92)),
            Expected(_labels("Person", "Cat"), people=1, has_text=True),
        ),
        "page": Case(
            PHOTOS["page"], Expected(_labels("Text"), faces=0, words=tuple(_words(PAGE_WORDS)))
        ),
        # The same JPEG encoding as the rotated copy, so that orientation is all they differ in.
        "page_jpeg": Case(
            save("page.jpg", encode(page, "JPEG", quality=95)),
            Expected(_labels("Text"), faces=0, words=tuple(_words(PAGE_WORDS))),
        ),
        "page_exif_rotated": Case(
            save("page-rotated.jpg", exif_rotated_jpeg(page)),
            Expected(_labels("Text"), faces=0, words=tuple(_words(PAGE_WORDS))),
        ),
        "no_parking": Case(
            save("no-parking.png", encode(sign_picture("china", "NO PARKING"), "PNG")),
            Expected(_labels("Text", "Building"), faces=0, words=("no", "parking")),
        ),
        # Evenly spaced letters: the recognizer reads "NOPARKING" without a space.
        "no_parking_spaced": Case(
            save(
                "no-parking-spaced.png", encode(sign_picture("china", "NO PARKING", tracking=0.5))
            ),
            Expected(_labels("Text", "Building"), faces=0, words=("no", "parking")),
        ),
        "word_crop": Case(
            save("parking-crop.jpg", encode(word_crop("PARKING"), "JPEG", quality=92)),
            Expected(_labels("Text"), faces=0, words=("parking",)),
        ),
        "word_crop_exit": Case(
            save("exit-crop.png", encode(word_crop("EXIT"), "PNG")),
            Expected(_labels("Text"), faces=0, words=("exit",)),
        ),
        "plate": Case(
            save(
                "plate.jpg",
                encode(sign_picture("motorcycle", "NDV 9IF", where=(0.55, 0.75)), "JPEG"),
            ),
            Expected(_labels("Motorcycle", "Text"), faces=0, words=("ndv", "9if")),
        ),
    }
    records = analyze_json([case.path for case in cases.values()])
    for case, record in zip(cases.values(), records, strict=True):
        case.record = record
    return cases


def _top5(case: Case) -> list[str]:
    return [label["name"] for label in case.record["labels"][:5]]


def test_every_image_was_analysed_without_errors(cases: dict[str, Case]) -> None:
    for name, case in cases.items():
        assert case.record["status"] == "done", (name, case.record["errors"])


def test_expected_label_in_the_top_5_for_90_percent(cases: dict[str, Case]) -> None:
    judged = {n: c for n, c in cases.items() if c.expected.labels}
    assert len(judged) >= 12
    misses = {n: _top5(c) for n, c in judged.items() if not c.expected.labels & set(_top5(c))}
    hit_rate = 1 - len(misses) / len(judged)
    print(f"label hit rate {hit_rate:.0%}; misses: {misses}")
    assert hit_rate >= 0.9, misses


def test_at_most_one_abstract_label_in_any_top_5(cases: dict[str, Case]) -> None:
    for name, case in cases.items():
        abstract = [n for n in _top5(case) if n.lower() in ABSTRACT_LABELS]
        assert len(abstract) <= 1, (name, abstract)


def test_every_face_counted(cases: dict[str, Case]) -> None:
    counts = {n: len(c.record["faces"]) for n, c in cases.items()}
    expected = {n: c.expected.faces for n, c in cases.items() if c.expected.faces is not None}
    assert {n: counts[n] for n in expected} == expected


def test_every_person_boxed(cases: dict[str, Case]) -> None:
    expected = {n: c.expected.people for n, c in cases.items() if c.expected.people is not None}
    counted = {}
    for name in expected:
        labels = {label["name"]: label for label in cases[name].record["labels"]}
        counted[name] = len(labels["Person"]["instances"]) if "Person" in labels else 0
    assert counted == expected


def _word_misses(case: Case) -> list[str]:
    """Expected words that no WORD entry reads (each WORD entry is one word, not a line)."""
    found = {
        t["text"].lower().strip(".,:;!?()") for t in case.record["text"] if t["type"] == "WORD"
    }
    return [w for w in case.expected.words or () if w not in found]


def test_expected_words_read(cases: dict[str, Case]) -> None:
    for name, case in cases.items():
        if not case.expected.words:
            continue
        missing = _word_misses(case)
        recall = 1 - len(missing) / len(case.expected.words)
        assert recall >= 0.9, (name, f"{recall:.0%}", missing)


def test_word_recall_over_all_images_is_at_least_95_percent(cases: dict[str, Case]) -> None:
    expected = sum(len(c.expected.words or ()) for c in cases.values())
    missing = {n: m for n, c in cases.items() if (m := _word_misses(c))}
    recall = 1 - sum(len(m) for m in missing.values()) / expected
    print(f"word recall {recall:.1%} of {expected} words; missing: {missing}")
    assert recall >= 0.95, missing


def test_no_confident_text_on_images_without_text(cases: dict[str, Case]) -> None:
    for name, case in cases.items():
        if case.expected.words is None and not case.expected.has_text:
            confident = [
                (t["text"], round(t["confidence"]))
                for t in case.record["text"]
                if t["type"] == "LINE" and t["confidence"] >= 80
            ]
            assert not confident, (name, confident)


def test_exif_rotated_copy_reads_the_same_words(cases: dict[str, Case]) -> None:
    def words(case: Case) -> list[str]:
        return [t["text"] for t in case.record["text"] if t["type"] == "WORD"]

    upright, rotated = cases["page_jpeg"], cases["page_exif_rotated"]
    assert (rotated.record["width"], rotated.record["height"]) == (384, 191)
    assert words(rotated) == words(upright)
