"""The backfill's checkpoint: after each batch published, the last key sent (or the inventory
position) and the run id, written atomically, from which `--resume` restarts. A dry run
leaves its count beside it, the real run's ETA basis."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producer import inventory
from producer.backfill.options import Options


def default_checkpoint(bucket: str, prefix: str, directory: Path = Path(".rudolph")) -> Path:
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:12]
    return directory / f"backfill-{bucket}-{digest}.json"


def estimate_path(checkpoint: Path) -> Path:
    """Where a dry run leaves its count, for the real run's ETA."""
    return checkpoint.with_name(checkpoint.name + ".estimate")


def read_estimate(checkpoint: Path) -> int | None:
    """What the dry run of this checkpoint counted, when one ran."""
    try:
        return int(json.loads(estimate_path(checkpoint).read_text())["enqueued"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def write_estimate(checkpoint: Path, enqueued: int) -> None:
    write_json(estimate_path(checkpoint), {"enqueued": enqueued})


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a temporary file in the same directory, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_checkpoint(
    path: Path,
    options: Options,
    last_key: str | None,
    done: bool,
    position: inventory.Position | None = None,
    run_id: str | None = None,
) -> None:
    data = {
        "run_id": run_id,
        "bucket": options.bucket,
        "prefix": options.prefix,
        "inventory": options.inventory,
        "last_key": last_key,
        "position": list(position) if position else None,
        "complete": done,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(path, data)
