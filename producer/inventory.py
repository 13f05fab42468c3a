"""Reading an S3 Inventory report instead of listing the bucket: manifest.json names CSV data
files (gzip), one object per row, columns as its `fileSchema` says, keys URL-encoded.

Streamed file by file and row by row (a gzip stream over the GetObject body), so a report of
millions of rows never sits in memory. A position (file index, rows consumed in it) is what a
checkpoint keeps to resume.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, unquote_plus

from rudolph.errors import RudolphError

Position = tuple[int, int]  # (data file index, rows of it already handled)


class InventoryError(RudolphError):
    pass


@dataclass(frozen=True)
class Manifest:
    source_bucket: str
    destination_bucket: str
    columns: list[str]
    files: list[tuple[str, int]]  # (key in the destination bucket, compressed size)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def parse_manifest(data: dict[str, Any], url: str) -> Manifest:
    if str(data.get("fileFormat", "")).upper() != "CSV":
        raise InventoryError(
            f"{url}: fileFormat {data.get('fileFormat')!r} is not supported; configure the "
            "inventory with the CSV format"
        )
    schema = data.get("fileSchema")
    if not schema:
        raise InventoryError(f"{url} has no fileSchema: is it an S3 Inventory manifest.json?")
    columns = [c.strip() for c in str(schema).split(",")]
    if "Key" not in columns:
        raise InventoryError(f"{url}: fileSchema {schema!r} has no Key column")
    destination = str(data.get("destinationBucket", "")).removeprefix("arn:aws:s3:::")
    files = [(str(f["key"]), int(f.get("size", 0))) for f in data.get("files", [])]
    return Manifest(str(data.get("sourceBucket", "")), destination, columns, files)


def read_manifest(s3: Any, bucket: str, key: str) -> Manifest:
    url = f"s3://{bucket}/{key}"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InventoryError(f"{url} is not JSON ({exc})") from exc
    return parse_manifest(data, url)


def _modified(text: str) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _listing_entry(row: dict[str, str]) -> dict[str, Any] | None:
    """A row as list_objects_v2 would give it; None for delete markers and old versions."""
    if row.get("IsDeleteMarker", "false").lower() == "true":
        return None
    if row.get("IsLatest", "true").lower() == "false":
        return None
    entry: dict[str, Any] = {"Key": unquote_plus(row["Key"])}
    if row.get("Size"):
        entry["Size"] = int(row["Size"])
    if row.get("ETag"):
        entry["ETag"] = row["ETag"]
    if row.get("LastModifiedDate"):
        entry["LastModified"] = _modified(row["LastModifiedDate"])
    if row.get("VersionId"):
        entry["VersionId"] = unquote(row["VersionId"])
    return entry


def rows(
    s3: Any, manifest: Manifest, start: Position = (0, 0)
) -> Iterator[tuple[Position, int, dict[str, Any] | None]]:
    """(position after the row, compressed bytes of the files before this one, the object or
    None) for every row from `start` on."""
    done_bytes = sum(size for _, size in manifest.files[: start[0]])
    for index in range(start[0], len(manifest.files)):
        key, size = manifest.files[index]
        body = s3.get_object(Bucket=manifest.destination_bucket, Key=key)["Body"]
        with gzip.open(body, "rt", newline="", encoding="utf-8") as text:
            for number, values in enumerate(csv.reader(text), start=1):
                if index == start[0] and number <= start[1]:
                    continue
                if len(values) != len(manifest.columns):
                    raise InventoryError(
                        f"s3://{manifest.destination_bucket}/{key} row {number} has "
                        f"{len(values)} fields where fileSchema names {len(manifest.columns)}"
                    )
                row = dict(zip(manifest.columns, values, strict=True))
                yield (index, number), done_bytes, _listing_entry(row)
        done_bytes += size
