"""RUDOLPH_BUCKETS: its syntax, what each entry admits, and RUDOLPH_BUCKET as a list of one."""

from __future__ import annotations

import pytest

from rudolph.buckets import BucketFilter, admitted, describe, names, parse_buckets
from rudolph.errors import ConfigurationError
from rudolph.settings import Settings
from rudolph.web.presign import Presigner


def test_the_syntax() -> None:
    filters = parse_buckets(" photos-a ,s3://photos-b/in/ *.jpg *.JPG, photos-a/raw/,")
    assert filters == (
        BucketFilter(name="photos-a"),
        BucketFilter(name="photos-b", prefix="in/", suffixes=(".jpg", ".JPG")),
        BucketFilter(name="photos-a", prefix="raw/"),
    )
    assert describe(filters) == "s3://photos-a/, s3://photos-b/in/ *.jpg *.JPG, s3://photos-a/raw/"
    assert names(filters) == ["photos-a", "photos-b"]


@pytest.mark.parametrize(
    ("bucket", "key", "admitted_"),
    [
        ("photos-a", "anything/at all.txt", True),
        ("photos-b", "in/cat.jpg", True),
        ("photos-b", "in/deeper/cat.JPG", True),
        ("photos-b", "in/cat.png", False),  # not one of the suffixes
        ("photos-b", "out/cat.jpg", False),  # not under the prefix
        ("photos-b", "In/cat.jpg", False),  # case matters, as in S3's filters
        ("photos-c", "cat.jpg", False),
    ],
)
def test_what_is_admitted(bucket: str, key: str, admitted_: bool) -> None:
    filters = parse_buckets("photos-a, s3://photos-b/in/ *.jpg *.JPG")
    assert admitted(filters, bucket, key) is admitted_


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("photos-a, photos-b/in/ jpg", "'jpg' in 'photos-b/in/ jpg' is not a suffix pattern"),
        ("photos-a *", "'\\*' in 'photos-a \\*' is not a suffix pattern"),
        ("Photos_A", "'Photos_A' is not an S3 bucket name"),
        ("s3:///prefix", "'' is not an S3 bucket name"),
        (" , ", "names no bucket"),
    ],
)
def test_bad_values_say_what_to_write(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"RUDOLPH_BUCKETS=.*{message}"):
        Settings.from_env({"RUDOLPH_BUCKETS": value})


def test_rudolph_bucket_is_a_list_of_one() -> None:
    settings = Settings.from_env({"RUDOLPH_BUCKET": "photos-a"})
    assert settings.buckets == (BucketFilter(name="photos-a"),)
    assert (settings.bucket, settings.buckets_setting) == ("photos-a", "RUDOLPH_BUCKET")
    default = Settings.from_env({})
    assert default.buckets == (BucketFilter(name="reindeer-dropzone"),)
    with pytest.raises(ConfigurationError, match=r"RUDOLPH_BUCKET='Bad_Name': .*not an S3 bucket"):
        Settings.from_env({"RUDOLPH_BUCKET": "Bad_Name"})


def test_with_rudolph_buckets_the_first_is_the_bucket() -> None:
    settings = Settings.from_env({"RUDOLPH_BUCKETS": "s3://photos-b/in/, photos-a"})
    assert (settings.bucket, settings.buckets_setting) == ("photos-b", "RUDOLPH_BUCKETS")
    both = Settings.from_env(
        {"RUDOLPH_BUCKETS": "photos-b, photos-a", "RUDOLPH_BUCKET": "photos-a"}
    )
    assert both.bucket == "photos-a"
    with pytest.raises(ConfigurationError, match="RUDOLPH_BUCKET='photos-c' is not among"):
        Settings.from_env({"RUDOLPH_BUCKETS": "photos-a", "RUDOLPH_BUCKET": "photos-c"})


def test_the_web_page_presigns_only_watched_objects() -> None:
    presigner = Presigner(Settings.from_env({"RUDOLPH_BUCKETS": "photos-a, s3://photos-b/in/"}))
    assert (presigner.url("photos-a", "cat.jpg") or "").startswith("https://photos-a.s3.")
    assert "/in/cat.jpg" in (presigner.url("photos-b", "in/cat.jpg") or "")
    assert presigner.url("photos-b", "out/cat.jpg") is None
    assert presigner.url("photos-c", "cat.jpg") is None
