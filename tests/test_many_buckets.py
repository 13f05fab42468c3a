"""One fleet, two buckets, through real processes: images uploaded to either bucket become
records searchable with `bucket:`, by the EventBridge route and by the SNS route (S3 -> SNS or
EventBridge -> SQS -> `rudolph listen` -> `celery worker` -> DynamoDB + OpenSearch), and what
RUDOLPH_BUCKETS leaves out is skipped with the reason in the listener's log."""

from __future__ import annotations

import pytest

from rudolph.routes import Route
from tests.fleet import fleet, poll
from tests.photos import encode, load

CAT = "cats/chelsea.jpg"
COFFEE = "photos/coffee cup.jpg"
OUTSIDE = "elsewhere/coffee cup.jpg"


@pytest.mark.parametrize("route", ["eventbridge", "sns"])
def test_two_buckets_are_analysed_and_searchable_by_bucket(
    moto_url: str, opensearch_url: str, redis_url: str, route: Route
) -> None:
    with fleet(
        moto_url,
        opensearch_url,
        redis_url,
        route=route,
        RUDOLPH_BUCKETS="{name}, s3://{name}-b/photos/ *.jpg",
    ) as running:
        first = running.settings.bucket
        second = f"{first}-b"
        coffee = encode(load("coffee"), "JPEG")
        running.upload(CAT, encode(load("chelsea"), "JPEG"))
        running.upload(COFFEE, coffee, bucket=second)
        running.upload(OUTSIDE, coffee, bucket=second)

        cat = running.record(CAT)
        cup = running.record(COFFEE, bucket=second)
        assert (cat.bucket, cup.bucket) == (first, second)
        assert cat.status == cup.status == "done"

        def keys(query: str) -> list[tuple[str, str]]:
            return sorted((h.bucket or "", h.key or "") for h in running.index.search(query).hits)

        assert poll(lambda: keys(f"bucket:{second}"), 30, "bucket: search") == [(second, COFFEE)]
        assert keys(f"bucket:{first}") == [(first, CAT)]
        assert keys(f"coffee bucket:{first}") == []

        running.idle()
        assert running.store.get(running.image_id(OUTSIDE, bucket=second)) is None
        log = (running.group.log_dir / "listener.log").read_text()
        assert f"s3://{second}/{OUTSIDE}: outside the prefix and suffixes RUDOLPH_BUCKETS" in log
