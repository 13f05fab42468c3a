"""`rudolph dev --demo`: upload the bundled sample photos through S3, so they travel the real
event path (S3 -> SQS -> listener -> workers -> DynamoDB + OpenSearch), and show the results."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rudolph import aws
from rudolph.console import cell
from rudolph.errors import RudolphError
from rudolph.index import SearchIndex
from rudolph.record import Record, image_id
from rudolph.settings import Settings
from rudolph.store import RecordStore

PREFIX = "samples/"
SEARCHES = ("cat", "no parking")


def sample_photos() -> list[Path]:
    folder = Path(str(resources.files("rudolph") / "data" / "samples"))
    return sorted(folder.glob("*.jpg"))


def upload(settings: Settings, photos: list[Path]) -> list[str]:
    s3 = aws.client("s3", settings)
    keys = []
    for number, photo in enumerate(photos, 1):
        key = PREFIX + photo.name
        s3.put_object(
            Bucket=settings.bucket,
            Key=key,
            Body=photo.read_bytes(),
            ContentType="image/jpeg",
            Metadata={"content-id": f"demo-{number}"},
        )
        keys.append(key)
    return keys


def wait_for_records(
    settings: Settings, keys: list[str], timeout: float, progress: Callable[[int, int], None]
) -> dict[str, Record]:
    """The record of each key once it is written and searchable; raises past `timeout`."""
    store, index = RecordStore(settings), SearchIndex(settings)
    ids = {image_id(settings.bucket, key): key for key in keys}
    found: dict[str, Record] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(ids):
        for wanted, key in ids.items():
            if key not in found:
                record = store.get(wanted)
                if record is not None and index.searchable(wanted):
                    found[key] = record
        progress(len(found), len(ids))
        if len(found) < len(ids):
            if time.monotonic() > deadline:
                missing = sorted(set(keys) - set(found))
                raise RudolphError(
                    f"{len(missing)} sample(s) not indexed within {timeout:.0f} s: {missing}; "
                    "see .rudolph/logs/worker.log and listener.log"
                )
            time.sleep(0.5)
    return found


def run(settings: Settings, console: Console, timeout: float = 300.0) -> None:
    photos = sample_photos()
    console.print(f"uploading {len(photos)} sample photos to s3://{settings.bucket}/{PREFIX}")
    started = time.monotonic()
    keys = upload(settings, photos)
    last = [-1]

    def progress(done: int, total: int) -> None:
        if done != last[0]:
            console.print(f"  {done}/{total} analysed and indexed")
            last[0] = done

    records = wait_for_records(settings, keys, timeout, progress)
    console.print(f"all {len(keys)} through the fleet in {time.monotonic() - started:.1f} s\n")
    table = Table(title="what rudolph found", title_justify="left")
    for column in ("key", "status", "labels", "text", "faces"):
        table.add_column(column)
    for key in keys:
        record = records[key]
        table.add_row(
            cell(key),
            record.status,
            cell(", ".join(f"{label.name} {label.confidence:.0f}%" for label in record.labels[:5])),
            cell(" / ".join(t.text for t in record.text if t.type == "LINE")[:60]),
            str(len(record.faces)),
        )
    console.print(table)
    index = SearchIndex(settings)
    for query in SEARCHES:
        hits = index.search(query, limit=3).hits
        console.print(Text(f"\nrudolph search {query!r}", style="bold"))
        for hit in hits:
            console.print(cell(f"  {hit.key}  score {hit.score:.2f}  ({'; '.join(hit.matched)})"))
        if not hits:
            console.print("  no hits")
