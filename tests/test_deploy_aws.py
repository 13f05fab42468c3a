"""deploy/aws/rudolph.yaml: the builder's output, clean for cfn-lint, and deployed into moto's
server, where rudolph's own commands find the bucket, the queues and the table it made."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml

from rudolph import provision, routes, store
from rudolph.settings import Settings
from rudolph.store import RecordStore
from rudolph.vocabulary import QUEUES

ROOT = Path(__file__).resolve().parent.parent
AWS_DIR = ROOT / "deploy" / "aws"
RUDOLPH = Path(sys.executable).parent / "rudolph"

#: Resource types of the template that moto's CloudFormation cannot create: the deploy test
#: leaves them out (and what refers to them gets a stand-in value); cfn-lint alone checks them.
#: deploy/aws/README.md lists the same ones.
MOTO_LACKS = {
    "AWS::SQS::QueuePolicy",
    "AWS::ElastiCache::SubnetGroup",
    "AWS::ElastiCache::ParameterGroup",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::OpenSearchService::Domain",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
}


@cache
def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rudolph_aws_build", AWS_DIR / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((AWS_DIR / "rudolph.yaml").read_text())
    return loaded


def resources(kind: str, body: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    found = (body or template())["Resources"].items()
    return {name: r for name, r in found if r["Type"] == kind}


def lint(body: dict[str, Any]) -> list[str]:
    from cfnlint.api import lint as cfn_lint

    text = json.dumps(body)
    return [str(m) for m in cfn_lint(text, regions=["us-east-1", "eu-west-1"])]


# -- the template -------------------------------------------------------------------------


def test_the_committed_template_is_the_builders_output() -> None:
    assert (AWS_DIR / "rudolph.yaml").read_text() == builder().render(), (
        "run .venv/bin/python deploy/aws/build.py"
    )


def test_cfn_lint_finds_nothing() -> None:
    assert lint(template()) == []


def test_cfn_lint_catches_a_broken_template() -> None:
    """The lint test can fail: a task without its CPU, a wrong queue attribute."""
    broken = copy.deepcopy(template())
    del broken["Resources"]["WorkerLabelsTask"]["Properties"]["Cpu"]
    broken["Resources"]["EventQueue"]["Properties"]["VisibilityTimeout"] = "forever"
    broken["Resources"]["Table"]["Properties"]["BillingMode"] = "FREE"
    problems = "\n".join(lint(broken))
    assert "'Cpu' is a required property" in problems
    assert "forever" in problems
    assert "FREE" in problems


def test_one_scaled_worker_service_per_celery_queue() -> None:
    body = template()
    services = resources("AWS::ECS::Service", body)
    tasks = resources("AWS::ECS::TaskDefinition", body)
    for queue in QUEUES:
        key = builder().logical(f"worker-{queue}")
        assert f"{key}Service" in services
        command = tasks[f"{key}Task"]["Properties"]["ContainerDefinitions"][0]["Command"]
        assert command[command.index("-Q") + 1] == queue
        target = body["Resources"][f"{key}Scaling"]
        assert target["DependsOn"] == [f"{key}Service"]
        for direction in ("Out", "In"):
            alarm = body["Resources"][f"{key}Queue{direction}Alarm"]["Properties"]
            assert {"Name": "Queue", "Value": queue} in alarm["Dimensions"]
            assert alarm["MetricName"] == "QueueDepth" and alarm["Namespace"] == "Rudolph"
            assert alarm["AlarmActions"] == [{"Ref": f"{key}Scale{direction}"}]
    workers = [s for s in services if s.startswith("Worker")]
    assert len(workers) == len(QUEUES)
    assert {"ListenerService", "FlowerService", "MetricsService"} <= set(services)


def test_the_table_and_queues_are_the_ones_rudolph_init_makes() -> None:
    body = template()
    table = body["Resources"]["Table"]["Properties"]
    assert table["KeySchema"] == store.KEY_SCHEMA
    assert table["GlobalSecondaryIndexes"] == store.GLOBAL_INDEXES
    queue = body["Resources"]["EventQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == provision.MAX_RECEIVES
    notifications = body["Resources"]["Bucket"]["Properties"]["NotificationConfiguration"]
    assert [c["Event"] for c in notifications["QueueConfigurations"]] == routes.S3_EVENTS


def test_no_credential_in_the_template() -> None:
    text = (AWS_DIR / "rudolph.yaml").read_text()
    for word in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "testing", "password@"):
        assert word not in text
    flower = template()["Resources"]["FlowerTask"]["Properties"]["ContainerDefinitions"][0]
    assert flower["Secrets"] == [
        {"Name": "FLOWER_BASIC_AUTH", "ValueFrom": {"Ref": "FlowerAuthSecretArn"}}
    ]
    assert "--basic-auth" not in " ".join(map(str, flower["Command"]))
    for task in resources("AWS::ECS::TaskDefinition").values():
        for env in task["Properties"]["ContainerDefinitions"][0]["Environment"]:
            assert "AUTH" not in env["Name"] or env["Value"] == "sigv4", env


def test_the_roles_carry_the_policies_of_deploy() -> None:
    roles = resources("AWS::IAM::Role")
    for role, name in (
        ("ListenerRole", "producer"),
        ("WorkerRole", "worker"),
        ("MetricsRole", "metrics"),
    ):
        (policy,) = roles[role]["Properties"]["Policies"]
        document = json.loads((ROOT / "deploy" / f"iam-{name}.json").read_text())
        got = policy["PolicyDocument"]["Statement"]
        assert [s["Sid"] for s in got] == [s["Sid"] for s in document["Statement"]]
        assert [s["Action"] for s in got] == [s["Action"] for s in document["Statement"]]
        # Every placeholder is a variable of its Fn::Sub (nothing left for IAM to reject).
        for statement in got:
            for resource in (
                statement["Resource"]
                if isinstance(statement["Resource"], list)
                else [statement["Resource"]]
            ):
                if isinstance(resource, dict):
                    text, variables = resource["Fn::Sub"]
                    used = set(re.findall(r"\$\{(\w+)\}", text))
                    assert used == set(variables), text


def test_moto_lacks_exactly_the_documented_types() -> None:
    from moto.cloudformation.parsing import resource_class_from_type

    kinds = {r["Type"] for r in template()["Resources"].values()}
    assert {k for k in kinds if not resource_class_from_type(k)} == MOTO_LACKS
    readme = (AWS_DIR / "README.md").read_text()
    for kind in MOTO_LACKS:
        assert f"`{kind}`" in readme, kind


# -- deployed into moto ---------------------------------------------------------------------


def for_moto(body: dict[str, Any]) -> dict[str, Any]:
    """The template without the types moto lacks; references to them become stand-ins."""
    body = copy.deepcopy(body)
    gone = {n for n, r in body["Resources"].items() if r["Type"] in MOTO_LACKS}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Ref"} and value["Ref"] in gone:
                return f"moto-lacks-{value['Ref']}"
            if set(value) == {"Fn::GetAtt"} and value["Fn::GetAtt"][0] in gone:
                return "moto-lacks-" + "-".join(value["Fn::GetAtt"])
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    for name in gone:
        del body["Resources"][name]
    for resource in body["Resources"].values():
        if "DependsOn" in resource:
            resource["DependsOn"] = [d for d in resource["DependsOn"] if d not in gone]
            if not resource["DependsOn"]:
                del resource["DependsOn"]
    return dict(walk(body))


@pytest.fixture(scope="module")
def stack(moto_url: str) -> dict[str, str]:
    """Deploy the template into moto; its outputs."""
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_url)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    cfn = boto3.client("cloudformation", region_name="us-east-1", endpoint_url=moto_url)
    parameters = {
        "ContainerImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/rudolph:test",
        "VpcId": vpc,
        "PrivateSubnetIds": ",".join(subnets),
        "BucketName": "deployed-dropzone",
        "QueueName": "deployed-events",
        "TableName": "deployed-images",
        "FlowerAuthSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:flower-AbCdEf",
    }
    cfn.create_stack(
        StackName="rudolph-test",
        TemplateBody=json.dumps(for_moto(template())),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(
        StackName="rudolph-test", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    (described,) = cfn.describe_stacks(StackName="rudolph-test")["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def fleet_env(stack: dict[str, str], moto_url: str, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "RUDOLPH_AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": "us-east-1",
        "RUDOLPH_BUCKET": stack["BucketName"],
        "RUDOLPH_QUEUE_NAME": stack["QueueName"],
        "RUDOLPH_TABLE": stack["TableName"],
        **more,
    }


def rudolph(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUDOLPH), *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_the_stack_outputs_name_the_deployed_resources(stack: dict[str, str]) -> None:
    assert stack["BucketName"] == "deployed-dropzone"
    assert stack["QueueName"] == "deployed-events"
    assert stack["DeadLetterQueueName"] == "deployed-events-dlq"
    assert stack["TableName"] == "deployed-images"


def test_the_fleet_finds_its_queues_and_dead_letters(stack: dict[str, str], moto_url: str) -> None:
    env = fleet_env(stack, moto_url)
    done = rudolph(env, "dlq", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    done = rudolph(env, "dlq")
    assert done.returncode == 0, done.stderr
    assert "deployed-events-dlq is empty" in done.stdout
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_url)
    url = sqs.get_queue_url(QueueName="deployed-events")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":deployed-events-dlq")
    assert int(redrive["maxReceiveCount"]) == provision.MAX_RECEIVES
    assert int(attributes["VisibilityTimeout"]) == provision.VISIBILITY_SECONDS


def test_the_fleet_finds_its_bucket_and_table(stack: dict[str, str], moto_url: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url)
    s3.put_object(Bucket="deployed-dropzone", Key="cats/tabby.jpg", Body=b"\xff\xd8" + b"0" * 100)
    # The backfill lists the bucket and asks the table what it holds (BatchGetItem).
    done = rudolph(fleet_env(stack, moto_url), "backfill", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "listed    1\n" in done.stdout, done.stdout
    # `rudolph init`'s table step finds the table there, with its indexes: nothing to do.
    settings = Settings(
        aws_endpoint_url=moto_url, table=stack["TableName"], bucket=stack["BucketName"]
    )
    assert RecordStore(settings).ensure() is False
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_url)
    table = dynamodb.describe_table(TableName="deployed-images")["Table"]
    assert table["KeySchema"] == store.KEY_SCHEMA
    assert sorted(i["IndexName"] for i in table["GlobalSecondaryIndexes"]) == sorted(
        i["IndexName"] for i in store.GLOBAL_INDEXES
    )


def test_the_fleet_status_against_the_deployed_names(
    stack: dict[str, str], moto_url: str, redis_url: str, opensearch_url: str
) -> None:
    env = fleet_env(
        stack, moto_url, CELERY_BROKER_URL=redis_url, RUDOLPH_OPENSEARCH_URL=opensearch_url
    )
    done = rudolph(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["celery"]) == set(QUEUES)
    assert report["sqs"]["events"]["name"] == "deployed-events"
    assert report["sqs"]["dead_letters"]["name"] == "deployed-events-dlq"
    assert report["buckets"]["watched"] == ["s3://deployed-dropzone/"]


def test_ecs_has_a_service_per_queue_and_the_roles(stack: dict[str, str], moto_url: str) -> None:
    ecs = boto3.client("ecs", region_name="us-east-1", endpoint_url=moto_url)
    arns = ecs.list_services(cluster=stack["ClusterName"])["serviceArns"]
    names = {arn.rsplit("/", 1)[-1] for arn in arns}
    expected = {f"rudolph-test-worker-{q}" for q in QUEUES} | {
        "rudolph-test-listener",
        "rudolph-test-flower",
        "rudolph-test-metrics",
    }
    assert expected <= names
