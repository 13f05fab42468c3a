"""`rudolph dev` keeps its buckets and table across restarts: what one moto held is saved to a
folder and loaded into the next, byte for byte, with no path built from an uploader's key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from rudolph.devstate import IN_USE, DevState
from tests.servers import moto_server

pytestmark = pytest.mark.servers

HOSTILE_KEYS = ["../../etc/passwd", "tab\tand \x1b[31mescape.jpg", "ünï/cødé 🦌.png", "a" * 900]


def _clients(url: str) -> tuple[Any, Any]:
    def make(service: str) -> Any:
        return boto3.session.Session().client(service, endpoint_url=url, region_name="us-east-1")

    return make("s3"), make("dynamodb")


def _fill(s3: Any, dynamodb: Any) -> None:
    for bucket in ("photos", "more-photos"):
        s3.create_bucket(Bucket=bucket)
    for n, key in enumerate(HOSTILE_KEYS):
        s3.put_object(
            Bucket="photos",
            Key=key,
            Body=bytes([n]) * (n * 1000 + 1),
            ContentType="image/jpeg",
            Metadata={"taken-by": f"camera {n}"},
        )
    # The same bytes under two keys in two buckets are kept once on disk.
    s3.put_object(Bucket="more-photos", Key="copy", Body=b"\x00")
    dynamodb.create_table(
        TableName="records",
        KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "image_id", "AttributeType": "S"},
            {"AttributeName": "pending", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-pending",
                "KeySchema": [{"AttributeName": "pending", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName="records",
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"},
    )
    for n in range(60):  # more than one BatchWriteItem
        dynamodb.put_item(
            TableName="records",
            Item={
                "image_id": {"S": f"img-{n}"},
                "raw": {"B": bytes(range(n % 256))},
                "set": {"BS": [b"\x01", bytes([n % 256, 2])]},
                "nested": {"M": {"faces": {"L": [{"B": b"\xff\x00"}, {"N": str(n)}]}}},
                "__b64__": {"S": "a name that looks like our own marker"},
            },
        )


def _contents(s3: Any, dynamodb: Any) -> dict[str, Any]:
    objects = {}
    for bucket in s3.list_buckets()["Buckets"]:
        for listed in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            got = s3.get_object(Bucket=bucket["Name"], Key=listed["Key"])
            objects[(bucket["Name"], listed["Key"])] = (
                got["Body"].read(),
                got["ContentType"],
                got["Metadata"],
            )
    items = dynamodb.scan(TableName="records")["Items"]
    table = dynamodb.describe_table(TableName="records")["Table"]
    ttl = dynamodb.describe_time_to_live(TableName="records")["TimeToLiveDescription"]
    return {
        "objects": objects,
        "items": sorted(items, key=lambda item: item["image_id"]["S"]),
        "index": [i["IndexName"] for i in table["GlobalSecondaryIndexes"]],
        "ttl": ttl.get("AttributeName"),
    }


def test_what_one_moto_held_comes_back_in_the_next(tmp_path: Path) -> None:
    state = DevState(tmp_path / "aws-state")
    assert not state.saved() and not state.clean()
    with moto_server() as url:
        s3, dynamodb = _clients(url)
        _fill(s3, dynamodb)
        before = _contents(s3, dynamodb)
        saved = state.save(s3, dynamodb)
    assert (saved.buckets, saved.objects, saved.tables, saved.items) == (2, 5, 1, 60)
    assert state.clean()
    # Objects are files named by their content's hash; keys stay inside the manifest.
    blobs = [p.name for p in (state.folder / "objects").iterdir()]
    assert len(blobs) == 4 and all(len(name) == 64 for name in blobs)
    assert not any(p.name == "passwd" for p in tmp_path.rglob("*"))

    with moto_server() as url:
        s3, dynamodb = _clients(url)
        loaded = state.load(s3, dynamodb, "us-east-1")
        assert loaded == saved
        assert _contents(s3, dynamodb) == before
        # Loaded buckets have no notifications yet: `rudolph init` adds them afterwards.
        assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(
            Bucket="photos"
        )


def test_a_stack_that_was_not_stopped_cleanly_is_not_clean(tmp_path: Path) -> None:
    state = DevState(tmp_path / "aws-state")
    with moto_server() as url:
        s3, dynamodb = _clients(url)
        s3.create_bucket(Bucket="photos")
        state.save(s3, dynamodb)
    state.mark_in_use()
    assert (state.folder / IN_USE).exists()
    assert state.saved() and not state.clean()
    # The next clean stop replaces the whole folder, marker included.
    with moto_server() as url:
        s3, dynamodb = _clients(url)
        state.save(s3, dynamodb)
    assert state.clean()
    state.discard()
    assert not state.saved()


def test_items_dynamodb_leaves_unprocessed_are_sent_again_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.stub import Stubber

    from rudolph import devstate

    monkeypatch.setattr(devstate.time, "sleep", lambda seconds: None)
    dynamodb = boto3.session.Session().client(
        "dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
    )
    item = {"image_id": {"S": "img"}}
    request = {"records": [{"PutRequest": {"Item": item}}]}
    with Stubber(dynamodb) as stub:
        stub.add_response(
            "batch_write_item", {"UnprocessedItems": request}, {"RequestItems": request}
        )
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": request})
        devstate._write_batch(dynamodb, "records", [item])
        stub.assert_no_pending_responses()
    with Stubber(dynamodb) as stub:
        for _ in range(devstate.WRITE_ATTEMPTS):
            stub.add_response("batch_write_item", {"UnprocessedItems": request})
        with pytest.raises(devstate.DevStateError, match="1 items of records unwritten"):
            devstate._write_batch(dynamodb, "records", [item])
