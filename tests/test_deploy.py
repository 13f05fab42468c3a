"""The IAM policies in deploy/: well-formed, least-privilege, and made of real actions."""

from __future__ import annotations

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
