"""rudolph.capacity: the README's Capacity guide worked example, and the figures it quotes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rudolph import capacity
from rudolph.vocabulary import FEATURES, QUEUES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_feature_is_measured() -> None:
    assert set(capacity.MEASURED) == set(FEATURES)


def test_the_worked_example() -> None:
    """1,000,000 images in 24 hours: 1 labels, 2 text and 2 faces cores."""
    needed = {f: capacity.workers_needed(1_000_000, 24, f) for f in FEATURES}
    assert needed == {"labels": 1, "text": 2, "faces": 2}
    assert capacity.workers_needed(10, 24, "text") == 1


def test_backlog_per_worker_is_a_minute_of_its_work() -> None:
    assert {q: capacity.backlog_per_worker(q) for q in QUEUES} == {
        "labels": 1020,
        "text": 540,
        "faces": 660,
        "aggregate": 1200,
    }
    with pytest.raises(ValueError):
        capacity.backlog_per_worker("nope")


def test_the_readme_quotes_the_figures() -> None:
    guide = README[README.index("## Capacity guide") : README.index("## Deploying")]
    for feature, measured in capacity.MEASURED.items():
        low, high = measured.rss_mb
        assert f"{low}\u2013{high} MB" in guide, feature  # an en dash
        assert f"{measured.images_per_core_second:g}" in guide, feature
    for queue in QUEUES:
        assert f"{queue} {capacity.backlog_per_worker(queue)}" in guide, queue
