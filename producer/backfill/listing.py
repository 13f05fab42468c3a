"""Where the backfill's objects come from: a bucket's listing (list_objects_v2, page by page,
from a key on) or an S3 Inventory report's rows (from a position on), and which of them are
not for rudolph (not an image, outside RUDOLPH_BUCKETS, the run's filters)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from producer import inventory
from producer.backfill.options import Options
from rudolph import buckets
from rudolph.events import ObjectRef, has_image_suffix
from rudolph.settings import Settings

#: (objects, inventory position after them, share of the report read) of one page.
Page = tuple[list[dict[str, Any]], inventory.Position | None, float | None]


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket[/prefix] -> (bucket, prefix)."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not s3://bucket[/prefix]")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{url!r} names no bucket")
    return bucket, prefix


def event_time(modified: datetime) -> str:
    """LastModified in S3 event time format (2026-01-02T03:04:05.678Z)."""
    modified = modified.astimezone(UTC)
    return modified.strftime("%Y-%m-%dT%H:%M:%S.") + f"{modified.microsecond // 1000:03d}Z"


def listed_ref(bucket: str, obj: dict[str, Any]) -> ObjectRef:
    """The ref of a listed object (a list_objects_v2 entry, or an inventory row as one)."""
    etag = obj.get("ETag")
    modified = obj.get("LastModified")
    return ObjectRef(
        bucket=bucket,
        key=str(obj["Key"]),
        version_id=obj.get("VersionId"),
        etag=str(etag).strip('"') if etag else None,
        size=obj.get("Size"),
        event_time=event_time(modified) if modified else None,
    )


def filtered(settings: Settings, options: Options, obj: dict[str, Any]) -> str | None:
    """Why a listed object is not for this run, or None when it is."""
    key = str(obj["Key"])
    if key.endswith("/") or not has_image_suffix(key):
        return "not an image"
    if not buckets.admitted(settings.buckets, options.bucket, key):
        return f"outside {settings.buckets_setting}"
    if options.suffixes and not key.lower().endswith(options.suffixes):
        return "suffix filter"
    if options.max_size is not None and int(obj.get("Size", 0)) > options.max_size:
        return "over --max-size"
    modified = obj.get("LastModified")
    if options.modified_since is not None and modified and modified < options.modified_since:
        return "modified before --modified-since"
    return None


def pages(
    s3: Any, options: Options, start_after: str | None, position: inventory.Position | None
) -> Iterator[Page]:
    """The objects to consider, a page at a time: the listing after `start_after`, or the
    inventory report's rows from `position`."""
    if options.inventory:
        yield from _inventory_pages(s3, options, position or (0, 0))
        return
    kwargs: dict[str, Any] = {
        "Bucket": options.bucket,
        "Prefix": options.prefix,
        "PaginationConfig": {"PageSize": options.page_size},
    }
    if start_after:
        kwargs["StartAfter"] = start_after
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        yield list(page.get("Contents", [])), None, None


def _inventory_pages(s3: Any, options: Options, start: inventory.Position) -> Iterator[Page]:
    """Pages of an inventory report's rows (in the bucket and under the prefix)."""
    bucket, key = parse_s3_url(options.inventory or "")
    manifest = inventory.read_manifest(s3, bucket, key)
    if manifest.source_bucket and manifest.source_bucket != options.bucket:
        raise inventory.InventoryError(
            f"{options.inventory} is the inventory of s3://{manifest.source_bucket}, "
            f"not of s3://{options.bucket}"
        )
    total = manifest.total_bytes or 1
    page: list[dict[str, Any]] = []
    at = start
    for position, done_bytes, entry in inventory.rows(s3, manifest, start):
        at = position
        if entry is not None and entry["Key"].startswith(options.prefix):
            page.append(entry)
        if len(page) >= options.page_size:
            yield page, at, min(1.0, done_bytes / total) or None
            page = []
    yield page, at, 1.0
