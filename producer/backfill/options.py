"""What a backfill run is asked to do (`Options`, from `rudolph backfill`'s flags) and what it
did so far (`Report`, shown while it runs and at the end)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from producer import inventory
from rudolph.vocabulary import Feature


@dataclass
class Options:
    bucket: str
    prefix: str = ""
    suffixes: tuple[str, ...] = ()
    modified_since: datetime | None = None
    max_size: int | None = None
    #: Re-run every feature of every image, even analysed at the same etag (--all, --force).
    force: bool = False
    #: Re-run only this feature, of images whose record lacks it or has it failed.
    missing: Feature | None = None
    dry_run: bool = False
    max_queued: int = 1000
    rate: float | None = None
    checkpoint: Path | None = None
    resume: bool = False
    page_size: int = 1000
    #: Refs per batch task.
    batch: int = 100
    #: s3://bucket/path/manifest.json of an S3 Inventory report to read instead of listing.
    inventory: str | None = None


@dataclass
class Report:
    listed: int = 0
    enqueued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    last_key: str | None = None
    started_after: str | None = None
    interrupted: bool = False
    #: Pipelines finished so far (from the Celery results): done or partial, and failed.
    done: int = 0
    failed: int = 0
    #: What a dry run counted before (its ETA basis), when known.
    expected: int | None = None
    #: Share of an inventory report read (by compressed bytes), when reading one.
    fraction: float | None = None
    position: inventory.Position | None = None

    @property
    def rate(self) -> float:
        return self.enqueued / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, from the rate so far and what is left when that is known."""
        if self.fraction:
            return self.seconds * (1 - self.fraction) / self.fraction
        if self.expected is not None and self.rate > 0:
            return max(0, self.expected - self.enqueued) / self.rate
        return None
