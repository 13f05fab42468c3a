"""One local OpenSearch 2.5.0 node: how it is launched, and when it is ready.

The node is a single-node cluster bound to 127.0.0.1, heap 256 MB, with its own config, data
and logs under one base directory (`.rudolph/opensearch` for `rudolph dev`, a temporary folder
for the tests). The installed engine (rudolph/opensearch_dist.py) is only read. OpenSearch
refuses to run as root: as root the node runs as `nobody`, owning its base directory.
`rudolph/devstack.py` starts the command this module prepares and stops it by process group.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rudolph import opensearch_dist
from rudolph.errors import SearchEngineInstallError

HOST = "127.0.0.1"
HEAP = "256m"
#: The user that runs the node when we are root.
UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class Launch:
    """What to run: argv, environment additions, and the user to run it as (None: ourselves)."""

    argv: list[str]
    env: dict[str, str]
    user: str | None
    group: int | None


def _jvm_options(installed: Path, logs: Path, data: Path) -> str:
    """The release's jvm.options with its heap removed (OPENSEARCH_JAVA_OPTS sets it) and its
    relative paths (gc log, heap dumps, crash files) moved under this node's own folders."""
    text = (installed / "config" / "jvm.options").read_text()
    text = re.sub(r"(?m)^-Xm[sx]\S*$", "", text)
    text = text.replace("file=logs/", f"file={logs}/").replace("-Xloggc:logs/", f"-Xloggc:{logs}/")
    text = text.replace("ErrorFile=logs/", f"ErrorFile={logs}/")
    return text.replace("HeapDumpPath=data", f"HeapDumpPath={data}")


def _check_reachable(path: Path, user: str) -> None:
    """OpenSearch as `user` must reach `path`: every folder above it must let others in."""
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise SearchEngineInstallError(
                f"OpenSearch runs as {user!r} (it refuses root) and cannot enter {parent} "
                f"(mode {oct(parent.stat().st_mode & 0o777)}): put its data elsewhere, or "
                f"`chmod o+x {parent}`"
            )


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, gid)


def prepare(base: Path, http_port: int, transport_port: int) -> Launch:
    """Lay out `base` (config/, data/, logs/) and return how to start a node on the ports.

    Data in `base/data` is kept: a node started again on the same base finds its indices.
    """
    if not opensearch_dist.installed():
        raise SearchEngineInstallError(
            f"OpenSearch {opensearch_dist.VERSION} is not installed in {opensearch_dist.home()}: "
            "run `make setup` (or `python -m rudolph.opensearch_dist`); without it, set "
            "RUDOLPH_DEV_SEARCH=noida to use the noida-db emulator"
        )
    installed = opensearch_dist.home()
    java = opensearch_dist.java_home()
    # Absolute: the JVM starts in another directory, so a relative `.rudolph` (the default
    # of `rudolph dev`) would name no folder for its gc log and data.
    base = base.absolute()
    config, data, logs = base / "config", base / "data", base / "logs"
    for folder in (config, data, logs):
        folder.mkdir(parents=True, exist_ok=True)
    # A config of its own: OpenSearch writes its keystore there, and the release's folder is
    # read-only to the user that runs it.
    shutil.copy(installed / "config" / "log4j2.properties", config / "log4j2.properties")
    (config / "jvm.options.d").mkdir(exist_ok=True)
    (config / "jvm.options").write_text(_jvm_options(installed, logs, data))
    (config / "opensearch.yml").write_text(
        "# Written by rudolph (rudolph/opensearch_node.py); settings are on the command line.\n"
    )
    user: str | None = None
    group: int | None = None
    if os.geteuid() == 0:
        entry = pwd.getpwnam(UNPRIVILEGED)
        user, group = UNPRIVILEGED, entry.pw_gid
        _check_reachable(base, UNPRIVILEGED)
        _chown_tree(base, entry.pw_uid, entry.pw_gid)
    argv = [
        str(installed / "bin" / "opensearch"),
        "-Ecluster.name=rudolph-local",
        "-Enode.name=rudolph-local",
        "-Ediscovery.type=single-node",
        f"-Enetwork.host={HOST}",
        f"-Ehttp.port={http_port}",
        f"-Etransport.port={transport_port}",
        f"-Epath.data={data}",
        f"-Epath.logs={logs}",
        # A laptop's or CI's nearly full disk must not make every index read-only.
        "-Ecluster.routing.allocation.disk.threshold_enabled=false",
    ]
    env = {
        "OPENSEARCH_JAVA_HOME": str(java),
        "JAVA_HOME": str(java),
        "OPENSEARCH_PATH_CONF": str(config),
        "OPENSEARCH_JAVA_OPTS": f"-Xms{HEAP} -Xmx{HEAP}",
    }
    return Launch(argv=argv, env=env, user=user, group=group)


def _get_json(url: str, timeout: float = 5.0) -> dict[str, object] | None:
    """The JSON of a 2xx answer; None for anything else (refused, an HTTP error, not JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                return None
            found = json.loads(response.read())
    except (urllib.error.HTTPError, OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def healthy(url: str) -> bool:
    """Whether the cluster at `url` is yellow or green. `GET /` answers before the shards
    have recovered after a restart, so readiness is the cluster's health, not an answer."""
    health = _get_json(f"{url}/_cluster/health?wait_for_status=yellow&timeout=2s")
    return health is not None and health.get("status") in ("yellow", "green")


def engine(url: str) -> str | None:
    """'opensearch 2.5.0' (distribution and version from `GET /`), None when nothing answers
    like OpenSearch there."""
    root = _get_json(url)
    version = root.get("version") if root else None
    if not isinstance(version, dict) or not version.get("number"):
        return None
    return f"{version.get('distribution', 'elasticsearch')} {version['number']}"
