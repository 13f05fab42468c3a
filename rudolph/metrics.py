"""Each Celery queue's depth as a CloudWatch metric, so ECS can scale each worker service on
its own queue (`rudolph metrics publish`).

CloudWatch cannot read Redis: nothing on AWS knows how many tasks wait in a Redis list. This
publisher reads the depths the way `rudolph status` does (`operations.queue_depths`: every
priority list of every queue) and sends them with one `PutMetricData` per interval, as the
metric `QueueDepth` in the namespace `Rudolph` with the dimensions `Fleet` (one stack's name,
so two fleets in an account never mix) and `Queue`. deploy/aws/rudolph.yaml runs it as a
one-task ECS service and scales the worker services on alarms over these metrics.

It must never be the reason a fleet stops scaling for good: a broker or CloudWatch that fails
is logged, and the next interval tries again; only a stop request ends the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rudolph import aws
from rudolph.errors import RudolphError
from rudolph.operations import queue_depths
from rudolph.settings import Settings
from rudolph.vocabulary import QUEUES

log = logging.getLogger("rudolph.metrics")

NAMESPACE = "Rudolph"
METRIC = "QueueDepth"
FLEET_DIMENSION = "Fleet"
QUEUE_DIMENSION = "Queue"
DEFAULT_FLEET = "rudolph"
#: Seconds between two publications: CloudWatch's standard resolution is one minute.
DEFAULT_INTERVAL = 60.0


def metric_data(depths: Mapping[str, int], fleet: str) -> list[dict[str, Any]]:
    """The PutMetricData entries of one reading, one per Celery queue (in QUEUES' order)."""
    return [
        {
            "MetricName": METRIC,
            "Dimensions": [
                {"Name": FLEET_DIMENSION, "Value": fleet},
                {"Name": QUEUE_DIMENSION, "Value": queue},
            ],
            "Value": float(depths[queue]),
            "Unit": "Count",
        }
        for queue in QUEUES
    ]


@dataclass
class Publication:
    """What one interval did: the depths sent, or why nothing was sent."""

    depths: dict[str, int] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class DepthPublisher:
    """Reads the Celery queue depths from the broker and puts them to CloudWatch."""

    def __init__(
        self,
        settings: Settings,
        app: Any,
        fleet: str = DEFAULT_FLEET,
        namespace: str = NAMESPACE,
        cloudwatch: Any = None,
        read_depths: Callable[[Any], dict[str, int]] = queue_depths,
    ) -> None:
        self.settings = settings
        self.app = app
        self.fleet = fleet
        self.namespace = namespace
        self._cloudwatch = cloudwatch
        self._read_depths = read_depths

    @property
    def cloudwatch(self) -> Any:
        if self._cloudwatch is None:
            self._cloudwatch = aws.client("cloudwatch", self.settings)
        return self._cloudwatch

    def publish_once(self) -> Publication:
        """One reading, one PutMetricData; a failure is returned (and logged), never raised."""
        try:
            depths = self._read_depths(self.app)
        except (RudolphError, OSError) as exc:
            log.warning("queue depths not read, trying again next interval: %s", exc)
            return Publication(None, f"broker: {exc}")
        try:
            self.cloudwatch.put_metric_data(
                Namespace=self.namespace, MetricData=metric_data(depths, self.fleet)
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("queue depths not published, trying again next interval: %s", exc)
            return Publication(depths, f"cloudwatch: {exc}")
        log.info("queue depths published (%s)", ", ".join(f"{q}={depths[q]}" for q in QUEUES))
        return Publication(depths)

    def run(
        self,
        interval: float = DEFAULT_INTERVAL,
        stopping: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], None] = time.sleep,
        rounds: int | None = None,
    ) -> list[Publication]:
        """Publish every `interval` seconds until `stopping()` (or `rounds` publications);
        the publications made, oldest first (only the last 100 are kept)."""
        done: list[Publication] = []
        count = 0
        while not stopping():
            started = time.monotonic()
            done = [*done[-99:], self.publish_once()]
            count += 1
            if rounds is not None and count >= rounds:
                break
            # Sleep in short steps so a SIGTERM ends the loop within a second.
            remaining = interval - (time.monotonic() - started)
            while remaining > 0 and not stopping():
                step = min(1.0, remaining)
                sleep(step)
                remaining -= step
        return done
