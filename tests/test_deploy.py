"""The IAM policies in deploy/: well-formed, least-privilege, and made of real actions."""

from __future__ import annotations

import fnmatch
import json
import re
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

import botocore.session
import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
POLICIES = ("iam-producer.json", "iam-worker.json", "iam-operator.json", "iam-metrics.json")
PLACEHOLDERS = {
    "AccountId": "123456789012",
    "Region": "eu-west-1",
    "Bucket": "reindeer-dropzone",
    "Queue": "rudolph-events",
    "Table": "rudolph-images",
    "Domain": "rudolph",
    "Index": "rudolph-images",
}
# IAM action prefix -> botocore service model (where the IAM actions are API operation names).
MODELS = {
    "sqs": "sqs",
    "dynamodb": "dynamodb",
    "s3": "s3",
    "rekognition": "rekognition",
    "sns": "sns",
    "events": "events",
    "cloudwatch": "cloudwatch",
}
# IAM actions that are no API operation of their own, with the operation they authorise.
IAM_ONLY = {"s3:GetObjectVersion": "GetObject"}
# OpenSearch Service's data-plane actions (IAM service authorization reference).
ES_HTTP = {f"es:ESHttp{verb}" for verb in ("Get", "Head", "Post", "Put", "Delete", "Patch")}
# The ARN each service's resources start with, once the placeholders are filled.
ARN_PREFIX = {
    "sqs": "arn:aws:sqs:eu-west-1:123456789012:",
    "dynamodb": "arn:aws:dynamodb:eu-west-1:123456789012:table/rudolph-images",
    "s3": "arn:aws:s3:::reindeer-dropzone",
    "es": "arn:aws:es:eu-west-1:123456789012:domain/rudolph/",
    "sns": "arn:aws:sns:eu-west-1:123456789012:rudolph-events-topic",
    "events": "arn:aws:events:eu-west-1:123456789012:rule/rudolph-events-rule",
    # The face collection of people with the Rekognition backend, `<RUDOLPH_TABLE>-faces`.
    "rekognition": "arn:aws:rekognition:eu-west-1:123456789012:collection/rudolph-images-faces",
}


@cache
def operations(service: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


def load(name: str) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads((DEPLOY / name).read_text())
    return policy


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def statements(name: str) -> list[dict[str, Any]]:
    return list(load(name)["Statement"])


def actions(name: str) -> set[str]:
    return {a for s in statements(name) for a in as_list(s["Action"])}


@pytest.mark.parametrize("name", POLICIES)
def test_a_valid_policy_document(name: str) -> None:
    policy = load(name)
    assert policy["Version"] == "2012-10-17"
    sids = [s.get("Sid") for s in policy["Statement"]]
    assert all(sids) and len(set(sids)) == len(sids), "every statement has its own Sid"
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        assert statement["Effect"] == "Allow"
        assert as_list(statement["Action"]) and as_list(statement["Resource"])


@pytest.mark.parametrize("name", POLICIES)
def test_no_wildcard_action_and_no_wildcard_resource_but_rekognitions(name: str) -> None:
    for statement in statements(name):
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{statement['Sid']}: {action}"
        if "*" in as_list(statement["Resource"]):
            assert as_list(statement["Resource"]) == ["*"]
            services = {a.split(":")[0] for a in as_list(statement["Action"])}
            if services == {"cloudwatch"}:
                # PutMetricData has no resource; the condition narrows it to rudolph's namespace.
                assert as_list(statement["Action"]) == ["cloudwatch:PutMetricData"]
                assert statement["Condition"] == {
                    "StringEquals": {"cloudwatch:namespace": "Rudolph"}
                }
            else:
                assert services == {"rekognition"}


@pytest.mark.parametrize("name", POLICIES)
def test_every_action_is_a_real_one(name: str) -> None:
    for action in actions(name):
        prefix, _, operation = action.partition(":")
        if prefix == "es":
            assert action in ES_HTTP, action
        elif action in IAM_ONLY:
            assert IAM_ONLY[action] in operations(MODELS[prefix]), action
        else:
            assert prefix in MODELS, f"unexpected service {prefix!r}"
            assert operation in operations(MODELS[prefix]), action


@pytest.mark.parametrize("name", POLICIES)
def test_resources_name_the_service_of_their_actions(name: str) -> None:
    """Filled in, each resource is an ARN of the statement's service, and of rudolph's."""
    text = Template((DEPLOY / name).read_text()).substitute(PLACEHOLDERS)
    assert "${" not in text
    for statement in json.loads(text)["Statement"]:
        (service,) = {a.split(":")[0] for a in as_list(statement["Action"])}
        for resource in as_list(statement["Resource"]):
            if resource != "*":
                assert resource.startswith(ARN_PREFIX[service]), resource


def test_only_the_documented_placeholders_are_used() -> None:
    used = {m for name in POLICIES for m in re.findall(r"\$\{(\w+)\}", (DEPLOY / name).read_text())}
    assert used == set(PLACEHOLDERS)
    readme = (DEPLOY / "README.md").read_text()
    assert all(f"${{{p}}}" in readme for p in PLACEHOLDERS)


def test_every_statement_is_explained_in_the_readme() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for name in POLICIES:
        assert f"`{name}`" in readme
        for statement in statements(name):
            assert f"**{statement['Sid']}**" in readme, statement["Sid"]


def test_the_metrics_namespace_is_the_publishers() -> None:
    from rudolph.metrics import NAMESPACE

    (statement,) = statements("iam-metrics.json")
    assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == NAMESPACE


def test_the_producer_cannot_analyse_nor_delete() -> None:
    producer = actions("iam-producer.json")
    assert not {a for a in producer if a.startswith("rekognition:")}
    assert "dynamodb:DeleteItem" not in producer
    assert not {a for a in producer if a.startswith("es:")}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "s3:GetObject"} <= producer
    queue_statement = next(s for s in statements("iam-producer.json") if "sqs:" in str(s))
    assert as_list(queue_statement["Resource"]) == ["arn:aws:sqs:${Region}:${AccountId}:${Queue}"]


def test_the_worker_cannot_administer() -> None:
    worker = actions("iam-worker.json")
    assert {"rekognition:DetectLabels", "rekognition:DetectText", "rekognition:DetectFaces"} <= (
        worker
    )
    # People on the Rekognition backend: the collection's faces, never the collection itself.
    assert {
        "rekognition:IndexFaces",
        "rekognition:SearchFaces",
        "rekognition:DeleteFaces",
    } <= worker
    assert (
        "rekognition:CreateCollection" not in worker
        and "rekognition:DeleteCollection" not in worker
    )
    assert not {a for a in worker if a.startswith("sqs:")}
    assert not worker & {"dynamodb:CreateTable", "dynamodb:Scan", "s3:PutBucketNotification"}
    # It may delete documents, never indices, and never move the alias.
    for statement in statements("iam-worker.json"):
        if "es:ESHttpDelete" in as_list(statement["Action"]):
            assert all(r.endswith("${Index}/*") for r in as_list(statement["Resource"]))
        assert not any(r.endswith("/_aliases") for r in as_list(statement["Resource"]))


def test_the_operator_can_do_what_its_commands_need() -> None:
    operator = actions("iam-operator.json")
    assert {
        "sqs:CreateQueue",
        "sqs:SetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "s3:PutBucketNotification",
        "dynamodb:CreateTable",
        "dynamodb:Scan",
        "es:ESHttpPost",
        "es:ESHttpDelete",
    } <= operator
    # Of Rekognition, only the face collection: init creates it, forget deletes from it.
    assert {a for a in operator if a.startswith("rekognition:")} == {
        "rekognition:CreateCollection",
        "rekognition:SearchFaces",
        "rekognition:DeleteFaces",
    }


# -- the worker's DynamoDB calls, as the code makes them ------------------------------------


class _FoundingRace:
    """A face space where a new face first finds nobody, then, once it founded its person,
    the face another worker founded at the same moment: the path that merges two persons."""

    def __init__(self, rival: Any) -> None:
        self.rival = rival
        self.asked = 0

    def takes(self, face: Any) -> bool:
        return True

    def near(self, record: Any, number: int) -> list[Any]:
        self.asked += 1
        return [] if self.asked == 1 else [self.rival]

    def put(self, record: Any, number: int, person_id: str, refresh: bool) -> None:
        return

    def set_person(self, person_ids: Any, to: str) -> None:
        return

    def drop(self, image_id: str, faces: Any, whole: bool = False) -> None:
        return

    def drop_strays(self, image_id: str, current: Any) -> int:
        assert current()  # the record saved is the newest: what CollectionFaces asks
        return 0


def _worker_dynamodb_calls(moto_url: str) -> list[tuple[str, str | None]]:
    """(operation, index) of every DynamoDB call of the worker's paths with people on: save a
    record (put_final), cluster its face through a founding race and merge, read the stored
    record (a re-run), delete the image (tombstone, its faces), drop a vanished pending item."""
    import uuid

    from rudolph.events import ObjectRef
    from rudolph.index.faces import Neighbour
    from rudolph.people import People, founder_id
    from rudolph.peoplestore import PeopleStore
    from rudolph.record import Box, Face, Record, image_id
    from rudolph.settings import Settings
    from rudolph.store import RecordStore

    settings = Settings(aws_endpoint_url=moto_url, table=f"t-{uuid.uuid4().hex[:8]}", people="on")
    records = RecordStore(settings)
    records.ensure()
    box = Box(left=0.1, top=0.1, width=0.2, height=0.3)
    rival_image = image_id("b", "rival.jpg")
    rival = founder_id(rival_image, 0)
    store = PeopleStore(settings, records)
    store.create_person(rival)
    store.assign(rival_image, 0, rival, "0")
    calls: list[tuple[str, str | None]] = []

    def record_call(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params.get("IndexName")))

    for client in (records.client, records.table.meta.client):
        client.meta.events.register("before-parameter-build.dynamodb", record_call)
    ref = ObjectRef(bucket="b", key="new.jpg", etag="e", sequencer="0A")
    record = Record(
        image_id=image_id("b", "new.jpg"),
        bucket="b",
        key="new.jpg",
        status="done",
        faces=[Face(confidence=99.0, box=box)],
    )
    people = People(
        settings, store=store, space=_FoundingRace(Neighbour(rival_image, 0, rival, 0.1, box))
    )
    assert records.put_final(record, ref.order) == 1
    [person] = people.index_record(record, ref.order).values()
    assert person == min(rival, founder_id(record.image_id, 0)), "the race ends in one person"
    assert records.get(record.image_id) is not None
    gone = ObjectRef(bucket="b", key="new.jpg", etag="e", sequencer="0B")
    assert records.tombstone(gone) is not None
    people.remove_image(record.image_id, gone.order)
    records.forget_pending(gone)
    return calls


def _granted(policy: str, operation: str, index: str | None) -> bool:
    text = Template((DEPLOY / policy).read_text()).substitute(PLACEHOLDERS)
    arn = ARN_PREFIX["dynamodb"] + (f"/index/{index}" if index else "")
    return any(
        f"dynamodb:{operation}" in as_list(s["Action"])
        and any(fnmatch.fnmatchcase(arn, r) for r in as_list(s["Resource"]))
        for s in json.loads(text)["Statement"]
    )


def test_the_worker_may_make_every_dynamodb_call_of_its_code_and_no_other(moto_url: str) -> None:
    calls = _worker_dynamodb_calls(moto_url)
    operations_made = {op for op, _ in calls}
    # The paths ran: the merge queried the `person` index, the clustering batch-read faces.
    assert ("Query", "person") in calls and "BatchGetItem" in operations_made
    assert "Scan" not in operations_made
    missing = sorted({c for c in calls if not _granted("iam-worker.json", *c)})
    assert not missing, f"iam-worker.json does not grant {missing}"
    worker = {a for a in actions("iam-worker.json") if a.startswith("dynamodb:")}
    assert worker == {f"dynamodb:{op}" for op in operations_made}, "exactly what the code calls"
