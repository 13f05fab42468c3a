"""What OpenSearch's k-NN plugin costs: the local node's start-up time and idle RSS with the
plugin and without it, in turns (this machine's speed drifts within minutes).

    .venv/bin/python bench/knn_plugin.py [--rounds 2]

The copy without the plugin is made in a temporary folder and removed afterwards; the
installed engine (rudolph/opensearch_dist.py) is only read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rudolph import devstack, opensearch_dist
from tests.servers import reachable_by_server

IDLE_SECONDS = 10


def group_rss_mb(pid: int) -> int:
    """The largest RSS in the node's process group (the JVM; the launcher script is small)."""
    largest = 0
    for member in [pid, *map(int, os.popen(f"pgrep -g {pid}").read().split())]:
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                largest = max(largest, int(line.split()[1]) // 1024)
    return largest


def measure(home: Path) -> tuple[float, int]:
    """(seconds until the cluster is healthy, RSS in MB after IDLE_SECONDS idle)."""
    opensearch_dist.home = lambda: home  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="knn-bench-") as scratch:
        base = reachable_by_server(Path(scratch)) / "node"
        group = devstack.Processes(Path(scratch) / "logs")
        try:
            started = time.monotonic()
            devstack.start_real_opensearch(group, devstack.free_port(), base)
            ready = time.monotonic() - started
            time.sleep(IDLE_SECONDS)  # a fixed idle period is what is measured, not a wait
            return ready, group_rss_mb(group.running[-1][1].pid)
        finally:
            group.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    installed = opensearch_dist.home()
    plugin = installed / "plugins" / "opensearch-knn"
    size = sum(f.stat().st_size for f in plugin.rglob("*") if f.is_file()) / 1e6
    print(f"k-NN plugin on disk: {size:.0f} MB of {installed}")
    with tempfile.TemporaryDirectory(prefix="opensearch-without-knn-") as scratch:
        bare = Path(scratch) / "opensearch"
        shutil.copytree(installed, bare, symlinks=True)
        shutil.rmtree(bare / "plugins" / "opensearch-knn")
        os.chmod(scratch, 0o755)  # the node may run as nobody
        for _ in range(args.rounds):
            for name, home in (("with k-NN", installed), ("without", bare)):
                ready, rss = measure(home)
                print(f"{name:10} ready in {ready:5.1f} s, idle RSS {rss} MB", flush=True)


if __name__ == "__main__":
    main()
