"""The local stack's state across restarts of `rudolph dev`.

moto keeps S3 and DynamoDB in memory, so on a clean stop `rudolph dev` saves every bucket (each
object with its content type and metadata) and every table (its keys, indexes and items) to
`.rudolph/aws-state/`, and loads them into the next moto before `rudolph init` runs; OpenSearch
keeps its own data under `.rudolph/opensearch/`. The three then agree. A stack that was not
stopped cleanly (killed, machine crashed) leaves the last saved state marked in use: the next
start loads that, throws the search index's newer data away and rebuilds the index from the
table, so search never shows an image the table no longer has.

On disk: `manifest.json` (buckets with their objects' keys and metadata; tables with their
schema) and `objects/<sha256>` (each object's bytes once, named by content: an uploader's key
never becomes a path) and `tables/<n>.jsonl` (DynamoDB JSON, binary values in base64).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from rudolph.errors import RudolphError


class DevStateError(RudolphError):
    """The saved state cannot be loaded (another format, writes DynamoDB keeps refusing)."""


FORMAT = 1
#: Present while a stack runs on the saved state; a clean stop replaces the whole folder.
IN_USE = "in-use"
_CHUNK = 1 << 20
WRITE_ATTEMPTS = 8


@dataclass(frozen=True)
class Summary:
    """What was saved or loaded."""

    buckets: int
    objects: int
    tables: int
    items: int

    def __str__(self) -> str:
        return (
            f"{self.objects} objects in {self.buckets} buckets, "
            f"{self.items} items in {self.tables} tables"
        )


class DevState:
    """The saved state under one folder (`.rudolph/aws-state`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def saved(self) -> bool:
        return (self.folder / "manifest.json").is_file()

    def clean(self) -> bool:
        """Saved by a clean stop, and not run on since: the search index's data matches it."""
        return self.saved() and not (self.folder / IN_USE).exists()

    def mark_in_use(self) -> None:
        if self.saved():
            (self.folder / IN_USE).write_text("a `rudolph dev` runs on this state\n")

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, s3: Any, dynamodb: Any) -> Summary:
        """Write everything moto holds beside the current state, then swap it in (a stop that
        fails half-way leaves the previous state whole)."""
        staging = self.folder.with_name(self.folder.name + ".saving")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "objects").mkdir(parents=True)
        (staging / "tables").mkdir()
        buckets = [_save_bucket(s3, b["Name"], staging) for b in s3.list_buckets()["Buckets"]]
        tables = [
            _save_table(dynamodb, name, staging, n) for n, name in enumerate(_table_names(dynamodb))
        ]
        manifest = {"format": FORMAT, "buckets": buckets, "tables": tables}
        (staging / "manifest.json").write_text(json.dumps(manifest))
        self.discard()
        staging.rename(self.folder)
        return _summary(buckets, tables)

    def load(self, s3: Any, dynamodb: Any, region: str) -> Summary:
        """Create the saved buckets and tables in an empty moto and fill them. Buckets get no
        notifications here (`rudolph init` adds them after), so nothing is analysed again."""
        manifest = json.loads((self.folder / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise DevStateError(
                f"{self.folder} holds state format {manifest.get('format')!r}, not {FORMAT}: "
                "start with `rudolph dev --fresh` to begin empty"
            )
        for bucket in manifest["buckets"]:
            _create_bucket(s3, bucket["name"], region)
            for entry in bucket["objects"]:
                with open(self.folder / "objects" / entry["blob"], "rb") as body:
                    s3.put_object(
                        Bucket=bucket["name"],
                        Key=entry["key"],
                        Body=body,
                        ContentType=entry["content_type"],
                        Metadata=entry["metadata"],
                    )
        for table in manifest["tables"]:
            _create_table(dynamodb, table["schema"], table.get("ttl"))
            for batch in _batches(_read_items(self.folder / "tables" / table["file"]), 25):
                _write_batch(dynamodb, table["schema"]["TableName"], batch)
        return _summary(manifest["buckets"], manifest["tables"])


def _summary(buckets: list[dict[str, Any]], tables: list[dict[str, Any]]) -> Summary:
    return Summary(
        buckets=len(buckets),
        objects=sum(len(b["objects"]) for b in buckets),
        tables=len(tables),
        items=sum(t["items"] for t in tables),
    )


def _write_batch(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """BatchWriteItem, sending again what DynamoDB left unprocessed, with backoff, a bounded
    number of times."""
    pending: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items]}
    for attempt in range(WRITE_ATTEMPTS):
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems", {})
        if not pending:
            return
        time.sleep(min(2.0, 0.05 * 2**attempt))
    raise DevStateError(
        f"DynamoDB left {len(pending[table])} items of {table} unwritten after "
        f"{WRITE_ATTEMPTS} attempts: start again, or `rudolph dev --fresh` to begin empty"
    )


def _save_bucket(s3: Any, name: str, staging: Path) -> dict[str, Any]:
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for listed in page.get("Contents", []):
            got = s3.get_object(Bucket=name, Key=listed["Key"])
            digest = hashlib.sha256()
            partial = staging / "objects" / ".partial"
            with open(partial, "wb") as out:
                for chunk in got["Body"].iter_chunks(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            blob = digest.hexdigest()
            partial.replace(staging / "objects" / blob)
            objects.append(
                {
                    "key": listed["Key"],
                    "blob": blob,
                    "content_type": got.get("ContentType", "binary/octet-stream"),
                    "metadata": got.get("Metadata", {}),
                }
            )
    return {"name": name, "objects": objects}


def _table_names(dynamodb: Any) -> Iterator[str]:
    for page in dynamodb.get_paginator("list_tables").paginate():
        yield from page["TableNames"]


def _save_table(dynamodb: Any, name: str, staging: Path, number: int) -> dict[str, Any]:
    described = dynamodb.describe_table(TableName=name)["Table"]
    schema: dict[str, Any] = {
        "TableName": name,
        "KeySchema": described["KeySchema"],
        "AttributeDefinitions": described["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    indexes = [
        {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        for index in described.get("GlobalSecondaryIndexes", [])
    ]
    if indexes:
        schema["GlobalSecondaryIndexes"] = indexes
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    file = f"{number}.jsonl"
    count = 0
    with open(staging / "tables" / file, "w") as out:
        for page in dynamodb.get_paginator("scan").paginate(TableName=name):
            for item in page["Items"]:
                out.write(json.dumps(_to_json(item)) + "\n")
                count += 1
    attribute = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None
    return {"schema": schema, "ttl": attribute, "file": file, "items": count}


def _create_bucket(s3: Any, name: str, region: str) -> None:
    params: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**params)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise


def _create_table(dynamodb: Any, schema: dict[str, Any], ttl: str | None) -> None:
    try:
        dynamodb.create_table(**schema)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(
        TableName=schema["TableName"], WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
    )
    if ttl:
        dynamodb.update_time_to_live(
            TableName=schema["TableName"],
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl},
        )


def _read_items(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as lines:
        for line in lines:
            yield _from_json(json.loads(line))


def _batches(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# DynamoDB JSON holds bytes in "B" and "BS" (inside "M" and "L" too); the files hold base64.
def _to_json(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _convert(value, _b64) for name, value in item.items()}


def _from_json(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _convert(value, base64.b64decode) for name, value in item.items()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _convert(value: dict[str, Any], binary: Callable[[Any], Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": binary(inner)}
    if kind == "BS":
        return {"BS": [binary(part) for part in inner]}
    if kind == "M":
        return {"M": {k: _convert(v, binary) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_convert(v, binary) for v in inner]}
    return value
