"""One download per image per host, and no HEAD in the aggregate.

The cache itself (rudolph/downloads.py) on a temporary directory: shared by processes, one
download while others wait, a dead holder frees its turn, size and age bounds, and a broken
cache only costs downloads. Then the fleet's library side (rudolph/stages.py) against moto
and the OpenSearch-compatible server: three features read the object once, the aggregate
takes the object's attributes from that download instead of a HEAD, and a delete during the
analysis still leaves no record, whichever of the aggregate and the delete comes first.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rudolph import aws, devstack, downloads, stages
from rudolph.analysis import FeatureOutcome
from rudolph.backends.base import Analyzer
from rudolph.events import ObjectRef
from rudolph.images import DecodedImage, decode
from rudolph.provision import init
from rudolph.record import Face, Label, TextDetection, image_id
from rudolph.settings import FEATURES, Feature, Settings
from rudolph.source import ImageInput, ObjectAttributes, S3Object
from tests.photos import encode, load

ATTRIBUTES = ObjectAttributes(etag="abc", size=5, content_type="image/png", metadata={"a": "b"})


def _object(body: bytes = b"hello") -> S3Object:
    return S3Object(body=body, attributes=ATTRIBUTES)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[downloads.DownloadCache]:
    opened = downloads.DownloadCache(tmp_path / "cache")
    yield opened
    opened.close()


def test_pixels_come_back_as_they_went_in(cache: downloads.DownloadCache) -> None:
    image = decode(_photo())
    made = cache.decoded("k", lambda: image)
    again = cache.decoded("k", lambda: pytest.fail("decoded twice"))
    assert made is image
    assert np.array_equal(again.rgb, image.rgb) and again.rgb.shape == (300, 451, 3)
    assert (again.width, again.height, again.format) == (451, 300, "JPEG")
    assert cache.fetch("k", _object) == _object(), "bytes and pixels are separate entries"


def test_a_second_fetch_reads_the_cache(cache: downloads.DownloadCache) -> None:
    calls: list[str] = []

    def download() -> S3Object:
        calls.append("get")
        return _object()

    first = cache.fetch("k", download)
    again = cache.fetch("k", download)
    assert calls == ["get"]
    assert again == first == _object()
    assert cache.fetch("other", download) == first
    assert calls == ["get", "get"], "another key is another object"


def _fetch_in_child(directory: str, key: str, counter: Any, delay: float, out: Any) -> None:
    cache = downloads.DownloadCache(Path(directory))

    def slow_download() -> S3Object:
        with counter.get_lock():
            counter.value += 1
        time.sleep(delay)  # stands for the GET: the others must wait, not download too
        return _object(b"pixels")

    out.put(cache.fetch(key, slow_download).body)


def test_processes_asking_at_once_download_once(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")  # as Celery's prefork pool
    counter, out = ctx.Value("i", 0), ctx.Queue()
    children = [
        ctx.Process(target=_fetch_in_child, args=(str(tmp_path), "k", counter, 0.5, out))
        for _ in range(3)
    ]
    for child in children:
        child.start()
    bodies = [out.get(timeout=30) for _ in children]
    for child in children:
        child.join(10)
    assert bodies == [b"pixels"] * 3
    assert counter.value == 1


def test_a_holder_killed_mid_download_does_not_hold_up_the_others(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    counter, out = ctx.Value("i", 0), ctx.Queue()
    holder = ctx.Process(target=_fetch_in_child, args=(str(tmp_path), "k", counter, 60, out))
    holder.start()
    deadline = time.monotonic() + 30
    while counter.value == 0:  # the holder is downloading, its turn taken
        assert time.monotonic() < deadline, "the holder never started its download"
        time.sleep(0.01)
    os.kill(holder.pid or 0, signal.SIGKILL)
    holder.join(10)
    started = time.monotonic()
    cache = downloads.DownloadCache(tmp_path)
    assert cache.fetch("k", lambda: _object(b"mine")).body == b"mine"
    # The kernel dropped the dead holder's lock: no wait for WAIT_SECONDS.
    assert time.monotonic() - started < downloads.WAIT_SECONDS / 3


def test_the_cache_stays_within_its_size(tmp_path: Path) -> None:
    cache = downloads.DownloadCache(tmp_path, size_limit=4 * 2**20)
    body = os.urandom(200_000)
    for n in range(60):  # 12 MB through a 4 MB cache
        cache.fetch(f"k{n}", lambda: _object(body))
    assert cache.cache.volume() <= 4 * 2**20 + 2 * len(body)
    assert "k59" in cache.cache, "the newest entries stay"
    assert "k0" not in cache.cache, "the oldest went first"
    huge = os.urandom(cache.max_entry + 1)
    cache.fetch("huge", lambda: _object(huge))
    assert "huge" not in cache.cache, "an object too large for the cache is not kept"


def test_entries_expire(tmp_path: Path) -> None:
    cache = downloads.DownloadCache(tmp_path, ttl=0.2)
    cache.fetch("k", _object)
    assert "k" in cache.cache
    deadline = time.monotonic() + 10
    while "k" in cache.cache:
        assert time.monotonic() < deadline, "the entry did not expire"
        time.sleep(0.05)


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared_dir = tmp_path / "open"
    shared_dir.mkdir(mode=0o777)
    shared_dir.chmod(0o777)
    with pytest.raises(PermissionError, match="not a private directory"):
        downloads.DownloadCache(shared_dir)


def test_without_a_usable_cache_every_fetch_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unusable = tmp_path / "open"
    unusable.mkdir()
    unusable.chmod(0o777)
    monkeypatch.setattr(downloads, "default_directory", lambda: unusable)
    monkeypatch.setattr(downloads, "_shared", {})
    calls: list[str] = []

    def download() -> S3Object:
        calls.append("get")
        return _object()

    assert downloads.fetch("k", download) == downloads.fetch("k", download) == _object()
    assert calls == ["get", "get"]


def test_a_cache_that_cannot_write_only_costs_downloads(
    cache: downloads.DownloadCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_: Any, **__: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.cache, "set", disk_full)
    assert cache.fetch("k", _object) == _object()
    assert cache.fetch("k", _object) == _object()


# -- the pipeline: one download, no HEAD ----------------------------------------------------


class Decoding(Analyzer):
    """Decodes the image like the local backend and finds nothing: the test is about where
    the bytes come from, not about the models."""

    name = "stand-in"

    def labels(self, image: ImageInput) -> list[Label]:
        image.decoded()
        return []

    def text(self, image: ImageInput) -> list[TextDetection]:
        image.decoded()
        return []

    def faces(self, image: ImageInput) -> list[Face]:
        image.decoded()
        return []

    def version(self, feature: Feature) -> str:
        return "0"


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.s3 = aws.client("s3", settings)
        self.calls: list[str] = []
        self.s3.meta.events.register("before-call.s3.*", self._count)
        self.sequencer = 0x10

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def upload(self, key: str, body: bytes, **params: Any) -> ObjectRef:
        put = self.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=body, **params)
        return self.ref(key, etag=put["ETag"].strip('"'), size=len(body))

    def ref(self, key: str, **fields: Any) -> ObjectRef:
        self.sequencer += 1
        return ObjectRef(
            bucket=self.settings.bucket, key=key, sequencer=f"{self.sequencer:X}", **fields
        )

    def analyze(self, ref: ObjectRef) -> list[FeatureOutcome]:
        """Like the fleet: the three feature tasks, their outcomes through JSON (Celery)."""
        assert stages.store(self.settings).mark_pending(ref)
        outcomes = [stages.analyze_feature(f, ref, self.settings) for f in FEATURES]
        return [FeatureOutcome.model_validate(o.model_dump(mode="json")) for o in outcomes]

    def delete(self, key: str) -> ObjectRef:
        self.s3.delete_object(Bucket=self.settings.bucket, Key=key)
        return self.ref(key)

    def searchable(self, key: str) -> bool:
        return stages.index(self.settings).get(image_id(self.settings.bucket, key)) is not None


@pytest.fixture
def stack(
    moto_url: str,
    opensearch_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Stack:
    env = devstack.stack_env(
        moto_url, opensearch_url, "redis://127.0.0.1:1/0", f"d{uuid.uuid4().hex[:8]}"
    )
    settings = Settings.from_env(env)
    init(settings, say=lambda _: None)
    monkeypatch.setattr(stages, "get_analyzer", lambda _: Decoding(settings))
    monkeypatch.setattr(downloads, "default_directory", lambda: tmp_path / "downloads")
    monkeypatch.setattr(downloads, "_shared", {})
    return Stack(settings)


def _photo() -> bytes:
    return encode(load("chelsea"), "JPEG")


def test_three_features_download_once_and_the_aggregate_sends_no_head(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = stack.upload(
        "cats/one.jpg", _photo(), ContentType="image/jpeg", Metadata={"content-id": "cms-1"}
    )
    decodes: list[int] = []

    def counted(data: bytes, **options: Any) -> DecodedImage:
        decodes.append(len(data))
        return decode(data, **options)

    monkeypatch.setattr(stages, "decode", counted)
    stack.calls.clear()
    outcomes = stack.analyze(ref)
    assert stack.calls == ["GetObject"]
    assert len(decodes) == 1, "one decode for the three features"
    first, *others = outcomes
    assert first.s3_object and first.s3_object.etag == ref.etag
    # The pixels were there for the other two: they read neither the bytes nor attributes.
    assert [o.s3_object for o in others] == [None, None]
    record = stages.aggregate(outcomes, ref, stack.settings)
    assert stack.calls == ["GetObject"], "no HeadObject"
    assert record is not None and record.status == "done"
    assert (record.etag, record.size, record.content_type) == (ref.etag, ref.size, "image/jpeg")
    assert record.metadata == {"content-id": "cms-1"}
    assert (record.width, record.height) == (451, 300)
    assert stack.searchable("cats/one.jpg")


def test_a_corrupt_image_keeps_the_attributes_of_its_download(stack: Stack) -> None:
    ref = stack.upload("broken/half.jpg", _photo()[:3000], ContentType="image/jpeg")
    stack.calls.clear()
    record = stages.aggregate(stack.analyze(ref), ref, stack.settings)
    assert stack.calls == ["GetObject"]
    assert record is not None and record.status == "failed"
    assert record.content_type == "image/jpeg" and record.etag == ref.etag
    assert all(m.startswith("UnreadableImage") for m in record.errors.values())


def test_an_object_gone_before_its_download_leaves_no_record(stack: Stack) -> None:
    ref = stack.upload("gone/early.jpg", _photo())
    stack.s3.delete_object(Bucket=stack.settings.bucket, Key="gone/early.jpg")
    stack.calls.clear()
    outcomes = stack.analyze(ref)
    assert all(o.error and o.error.startswith("ObjectGone") for o in outcomes)
    assert stages.aggregate(outcomes, ref, stack.settings) is None
    assert "HeadObject" not in stack.calls
    assert stages.store(stack.settings).get(image_id(ref.bucket, ref.key)) is None


def test_outcomes_without_a_download_fall_back_to_a_head(stack: Stack) -> None:
    # Rekognition reads S3 itself: its outcomes carry no attributes.
    ref = stack.upload("rekognition/read.jpg", _photo(), ContentType="image/jpeg")
    assert stages.store(stack.settings).mark_pending(ref)
    outcomes = [FeatureOutcome(feature=f, backend="rekognition") for f in FEATURES]
    stack.calls.clear()
    record = stages.aggregate(outcomes, ref, stack.settings)
    assert stack.calls == ["HeadObject"]
    assert record is not None and record.content_type == "image/jpeg"


@pytest.mark.parametrize("delete_first", [True, False], ids=["delete-first", "aggregate-first"])
def test_a_delete_during_the_analysis_leaves_no_record(stack: Stack, delete_first: bool) -> None:
    """What the HEAD guarded against, now held by the ordered writes: the object is deleted
    after the features read it; the delete's tombstone wins whichever lands first."""
    key = f"deleted/during-{delete_first}.jpg"
    ref = stack.upload(key, _photo())
    outcomes = stack.analyze(ref)  # read and analysed: the first has its attributes
    removed = stack.delete(key)
    steps: list[Callable[[], object]] = [
        lambda: stages.remove(removed, stack.settings),
        lambda: stages.aggregate(outcomes, ref, stack.settings),
    ]
    for step in steps if delete_first else reversed(steps):
        step()
    assert stages.store(stack.settings).get(image_id(ref.bucket, key)) is None
    assert not stack.searchable(key)
