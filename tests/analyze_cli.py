"""`rudolph analyze --json` as a user runs it, in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

RUDOLPH = Path(sys.executable).parent / "rudolph"


def analyze_json(paths: list[Path], timeout: float = 600) -> list[dict[str, Any]]:
    """The record of each image, in order (the environment's settings: tests/conftest.py)."""
    result = subprocess.run(
        [str(RUDOLPH), "analyze", "--json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == list(map(str, paths))
    return records
