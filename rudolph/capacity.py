"""What one worker core does, as measured, and what a backlog therefore needs.

The figures are the local backend's on the project's 2-core machine (one Celery worker
process per feature, one onnxruntime thread, 640x480 photos; README "Capacity guide"). The
deployments (deploy/aws/build.py, deploy/k8s/build.py) size and scale their workers from
them, and the README's worked example is `workers_needed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rudolph.vocabulary import AGGREGATE_QUEUE, FEATURES, Feature


@dataclass(frozen=True)
class Measured:
    #: Images per second one worker process analyses on one core (the lower figure of the
    #: measured range, so capacity is not overstated).
    images_per_core_second: float
    #: Resident memory of that worker, in MB, low and high of the measured range.
    rss_mb: tuple[int, int]


MEASURED: dict[Feature, Measured] = {
    "labels": Measured(17.0, (308, 323)),
    # 2.7 before the text detector ran in 8 bits (rudolph.models.textdet).
    "text": Measured(9.0, (390, 397)),
    "faces": Measured(11.0, (376, 393)),
}
#: The aggregate merges, writes a record and a document: no model, bound by DynamoDB and
#: OpenSearch round trips. Not measured alone; an assumption for scaling thresholds only.
AGGREGATES_PER_WORKER_SECOND = 20.0
#: Seconds of one worker's work that may wait in its queue before another worker is added.
TARGET_BACKLOG_SECONDS = 60


def per_worker_second(queue: str) -> float:
    """Tasks per second one worker of this queue takes (one core for a feature)."""
    if queue == AGGREGATE_QUEUE:
        return AGGREGATES_PER_WORKER_SECOND
    if queue not in FEATURES:
        raise ValueError(f"unknown queue {queue!r}")
    return MEASURED[queue].images_per_core_second


def backlog_per_worker(queue: str) -> int:
    """Queue depth per worker to scale on: a minute of one worker's work (at least 10)."""
    return max(10, round(per_worker_second(queue) * TARGET_BACKLOG_SECONDS))


def workers_needed(images: int, hours: float, feature: Feature) -> int:
    """Worker cores of one feature that clear `images` in `hours` at the measured rate."""
    rate = images / (hours * 3600)
    return max(1, math.ceil(rate / MEASURED[feature].images_per_core_second))
