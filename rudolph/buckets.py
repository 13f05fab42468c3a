"""Which objects the fleet watches: `RUDOLPH_BUCKETS`, buckets each with an optional key prefix
and key suffixes, like the filters of S3's event notifications.

Syntax: entries separated by commas; an entry is `[s3://]bucket[/prefix]`, then optionally
suffix patterns `*SUFFIX` separated by spaces. A key is admitted by an entry when it is in the
bucket, starts with the prefix and (when suffixes are given) ends with one of them; by the
setting when any entry admits it. As in S3's filters, prefix and suffixes are compared exactly
(case matters). Example:

    RUDOLPH_BUCKETS="reindeer-dropzone, s3://team-a-photos/incoming/ *.jpg *.png, archive-eu"

`RUDOLPH_BUCKET=name` is the list of one entry `name` (the whole bucket).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, field_validator

# S3's bucket naming rules (general purpose buckets): 3-63 of a-z 0-9 . -, alphanumeric ends.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class BucketFilter(BaseModel):
    """One watched bucket, or the part of it under a prefix and with given suffixes."""

    model_config = ConfigDict(frozen=True)

    name: str
    prefix: str = ""
    suffixes: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _s3_bucket_name(cls, name: str) -> str:
        if not _BUCKET_NAME.fullmatch(name) or ".." in name:
            raise ValueError(
                f"{name!r} is not an S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')"
            )
        return name

    def admits(self, bucket: str, key: str) -> bool:
        if bucket != self.name or not key.startswith(self.prefix):
            return False
        return not self.suffixes or key.endswith(self.suffixes)

    @property
    def filtered(self) -> bool:
        return bool(self.prefix or self.suffixes)

    def __str__(self) -> str:
        patterns = "".join(f" *{suffix}" for suffix in self.suffixes)
        return f"s3://{self.name}/{self.prefix}{patterns}"


def parse_buckets(text: str) -> tuple[BucketFilter, ...]:
    """'a, s3://b/in/ *.jpg *.png' -> BucketFilter(a), BucketFilter(b, 'in/', ('.jpg', '.png'))."""
    filters = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        location, *patterns = entry.split()
        name, _, prefix = location.removeprefix("s3://").partition("/")
        suffixes = []
        for pattern in patterns:
            if not pattern.startswith("*") or len(pattern) < 2:
                raise ValueError(
                    f"{pattern!r} in {entry!r} is not a suffix pattern like *.jpg "
                    "(entries are '[s3://]bucket[/prefix] [*suffix ...]', separated by commas)"
                )
            suffixes.append(pattern[1:])
        filters.append(BucketFilter(name=name, prefix=prefix, suffixes=tuple(suffixes)))
    if not filters:
        raise ValueError("names no bucket: give at least one, e.g. 'reindeer-dropzone'")
    return tuple(filters)


def names(filters: Iterable[BucketFilter]) -> list[str]:
    """The distinct bucket names, in the order first given."""
    return list(dict.fromkeys(f.name for f in filters))


def admitted(filters: Iterable[BucketFilter], bucket: str, key: str) -> bool:
    return any(f.admits(bucket, key) for f in filters)


def describe(filters: Iterable[BucketFilter]) -> str:
    return ", ".join(map(str, filters))
