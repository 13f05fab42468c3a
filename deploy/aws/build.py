"""Build deploy/aws/rudolph.yaml, the CloudFormation template of the whole fleet on AWS.

    .venv/bin/python deploy/aws/build.py            # rewrite rudolph.yaml
    .venv/bin/python deploy/aws/build.py --check    # exit 1 when rudolph.yaml is stale

A small typed builder rather than hand-written YAML, so that nothing rudolph already knows is
typed twice: the Celery queues come from rudolph.vocabulary, the SQS attributes from
rudolph.provision, the S3 events from rudolph.routes, the table's shape from rudolph.store,
the metric from rudolph.metrics and the IAM policies from deploy/iam-*.json (their
placeholders become Fn::Sub variables). tests/test_deploy_aws.py checks that the committed
template is this script's output, lints it with cfn-lint, and deploys it into moto.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rudolph import capacity, metrics, provision, routes, store
from rudolph.settings import Settings
from rudolph.vocabulary import AGGREGATE_QUEUE, QUEUES
from rudolph.worker_command import celery_worker_argv

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
TEMPLATE = HERE / "rudolph.yaml"

#: Fargate's longest stopTimeout: SIGTERM starts Celery's warm shutdown, SIGKILL follows.
FARGATE_MAX_STOP_TIMEOUT = 120
LOG_RETENTION_DAYS = 30

_DEFAULTS = Settings.from_env({})  # the defaults, whatever this shell exports


def sub(text: str, **variables: Any) -> Json:
    """Fn::Sub, with a variable map only when one is given."""
    return {"Fn::Sub": [text, variables] if variables else text}


def ref(name: str) -> Json:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> Json:
    return {"Fn::GetAtt": [resource, attribute]}


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: Json
    depends_on: list[str] = field(default_factory=list)

    def as_json(self) -> Json:
        body: Json = {"Type": self.type}
        if self.depends_on:
            body["DependsOn"] = self.depends_on
        body["Properties"] = self.properties
        return body


@dataclass
class Template:
    description: str
    parameters: dict[str, Json] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, Json] = field(default_factory=dict)

    def parameter(self, name: str, kind: str, description: str, **extra: Any) -> Json:
        self.parameters[name] = {"Type": kind, "Description": description, **extra}
        return ref(name)

    def add(self, resource: Resource) -> Json:
        if resource.logical_id in self.resources:
            raise ValueError(f"two resources named {resource.logical_id}")
        self.resources[resource.logical_id] = resource
        return ref(resource.logical_id)

    def output(self, name: str, value: Any, description: str) -> None:
        self.outputs[name] = {"Description": description, "Value": value}

    def as_json(self) -> Json:
        return {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": self.description,
            "Parameters": self.parameters,
            "Resources": {k: r.as_json() for k, r in self.resources.items()},
            "Outputs": self.outputs,
        }


def logical(queue: str) -> str:
    """'labels' -> 'Labels' (logical ids are alphanumeric)."""
    return "".join(part.capitalize() for part in queue.replace("_", "-").split("-"))


def policy_document(name: str, variables: dict[str, Any]) -> Json:
    """deploy/iam-NAME.json with its ${Placeholders} as Fn::Sub variables."""
    document: Json = json.loads((DEPLOY / f"iam-{name}.json").read_text())

    def fill(value: str) -> Any:
        if "${" not in value:
            return value
        used = {k: v for k, v in variables.items() if "${" + k + "}" in value}
        return sub(value, **used)

    for statement in document["Statement"]:
        resources = statement["Resource"]
        statement["Resource"] = (
            fill(resources) if isinstance(resources, str) else [fill(r) for r in resources]
        )
    return document


def task_role(template: Template, logical_id: str, policies: list[str], variables: Json) -> Json:
    template.add(
        Resource(
            logical_id,
            "AWS::IAM::Role",
            {
                "Description": f"rudolph's {', '.join(policies)} task role (deploy/iam-*.json)",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}
                            },
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": f"rudolph-{name}",
                        "PolicyDocument": policy_document(name, variables),
                    }
                    for name in policies
                ],
            },
        )
    )
    return get_att(logical_id, "Arn")


def build() -> Template:
    t = Template(
        "rudolph: S3 images analysed by a Celery fleet on ECS Fargate into DynamoDB and "
        "OpenSearch, each worker service scaled on its own queue's depth "
        "(generated by deploy/aws/build.py: edit that, not this)"
    )
    image = t.parameter(
        "ContainerImage", "String", "The rudolph image (Dockerfile), e.g. an ECR URI"
    )
    vpc = t.parameter("VpcId", "AWS::EC2::VPC::Id", "The VPC of the fleet")
    subnets = t.parameter(
        "PrivateSubnetIds",
        "List<AWS::EC2::Subnet::Id>",
        "Two or more private subnets in different AZs (with a NAT or VPC endpoints)",
    )
    bucket_name = t.parameter(
        "BucketName", "String", "The drop-zone bucket (RUDOLPH_BUCKET)", Default=_DEFAULTS.bucket
    )
    queue_name = t.parameter(
        "QueueName",
        "String",
        "The S3 event queue (RUDOLPH_QUEUE_NAME); its dead letters go to QueueName-dlq",
        Default=_DEFAULTS.queue_name,
    )
    table_name = t.parameter(
        "TableName", "String", "The DynamoDB table (RUDOLPH_TABLE)", Default=_DEFAULTS.table
    )
    index_name = t.parameter(
        "IndexName", "String", "The OpenSearch index alias (RUDOLPH_INDEX)", Default=_DEFAULTS.index
    )
    domain_name = t.parameter(
        "DomainName",
        "String",
        "The OpenSearch Service domain",
        Default="rudolph",
        AllowedPattern="[a-z][a-z0-9-]{2,27}",
    )
    analyzer = t.parameter(
        "Analyzer",
        "String",
        "RUDOLPH_ANALYZER of the workers",
        Default="rekognition",
        AllowedValues=["rekognition", "local"],
    )
    flower_secret = t.parameter(
        "FlowerAuthSecretArn",
        "String",
        "ARN of a Secrets Manager secret whose value is Flower's user:password (never in here)",
        AllowedPattern="arn:aws[a-z-]*:secretsmanager:.+",
    )
    flower_cidr = t.parameter(
        "FlowerAllowedCidr",
        "String",
        "Who may reach Flower on port 5555 (a VPN or bastion range)",
        Default="10.0.0.0/8",
    )
    max_workers = t.parameter(
        "MaxTasksPerQueue", "Number", "Most worker tasks per queue", Default=10, MinValue=1
    )

    # -- events: S3 -> SQS, with a dead-letter queue and a policy that lets only the bucket send
    t.add(
        Resource(
            "DeadLetterQueue",
            "AWS::SQS::Queue",
            {
                "QueueName": sub("${QueueName}-dlq"),
                "MessageRetentionPeriod": provision.DLQ_RETENTION_SECONDS,
                "SqsManagedSseEnabled": True,
            },
        )
    )
    t.add(
        Resource(
            "EventQueue",
            "AWS::SQS::Queue",
            {
                "QueueName": queue_name,
                "VisibilityTimeout": provision.VISIBILITY_SECONDS,
                "MaximumMessageSize": provision.MAX_MESSAGE_BYTES,
                "ReceiveMessageWaitTimeSeconds": 20,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": get_att("DeadLetterQueue", "Arn"),
                    "maxReceiveCount": provision.MAX_RECEIVES,
                },
            },
        )
    )
    t.add(
        Resource(
            "EventQueuePolicy",
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [ref("EventQueue")],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "rudolph-s3-events",
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": get_att("EventQueue", "Arn"),
                            "Condition": {
                                "ArnLike": {
                                    "aws:SourceArn": sub("arn:${AWS::Partition}:s3:::${BucketName}")
                                },
                                "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
                            },
                        }
                    ],
                },
            },
        )
    )
    t.add(
        Resource(
            "Bucket",
            "AWS::S3::Bucket",
            {
                "BucketName": bucket_name,
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "NotificationConfiguration": {
                    "QueueConfigurations": [
                        {"Event": event, "Queue": get_att("EventQueue", "Arn")}
                        for event in routes.S3_EVENTS
                    ]
                },
            },
            # S3 checks that it may send to the queue when the notification is set.
            depends_on=["EventQueuePolicy"],
        )
    )

    # -- the record store: the same table `rudolph init` creates (rudolph/store.py)
    t.add(
        Resource(
            "Table",
            "AWS::DynamoDB::Table",
            {
                "TableName": table_name,
                "BillingMode": store.BILLING_MODE,
                "KeySchema": store.KEY_SCHEMA,
                "AttributeDefinitions": store.ATTRIBUTE_DEFINITIONS,
                "GlobalSecondaryIndexes": store.GLOBAL_INDEXES,
                "TimeToLiveSpecification": {
                    "Enabled": True,
                    "AttributeName": store.TTL_ATTRIBUTE,
                },
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
        )
    )

    # -- network: the tasks reach Redis and OpenSearch; people reach Flower from one range
    def security_group(logical_id: str, description: str, ingress: list[Json]) -> Json:
        properties: Json = {"GroupDescription": description, "VpcId": vpc}
        if ingress:
            properties["SecurityGroupIngress"] = ingress
        return t.add(Resource(logical_id, "AWS::EC2::SecurityGroup", properties))

    security_group("TasksSecurityGroup", "rudolph ECS tasks", [])

    def from_tasks(port: int) -> Json:
        return {
            "IpProtocol": "tcp",
            "FromPort": port,
            "ToPort": port,
            "SourceSecurityGroupId": get_att("TasksSecurityGroup", "GroupId"),
            "Description": "rudolph tasks",
        }

    security_group("BrokerSecurityGroup", "rudolph Redis broker", [from_tasks(6379)])
    security_group("SearchSecurityGroup", "rudolph OpenSearch domain", [from_tasks(443)])
    flower_sg = security_group(
        "FlowerSecurityGroup",
        "rudolph Flower (basic auth)",
        [
            {
                "IpProtocol": "tcp",
                "FromPort": 5555,
                "ToPort": 5555,
                "CidrIp": flower_cidr,
                "Description": "operators",
            }
        ],
    )

    # -- Celery's broker and result backend: ElastiCache Redis, TLS, never evicting tasks
    t.add(
        Resource(
            "BrokerSubnetGroup",
            "AWS::ElastiCache::SubnetGroup",
            {"Description": "rudolph Redis", "SubnetIds": subnets},
        )
    )
    t.add(
        Resource(
            "BrokerParameters",
            "AWS::ElastiCache::ParameterGroup",
            {
                "CacheParameterGroupFamily": "redis7",
                "Description": "A broker must not evict queued tasks",
                "Properties": {"maxmemory-policy": "noeviction"},
            },
        )
    )
    t.add(
        Resource(
            "Broker",
            "AWS::ElastiCache::ReplicationGroup",
            {
                "ReplicationGroupDescription": "rudolph Celery broker and results",
                "Engine": "redis",
                "EngineVersion": "7.1",
                "CacheNodeType": "cache.t4g.medium",
                "NumCacheClusters": 2,
                "AutomaticFailoverEnabled": True,
                "MultiAZEnabled": True,
                "TransitEncryptionEnabled": True,
                "AtRestEncryptionEnabled": True,
                "CacheSubnetGroupName": ref("BrokerSubnetGroup"),
                "CacheParameterGroupName": ref("BrokerParameters"),
                "SecurityGroupIds": [get_att("BrokerSecurityGroup", "GroupId")],
            },
        )
    )

    # -- the index: OpenSearch Service in the VPC; IAM (SigV4) decides who may do what
    t.add(
        Resource(
            "SearchDomain",
            "AWS::OpenSearchService::Domain",
            {
                "DomainName": domain_name,
                "EngineVersion": "OpenSearch_2.19",
                "ClusterConfig": {
                    "InstanceType": "r7g.large.search",
                    "InstanceCount": 2,
                    "ZoneAwarenessEnabled": True,
                    "ZoneAwarenessConfig": {"AvailabilityZoneCount": 2},
                },
                "EBSOptions": {"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": 50},
                "EncryptionAtRestOptions": {"Enabled": True},
                "NodeToNodeEncryptionOptions": {"Enabled": True},
                "DomainEndpointOptions": {
                    "EnforceHTTPS": True,
                    "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07",
                },
                "VPCOptions": {
                    "SubnetIds": [{"Fn::Select": [i, subnets]} for i in (0, 1)],
                    "SecurityGroupIds": [get_att("SearchSecurityGroup", "GroupId")],
                },
                # Open to the account; the roles' IAM policies (deploy/iam-*.json) decide.
                "AccessPolicies": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {
                                "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
                            },
                            "Action": "es:ESHttp*",
                            "Resource": sub(
                                "arn:${AWS::Partition}:es:${AWS::Region}:${AWS::AccountId}:domain/${DomainName}/*"
                            ),
                        }
                    ],
                },
            },
        )
    )

    # -- roles: the least-privilege policies of deploy/, filled in
    variables: Json = {
        "AccountId": ref("AWS::AccountId"),
        "Region": ref("AWS::Region"),
        "Bucket": bucket_name,
        "Queue": queue_name,
        "Table": ref("Table"),
        "Domain": domain_name,
        "Index": index_name,
    }
    listener_role = task_role(t, "ListenerRole", ["producer"], variables)
    worker_role = task_role(t, "WorkerRole", ["worker"], variables)
    metrics_role = task_role(t, "MetricsRole", ["metrics"], variables)
    t.add(
        Resource(
            "ExecutionRole",
            "AWS::IAM::Role",
            {
                "Description": "ECS pulls the image, writes logs, reads Flower's secret",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "ManagedPolicyArns": [
                    sub(
                        "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                        "AmazonECSTaskExecutionRolePolicy"
                    )
                ],
                "Policies": [
                    {
                        "PolicyName": "rudolph-flower-secret",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "ReadFlowerLogin",
                                    "Effect": "Allow",
                                    "Action": "secretsmanager:GetSecretValue",
                                    "Resource": flower_secret,
                                }
                            ],
                        },
                    }
                ],
            },
        )
    )

    # -- ECS: one cluster, one log group, a task definition and a service per role
    t.add(
        Resource(
            "Cluster",
            "AWS::ECS::Cluster",
            {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
        )
    )
    t.add(
        Resource(
            "Logs",
            "AWS::Logs::LogGroup",
            {
                "LogGroupName": sub("/rudolph/${AWS::StackName}"),
                "RetentionInDays": LOG_RETENTION_DAYS,
            },
        )
    )
    redis_host = {
        "Host": get_att("Broker", "PrimaryEndPoint.Address"),
        "Port": get_att("Broker", "PrimaryEndPoint.Port"),
    }
    environment: list[Json] = [
        {"Name": "AWS_REGION", "Value": ref("AWS::Region")},
        {"Name": "RUDOLPH_BUCKET", "Value": bucket_name},
        {"Name": "RUDOLPH_QUEUE_NAME", "Value": queue_name},
        {"Name": "RUDOLPH_TABLE", "Value": ref("Table")},
        {"Name": "RUDOLPH_INDEX", "Value": index_name},
        {
            "Name": "RUDOLPH_OPENSEARCH_URL",
            "Value": sub("https://${Endpoint}", Endpoint=get_att("SearchDomain", "DomainEndpoint")),
        },
        {"Name": "RUDOLPH_OPENSEARCH_AUTH", "Value": "sigv4"},
        {"Name": "RUDOLPH_ANALYZER", "Value": analyzer},
        {"Name": "RUDOLPH_LOG_FORMAT", "Value": "json"},
        # TLS to ElastiCache; no password: only the tasks' security group reaches it.
        {
            "Name": "CELERY_BROKER_URL",
            "Value": sub("rediss://${Host}:${Port}/0?ssl_cert_reqs=required", **redis_host),
        },
        {
            "Name": "CELERY_RESULT_BACKEND",
            "Value": sub("rediss://${Host}:${Port}/1?ssl_cert_reqs=required", **redis_host),
        },
    ]

    def service(
        name: str,
        command: list[Any],
        cpu: int,
        memory: int,
        role: Json | None,
        desired: int = 1,
        groups: tuple[Json, ...] = (),
        extra: Json | None = None,
        stop_timeout: int = 30,
    ) -> str:
        """A Fargate task definition and its service; the service's logical id."""
        key = logical(name)
        container: Json = {
            "Name": name,
            "Image": image,
            "Command": command,
            "Essential": True,
            "Environment": environment,
            "StopTimeout": stop_timeout,
            "LogConfiguration": {
                "LogDriver": "awslogs",
                "Options": {
                    "awslogs-group": ref("Logs"),
                    "awslogs-region": ref("AWS::Region"),
                    "awslogs-stream-prefix": name,
                },
            },
            **(extra or {}),
        }
        definition: Json = {
            "Family": sub("${AWS::StackName}-" + name),
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "Cpu": str(cpu),
            "Memory": str(memory),
            "RuntimePlatform": {"OperatingSystemFamily": "LINUX", "CpuArchitecture": "X86_64"},
            "ExecutionRoleArn": get_att("ExecutionRole", "Arn"),
            "ContainerDefinitions": [container],
        }
        if role is not None:
            definition["TaskRoleArn"] = role
        t.add(Resource(f"{key}Task", "AWS::ECS::TaskDefinition", definition))
        t.add(
            Resource(
                f"{key}Service",
                "AWS::ECS::Service",
                {
                    "ServiceName": sub("${AWS::StackName}-" + name),
                    "Cluster": ref("Cluster"),
                    "LaunchType": "FARGATE",
                    "TaskDefinition": ref(f"{key}Task"),
                    "DesiredCount": desired,
                    "DeploymentConfiguration": {
                        "MinimumHealthyPercent": 100,
                        "MaximumPercent": 200,
                        "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                    },
                    "NetworkConfiguration": {
                        "AwsvpcConfiguration": {
                            "AssignPublicIp": "DISABLED",
                            "Subnets": subnets,
                            "SecurityGroups": [get_att("TasksSecurityGroup", "GroupId")]
                            + [get_att(g["Ref"], "GroupId") for g in groups],
                        }
                    },
                },
            )
        )
        return f"{key}Service"

    service("listener", ["rudolph", "listen"], 256, 512, listener_role)
    service(
        "metrics",
        ["rudolph", "metrics", "publish", "--interval", "60", "--fleet", ref("AWS::StackName")],
        256,
        512,
        metrics_role,
    )
    service(
        "flower",
        ["celery", "-A", "workers", "flower", "--port=5555"],
        256,
        512,
        None,
        groups=(flower_sg,),
        extra={
            "PortMappings": [{"ContainerPort": 5555, "Protocol": "tcp"}],
            # Flower reads FLOWER_BASIC_AUTH (user:password) from its environment.
            "Secrets": [{"Name": "FLOWER_BASIC_AUTH", "ValueFrom": flower_secret}],
        },
    )

    for queue in QUEUES:
        feature = queue != AGGREGATE_QUEUE
        name = f"worker-{queue}"
        key = logical(name)
        service_id = service(
            name,
            celery_worker_argv([queue], concurrency=2, name=queue),
            1024 if feature else 512,
            # Two pool processes of ~320-400 MB RSS each, plus the decode budget of one image.
            2048 if feature else 1024,
            worker_role,
            extra={"Environment": [*environment, {"Name": "RUDOLPH_THREADS", "Value": "1"}]},
            stop_timeout=FARGATE_MAX_STOP_TIMEOUT,
        )
        scale_on_queue_depth(t, key, service_id, queue, name, max_workers)

    t.output("BucketName", ref("Bucket"), "RUDOLPH_BUCKET")
    t.output("QueueName", get_att("EventQueue", "QueueName"), "RUDOLPH_QUEUE_NAME")
    t.output("DeadLetterQueueName", get_att("DeadLetterQueue", "QueueName"), "its dead letters")
    t.output("TableName", ref("Table"), "RUDOLPH_TABLE")
    t.output(
        "OpenSearchUrl",
        sub("https://${Endpoint}", Endpoint=get_att("SearchDomain", "DomainEndpoint")),
        "RUDOLPH_OPENSEARCH_URL (with RUDOLPH_OPENSEARCH_AUTH=sigv4)",
    )
    t.output(
        "BrokerUrl",
        sub("rediss://${Host}:${Port}/0?ssl_cert_reqs=required", **redis_host),
        "CELERY_BROKER_URL (reachable from the tasks' security group only)",
    )
    t.output("ClusterName", ref("Cluster"), "The ECS cluster")
    return t


def scale_on_queue_depth(
    t: Template,
    key: str,
    service_id: str,
    queue: str,
    name: str,
    max_workers: Json,
) -> None:
    """Step scaling of one worker service on its queue's QueueDepth metric (published by
    `rudolph metrics publish`): out when a minute of one task's work waits, in after 15 quiet
    minutes. Missing data (publisher down) scales neither way. One task is one vCPU, so a
    minute of its work is rudolph.capacity's backlog per worker."""
    backlog = capacity.backlog_per_worker(queue)
    t.add(
        Resource(
            f"{key}Scaling",
            "AWS::ApplicationAutoScaling::ScalableTarget",
            {
                "ServiceNamespace": "ecs",
                "ScalableDimension": "ecs:service:DesiredCount",
                "ResourceId": sub(
                    "service/${Cluster}/${AWS::StackName}-" + name, Cluster=ref("Cluster")
                ),
                "MinCapacity": 1,
                "MaxCapacity": max_workers,
            },
            depends_on=[service_id],
        )
    )

    def policy(direction: str, cooldown: int, steps: list[Json]) -> None:
        t.add(
            Resource(
                f"{key}Scale{direction}",
                "AWS::ApplicationAutoScaling::ScalingPolicy",
                {
                    "PolicyName": sub("${AWS::StackName}-" + f"{name}-scale-{direction.lower()}"),
                    "PolicyType": "StepScaling",
                    "ScalingTargetId": ref(f"{key}Scaling"),
                    "StepScalingPolicyConfiguration": {
                        "AdjustmentType": "ChangeInCapacity",
                        "Cooldown": cooldown,
                        "MetricAggregationType": "Maximum",
                        "StepAdjustments": steps,
                    },
                },
            )
        )

    # Bounds are relative to the alarm's threshold (one backlog).
    policy(
        "Out",
        60,
        [
            {
                "MetricIntervalLowerBound": 0,
                "MetricIntervalUpperBound": 9 * backlog,
                "ScalingAdjustment": 1,
            },
            {
                "MetricIntervalLowerBound": 9 * backlog,
                "MetricIntervalUpperBound": 99 * backlog,
                "ScalingAdjustment": 3,
            },
            {"MetricIntervalLowerBound": 99 * backlog, "ScalingAdjustment": 10},
        ],
    )
    policy("In", 300, [{"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1}])

    def alarm(direction: str, comparison: str, threshold: int, periods: int, what: str) -> None:
        t.add(
            Resource(
                f"{key}Queue{direction}Alarm",
                "AWS::CloudWatch::Alarm",
                {
                    "AlarmDescription": f"{queue} queue {what}",
                    "Namespace": metrics.NAMESPACE,
                    "MetricName": metrics.METRIC,
                    "Dimensions": [
                        {"Name": metrics.FLEET_DIMENSION, "Value": ref("AWS::StackName")},
                        {"Name": metrics.QUEUE_DIMENSION, "Value": queue},
                    ],
                    "Statistic": "Maximum",
                    "Period": 60,
                    "EvaluationPeriods": periods,
                    "DatapointsToAlarm": periods,
                    "Threshold": threshold,
                    "ComparisonOperator": comparison,
                    "TreatMissingData": "notBreaching",
                    "AlarmActions": [ref(f"{key}Scale{direction}")],
                },
            )
        )

    alarm("Out", "GreaterThanOrEqualToThreshold", backlog, 2, f"holds {backlog}+ tasks")
    alarm("In", "LessThanOrEqualToThreshold", 0, 15, "empty for 15 minutes")


class _NoAliases(yaml.SafeDumper):  # type: ignore[misc]  # yaml ships no types
    """CloudFormation refuses YAML anchors and aliases: write every shared value in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    body = str(
        yaml.dump(
            build().as_json(),
            Dumper=_NoAliases,
            sort_keys=False,
            width=100,
            default_flow_style=False,
        )
    )
    return "# Generated by deploy/aws/build.py: edit that, then run it.\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when rudolph.yaml is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if TEMPLATE.read_text() != text:
            print(f"{TEMPLATE} is stale: run deploy/aws/build.py", file=sys.stderr)
            return 1
        return 0
    TEMPLATE.write_text(text)
    print(f"wrote {TEMPLATE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
