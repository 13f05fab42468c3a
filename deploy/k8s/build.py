"""Write deploy/k8s/: a kustomize base and the `eks` overlay of the rudolph fleet.

    .venv/bin/python deploy/k8s/build.py            # rewrite the manifests
    .venv/bin/python deploy/k8s/build.py --check    # exit 1 when a manifest is stale

Generated, like deploy/aws/rudolph.yaml, so that nothing is typed twice: one worker
Deployment, PodDisruptionBudget and KEDA ScaledObject per Celery queue of
rudolph.vocabulary.QUEUES, memory from the measured RSS (rudolph.capacity) and the decode
budget, scaling thresholds from rudolph.capacity, the grace period from celeryconfig's hard
time limit. tests/test_deploy_k8s.py renders the kustomizations and validates every object
offline (Kubernetes API schemas, KEDA's models).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import yaml

import celeryconfig
from rudolph import capacity
from rudolph.settings import DECODE_BUDGET_MB
from rudolph.vocabulary import AGGREGATE_QUEUE, QUEUES
from rudolph.worker_command import celery_worker_argv

Json = dict[str, Any]

HERE = Path(__file__).resolve().parent
IMAGE = "rudolph"  # replaced by the overlay's `images:`
PART_OF = {"app.kubernetes.io/part-of": "rudolph"}
#: SIGTERM starts Celery's warm shutdown (finish the task in hand, take no other); the pod is
#: killed after this many seconds, longer than any task may run (the hard time limit).
WORKER_GRACE_SECONDS = int(celeryconfig.task_time_limit) + 30
#: The listener finishes the batch in hand (a 20 s long poll, then enqueueing).
LISTENER_GRACE_SECONDS = 60
MAX_REPLICAS = 20
#: Secrets the manifests name but never hold (README: how to create them).
REDIS_SECRET = "rudolph-redis"
FLOWER_SECRET = "rudolph-flower"
CONFIG = "rudolph-config"
UID = 10001  # the Dockerfile's user


def mebibytes(mb: float) -> str:
    """Round up to a multiple of 64 Mi."""
    return f"{math.ceil(mb / 64) * 64}Mi"


def worker_resources(queue: str) -> Json:
    """One worker process on one core. A feature's memory: its measured RSS (high end) plus
    room to grow as the request; plus one image's decode budget as the limit."""
    if queue == AGGREGATE_QUEUE:
        return {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    high = capacity.MEASURED[queue].rss_mb[1]  # type: ignore[index]
    return {
        "requests": {"cpu": "1", "memory": mebibytes(high + 64)},
        "limits": {"memory": mebibytes(high + DECODE_BUDGET_MB + 128)},
    }


def labels(name: str) -> Json:
    return {"app.kubernetes.io/name": name, **PART_OF}


def env_from_secrets() -> list[Json]:
    def secret(variable: str, key: str) -> Json:
        return {
            "name": variable,
            "valueFrom": {"secretKeyRef": {"name": REDIS_SECRET, "key": key}},
        }

    return [
        secret("CELERY_BROKER_URL", "broker-url"),
        secret("CELERY_RESULT_BACKEND", "result-backend"),
    ]


def container(name: str, command: list[str], resources: Json, extra: Json | None = None) -> Json:
    return {
        "name": name,
        "image": IMAGE,
        "command": command,
        "envFrom": [{"configMapRef": {"name": CONFIG}}],
        "env": env_from_secrets(),
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **(extra or {}),
    }


def pod(name: str, account: str, main: Json, grace: int, automount: bool = True) -> Json:
    spec: Json = {
        "serviceAccountName": account,
        "automountServiceAccountToken": automount,
        "terminationGracePeriodSeconds": grace,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [main],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
            }
        ],
    }
    return {"metadata": {"labels": labels(name)}, "spec": spec}


def deployment(name: str, template: Json, replicas: int | None) -> Json:
    spec: Json = {
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "template": template,
    }
    if replicas is not None:  # workers: KEDA's HPA owns the count
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": spec,
    }


def disruption_budget(name: str, **rule: Any) -> Json:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {**rule, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
    }


def redis_trigger(queue: str, tls: bool) -> Json:
    return {
        "type": "redis",
        "metadata": {
            # kombu's list for priority 0, the only one rudolph publishes to (README).
            "listName": queue,
            "listLength": str(capacity.backlog_per_worker(queue)),
            "databaseIndex": "0",
            "enableTLS": "true" if tls else "false",
        },
        "authenticationRef": {"name": REDIS_SECRET},
    }


def scaled_object(queue: str, tls: bool = False) -> Json:
    name = f"worker-{queue}"
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": 1,
            "maxReplicaCount": MAX_REPLICAS,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}
                }
            },
            "triggers": [redis_trigger(queue, tls)],
        },
    }


def worker(queue: str) -> list[Json]:
    name = f"worker-{queue}"
    concurrency = 4 if queue == AGGREGATE_QUEUE else 1
    main = container(
        "worker",
        celery_worker_argv([queue], concurrency=concurrency, name=queue),
        worker_resources(queue),
    )
    return [
        deployment(name, pod(name, "rudolph-worker", main, WORKER_GRACE_SECONDS), None),
        disruption_budget(name, maxUnavailable=1),
        scaled_object(queue),
    ]


def base() -> dict[str, list[Json]]:
    files: dict[str, list[Json]] = {}
    files["config.yaml"] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG, "labels": dict(PART_OF)},
            "data": {
                "AWS_REGION": "us-east-1",
                "RUDOLPH_BUCKET": "reindeer-dropzone",
                "RUDOLPH_QUEUE_NAME": "rudolph-events",
                "RUDOLPH_TABLE": "rudolph-images",
                "RUDOLPH_INDEX": "rudolph-images",
                "RUDOLPH_OPENSEARCH_URL": "http://opensearch:9200",
                "RUDOLPH_OPENSEARCH_AUTH": "none",
                "RUDOLPH_ANALYZER": "local",
                "RUDOLPH_LOG_FORMAT": "json",
                # One onnxruntime thread per worker process: one process per core.
                "RUDOLPH_THREADS": "1",
            },
        }
    ]
    files["serviceaccounts.yaml"] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": f"rudolph-{role}", "labels": dict(PART_OF)},
        }
        for role in ("listener", "worker", "flower")
    ]
    files["keda-auth.yaml"] = [
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": REDIS_SECRET, "labels": dict(PART_OF)},
            "spec": {
                "secretTargetRef": [
                    {"parameter": "address", "name": REDIS_SECRET, "key": "address"},
                    {"parameter": "password", "name": REDIS_SECRET, "key": "password"},
                ]
            },
        }
    ]
    listener = container(
        "listener",
        ["rudolph", "listen"],
        {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    )
    files["listener.yaml"] = [
        deployment(
            "listener", pod("listener", "rudolph-listener", listener, LISTENER_GRACE_SECONDS), 2
        ),
        disruption_budget("listener", minAvailable=1),
    ]
    flower = container(
        "flower",
        ["celery", "-A", "workers", "flower", "--port=5555"],
        {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        {
            "ports": [{"name": "http", "containerPort": 5555}],
            # /healthcheck answers without the login (README): the probe needs no secret.
            "readinessProbe": {"httpGet": {"path": "/healthcheck", "port": "http"}},
        },
    )
    flower["env"] = [
        *flower["env"],
        {
            "name": "FLOWER_BASIC_AUTH",
            "valueFrom": {"secretKeyRef": {"name": FLOWER_SECRET, "key": "basic-auth"}},
        },
    ]
    files["flower.yaml"] = [
        deployment("flower", pod("flower", "rudolph-flower", flower, 30, automount=False), 1),
        disruption_budget("flower", maxUnavailable=1),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "flower", "labels": labels("flower")},
            "spec": {
                "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": "flower"},
                "ports": [{"name": "http", "port": 5555, "targetPort": "http"}],
            },
        },
    ]
    for queue in QUEUES:
        files[f"worker-{queue}.yaml"] = worker(queue)
    files["kustomization.yaml"] = [
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(f for f in files if f != "kustomization.yaml"),
        }
    ]
    return files


def eks() -> dict[str, list[Json]]:
    """EKS with IRSA roles (deploy/iam-*.json), Rekognition, OpenSearch Service with SigV4,
    ElastiCache with TLS."""
    files: dict[str, list[Json]] = {
        "namespace.yaml": [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "rudolph", "labels": dict(PART_OF)},
            }
        ],
        "config-patch.yaml": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CONFIG},
                "data": {
                    "AWS_REGION": "eu-west-1",
                    "RUDOLPH_ANALYZER": "rekognition",
                    "RUDOLPH_OPENSEARCH_AUTH": "sigv4",
                    "RUDOLPH_OPENSEARCH_URL": "https://vpc-rudolph-example.eu-west-1.es.amazonaws.com",
                },
            }
        ],
    }
    roles = {"listener": "producer", "worker": "worker", "flower": None}
    for account, policy in roles.items():
        if policy is None:
            continue  # Flower calls no AWS API
        files[f"serviceaccount-{account}-patch.yaml"] = [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": f"rudolph-{account}",
                    "annotations": {
                        # The role holding deploy/iam-{policy}.json, trusting this account.
                        "eks.amazonaws.com/role-arn": (
                            f"arn:aws:iam::123456789012:role/rudolph-{policy}"
                        )
                    },
                },
            }
        ]
    for queue in QUEUES:
        tls = scaled_object(queue, tls=True)
        files[f"scaledobject-{queue}-patch.yaml"] = [
            {
                "apiVersion": tls["apiVersion"],
                "kind": tls["kind"],
                "metadata": {"name": tls["metadata"]["name"]},
                "spec": {"triggers": tls["spec"]["triggers"]},
            }
        ]
    patches = sorted(f for f in files if f.endswith("-patch.yaml"))
    files["kustomization.yaml"] = [
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": "rudolph",
            "resources": ["../../base", "namespace.yaml"],
            "images": [
                {
                    "name": IMAGE,
                    "newName": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/rudolph",
                    "newTag": "0.1.0",
                }
            ],
            "patches": [{"path": p} for p in patches],
        }
    ]
    return files


class _NoAliases(yaml.SafeDumper):  # type: ignore[misc]  # yaml ships no types
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(documents: list[Json]) -> str:
    text = "# Generated by deploy/k8s/build.py: edit that, then run it.\n"
    dumped = [str(yaml.dump(d, Dumper=_NoAliases, sort_keys=False, width=100)) for d in documents]
    return text + "---\n".join(dumped)


def tree() -> dict[Path, str]:
    """Every generated file and its text."""
    out: dict[Path, str] = {}
    for folder, files in (("base", base()), ("overlays/eks", eks())):
        for name, documents in files.items():
            out[HERE / folder / name] = render(documents)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write deploy/k8s/ from rudolph's vocabulary")
    parser.add_argument("--check", action="store_true", help="exit 1 when a manifest is stale")
    args = parser.parse_args(argv)
    stale = [p for p, text in tree().items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path} is stale: run deploy/k8s/build.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in tree().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(tree())} files under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
