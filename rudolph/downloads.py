"""One download per image per host: a small, bounded on-disk cache of S3 objects, shared by
every worker process on the machine.

The three feature tasks of one image each need its pixels; the first process to ask downloads
and decodes them, the others read the pixels from here (in /dev/shm, memory, when the machine
has it) and nothing else: decoding a 12-megapixel photo costs more than reading 9 MB of
pixels. The bytes are kept too, for a task that comes while they are being decoded. Entries
are keyed by the event's reference (bucket, key, version, etag, sequencer, event time), so a
newer upload of the same key is never served from an older entry; they expire after
TTL_SECONDS, and the least recently stored go first once the cache holds SIZE_LIMIT bytes
(diskcache: SQLite plus files, safe across processes).

A process that finds the object being downloaded by another waits (bounded) for it: one lock
file per stripe of keys, held with flock, which the kernel releases if its holder dies.
The cache is only ever an optimisation: any trouble with it (disk full, a directory owned by
someone else) and the object is downloaded as if there were no cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import diskcache
import numpy as np

from rudolph.images import DecodedImage
from rudolph.source import ObjectAttributes, S3Object

log = logging.getLogger(__name__)

SIZE_LIMIT = 256 * 2**20
# Objects larger than this are not kept: a few of them would push every other image out.
MAX_ENTRY = SIZE_LIMIT // 8
# Long enough for a pipeline's three tasks and their retries' first back-offs; short enough
# that the cache holds only work in progress.
TTL_SECONDS = 600.0
# How long a process waits for another one's download before downloading itself.
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.005
STRIPES = 64
_MAGIC = b"RDC1"

T = TypeVar("T")
Loader = Callable[[bytes], T]


def default_directory() -> Path:
    """/dev/shm (memory) when the machine has it, else the temp dir; one per user."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"rudolph-downloads-{os.getuid()}"


def _private_directory(directory: Path) -> None:
    """Create `directory` for this user alone; refuse one that someone else could write."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{directory} is not a private directory of uid {os.getuid()} "
            "(a symlink, another owner, or group/other access): not using it as a cache"
        )


def dump_object(obj: S3Object) -> bytes:
    return _entry(asdict(obj.attributes), obj.body)


def load_object(entry: bytes) -> S3Object:
    header, body = _unpack(entry)
    return S3Object(body=body, attributes=ObjectAttributes(**header))


def dump_pixels(image: DecodedImage) -> bytes:
    header = {
        "shape": list(image.rgb.shape),
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "notes": list(image.notes),
    }
    return _entry(header, image.rgb.tobytes())


def load_pixels(entry: bytes) -> DecodedImage:
    header, body = _unpack(entry)
    return DecodedImage(
        # Read-only, like the array Pillow gives decode(): no model writes into its input.
        rgb=np.frombuffer(body, dtype=np.uint8).reshape(header["shape"]),
        width=header["width"],
        height=header["height"],
        format=header["format"],
        notes=tuple(header["notes"]),
    )


def _entry(header: dict[str, Any], body: bytes) -> bytes:
    """An entry: magic, header length, a JSON header, the body (no pickle)."""
    encoded = json.dumps(header).encode()
    return _MAGIC + struct.pack(">I", len(encoded)) + encoded + body


def _unpack(entry: bytes) -> tuple[dict[str, Any], bytes]:
    if not entry.startswith(_MAGIC) or len(entry) < 8:
        raise ValueError("not a rudolph download cache entry")
    (length,) = struct.unpack(">I", entry[4:8])
    return json.loads(entry[8 : 8 + length]), entry[8 + length :]


class DownloadCache:
    def __init__(
        self,
        directory: Path,
        size_limit: int = SIZE_LIMIT,
        ttl: float = TTL_SECONDS,
        wait: float = WAIT_SECONDS,
    ) -> None:
        _private_directory(directory)
        (directory / "locks").mkdir(mode=0o700, exist_ok=True)
        free = shutil.disk_usage(directory).free
        # Never more than half of what is free there (a container's /dev/shm may be 64 MB).
        self.size_limit = max(0, min(size_limit, free // 2))
        self.max_entry = min(MAX_ENTRY, self.size_limit // 8)
        self.directory = directory
        self.ttl = ttl
        self.wait = wait
        self.cache = diskcache.Cache(
            str(directory / "objects"),
            size_limit=self.size_limit,
            eviction_policy="least-recently-stored",
            timeout=5,
        )

    def fetch(self, key: str, download: Callable[[], S3Object]) -> S3Object:
        """The object under `key` from the cache, else from `download()` (then kept)."""
        return self.get_or_make(key, download, dump_object, load_object)

    def decoded(self, key: str, decode: Callable[[], DecodedImage]) -> DecodedImage:
        """The pixels of the object under `key`, decoded by one process of the host."""
        return self.get_or_make(key + "#pixels", decode, dump_pixels, load_pixels)

    def decoded_if_there(self, key: str) -> DecodedImage | None:
        """The pixels of the object under `key` if a process decoded them already."""
        return self._get(key + "#pixels", load_pixels)

    def get_or_make(
        self, key: str, make: Callable[[], T], dump: Callable[[T], bytes], load: Loader[T]
    ) -> T:
        found = self._get(key, load)
        if found is not None:
            return found
        with self._turn(key):
            found = self._get(key, load)  # made by whoever held the turn before us
            if found is not None:
                return found
            made = make()
            self._put(key, dump(made))
            return made

    def _get(self, key: str, load: Loader[T]) -> T | None:
        try:
            entry = self.cache.get(key)
            return load(entry) if isinstance(entry, bytes) else None
        except (OSError, sqlite3.Error, diskcache.Timeout, ValueError, KeyError) as exc:
            log.warning("download cache unreadable (%s); downloading instead", exc)
            return None

    def _put(self, key: str, entry: bytes) -> None:
        if len(entry) > self.max_entry:
            return
        try:
            self.cache.set(key, entry, expire=self.ttl)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            log.warning("download cache not written (%s); other tasks download again", exc)

    @contextmanager
    def _turn(self, key: str) -> Iterator[None]:
        """Hold the download turn of `key`'s stripe, or go ahead anyway after `wait` s."""
        stripe = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % STRIPES
        try:
            handle = os.open(self.directory / "locks" / f"{stripe}.lock", os.O_CREAT | os.O_RDWR)
        except OSError:
            yield
            return
        try:
            deadline = time.monotonic() + self.wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break  # a slow download elsewhere: ours costs time, not correctness
                    time.sleep(POLL_SECONDS)
            yield
        finally:
            with suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            os.close(handle)

    def close(self) -> None:
        self.cache.close()


_shared: dict[int, DownloadCache | None] = {}


def shared() -> DownloadCache | None:
    """This process's handle on the host's cache (opened after fork, once per process), or
    None when it cannot be used here."""
    pid = os.getpid()
    if pid not in _shared:
        _shared.clear()  # a forked child must not use its parent's SQLite connection
        try:
            _shared[pid] = DownloadCache(default_directory())
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            log.warning("no download cache (%s): each task downloads its own copy", exc)
            _shared[pid] = None
    return _shared[pid]


def fetch(key: str, download: Callable[[], S3Object]) -> S3Object:
    """`download()` once per host for `key`, through the shared cache when there is one."""
    cache = shared()
    return download() if cache is None else cache.fetch(key, download)


def decoded(key: str, decode: Callable[[], DecodedImage]) -> DecodedImage:
    """`decode()` the object under `key` once per host, through the shared cache."""
    cache = shared()
    return decode() if cache is None else cache.decoded(key, decode)


def decoded_if_there(key: str) -> DecodedImage | None:
    """The pixels of the object under `key` if a process of the host decoded them already:
    the second and third feature of an image read only these, not its bytes too."""
    cache = shared()
    return None if cache is None else cache.decoded_if_there(key)
