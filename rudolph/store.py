"""The DynamoDB table of records: the source of truth (the search index can be rebuilt from it).

One item per image, keyed by `image_id`; floats are stored as Decimal, as DynamoDB requires.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rudolph import aws
from rudolph.errors import StoreUnavailableError
from rudolph.record import Record
from rudolph.settings import Settings


def to_item(record: Record) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(record.model_dump_json(), parse_float=Decimal)
    # DynamoDB rejects nothing here, but None attributes only cost bytes.
    return {k: v for k, v in item.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value % 1 == 0 else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def from_item(item: dict[str, Any]) -> Record:
    return Record.model_validate(_plain(item))


class RecordStore:
    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.client = client or aws.client("dynamodb", settings)
        self.table_name = settings.table
        self._table: Any = None

    @property
    def table(self) -> Any:
        if self._table is None:
            import boto3

            resource = boto3.session.Session().resource(
                "dynamodb",
                region_name=self.settings.aws_region,
                endpoint_url=self.settings.aws_endpoint_url,
            )
            self._table = resource.Table(self.table_name)
        return self._table

    def ensure(self) -> bool:
        """Create the table (on-demand, key image_id) if missing; True when it was created."""
        try:
            self.client.create_table(
                TableName=self.table_name,
                KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            return False
        self.client.get_waiter("table_exists").wait(
            TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return True

    def put(self, record: Record) -> None:
        self._call(self.table.put_item, Item=to_item(record))

    def get(self, image_id: str) -> Record | None:
        response = self._call(self.table.get_item, Key={"image_id": image_id}, ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None

    def delete(self, image_id: str) -> None:
        self._call(self.table.delete_item, Key={"image_id": image_id})

    def scan(self) -> Any:
        """Every record, page by page (for rebuilding the index)."""
        kwargs: dict[str, Any] = {}
        while True:
            page = self._call(self.table.scan, **kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ResourceNotFoundException":
                raise StoreUnavailableError(
                    f"DynamoDB table {self.table_name!r} does not exist: run `rudolph init`"
                ) from exc
            raise StoreUnavailableError(
                f"DynamoDB {code}: {exc.response['Error'].get('Message', '')} "
                f"(table {self.table_name!r}; will retry)"
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"DynamoDB unreachable ({exc}); check RUDOLPH_AWS_ENDPOINT_URL and the network"
            ) from exc
