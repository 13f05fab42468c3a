"""deploy/k8s: the builder's output; the base and the eks overlay rendered (tests/kustomize.py)
and every object validated offline: Kubernetes objects against the API's JSON schemas
(kubernetes-validate, strict: unknown fields are errors), KEDA's against its CRD models
(cloudcoil-models-keda), with a round trip so that a misspelt field is an error too."""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import ValidationError as KubernetesValidationError
from pydantic import ValidationError as PydanticValidationError

import celeryconfig
from rudolph import capacity
from rudolph.operations import priority_keys
from rudolph.vocabulary import FEATURES, QUEUES
from tests.kustomize import KustomizeError, render

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
#: The Kubernetes versions the manifests are checked against (EKS's oldest standard-support
#: release at the time, and the newest kubernetes-validate knows).
VERSIONS = ("1.31", "1.37")
OVERLAYS = ("base", "overlays/eks")

Json = dict[str, Any]


@cache
def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rudolph_k8s_build", K8S / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def rendered(folder: str) -> tuple[Json, ...]:
    return tuple(render(K8S / folder))


def by(objects: tuple[Json, ...] | list[Json], kind: str) -> dict[str, Json]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def keda_validate(obj: Json) -> None:
    """KEDA's CRD model accepts the object, and drops nothing of it (no unknown field)."""
    from cloudcoil.models.keda import v1alpha1

    model = getattr(v1alpha1, obj["kind"])
    parsed = model.model_validate(obj)
    again = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert again == obj, f"{obj['kind']}/{obj['metadata']['name']}: fields KEDA does not know"


def validate(obj: Json, version: str) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        keda_validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


# -- generated, rendered, valid --------------------------------------------------------------


def test_the_manifests_are_the_builders_output() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in builder().tree().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run .venv/bin/python deploy/k8s/build.py: {stale}"
    on_disk = {p for p in K8S.rglob("*.yaml")}
    assert on_disk == set(builder().tree()), "a manifest the builder does not write"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("folder", OVERLAYS)
def test_every_object_is_valid(folder: str, version: str) -> None:
    objects = rendered(folder)
    assert objects
    for obj in objects:
        validate(obj, version)


def test_a_broken_manifest_fails_validation() -> None:
    """The validation can fail: a misspelt field, a wrong type, in either kind of object."""
    objects = by(rendered("base"), "Deployment")
    broken = copy.deepcopy(objects["worker-text"])
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 180
    with pytest.raises(KubernetesValidationError):
        validate(broken, VERSIONS[0])
    broken = copy.deepcopy(objects["worker-text"])
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = [1]
    with pytest.raises(KubernetesValidationError):
        validate(broken, VERSIONS[0])
    scaled = by(rendered("base"), "ScaledObject")["worker-text"]
    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["maxReplicas"] = misspelt["spec"].pop("maxReplicaCount")
    with pytest.raises(AssertionError, match="fields KEDA does not know"):
        validate(misspelt, VERSIONS[0])
    wrong = copy.deepcopy(scaled)
    wrong["spec"]["minReplicaCount"] = "one"
    with pytest.raises(PydanticValidationError):
        validate(wrong, VERSIONS[0])


def test_the_renderer_refuses_what_it_does_not_do(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(KustomizeError, match="configMapGenerator"):
        render(tmp_path)


# -- what the manifests say -------------------------------------------------------------------


@pytest.mark.parametrize("folder", OVERLAYS)
def test_a_worker_deployment_budget_and_scaler_per_queue(folder: str) -> None:
    objects = rendered(folder)
    deployments, budgets = by(objects, "Deployment"), by(objects, "PodDisruptionBudget")
    scalers = by(objects, "ScaledObject")
    workers = {n for n in deployments if n.startswith("worker-")}
    assert workers == {f"worker-{q}" for q in QUEUES}
    for queue in QUEUES:
        name = f"worker-{queue}"
        spec = deployments[name]["spec"]
        assert "replicas" not in spec, "KEDA's HPA owns the replica count"
        command = spec["template"]["spec"]["containers"][0]["command"]
        assert command[:4] == ["celery", "-A", "workers", "worker"]
        assert command[command.index("-Q") + 1] == queue
        assert budgets[name]["spec"]["maxUnavailable"] == 1
        assert budgets[name]["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
        scaler = scalers[name]["spec"]
        assert scaler["scaleTargetRef"] == {"name": name}
        (trigger,) = scaler["triggers"]
        assert trigger["type"] == "redis"
        # kombu's priority-0 list: the only one rudolph publishes to (see the next test).
        assert trigger["metadata"]["listName"] == priority_keys(queue)[0]
        assert trigger["metadata"]["listLength"] == str(capacity.backlog_per_worker(queue))
        assert trigger["authenticationRef"] == {"name": "rudolph-redis"}
    (auth,) = by(objects, "TriggerAuthentication").values()
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"address", "password"}


def test_rudolph_publishes_no_priorities() -> None:
    """The scalers watch only each queue's priority-0 list; that holds while nothing sets a
    priority. If something ever does, the README says what to change."""
    assert not [name for name in vars(celeryconfig) if "priority" in name.lower()]
    for folder in ("producer", "workers", "rudolph"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not re.search(r"\bpriority\s*=", path.read_text()), path


def test_warm_shutdown_outlasts_the_longest_task() -> None:
    for queue in QUEUES:
        pod = by(rendered("base"), "Deployment")[f"worker-{queue}"]["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > celeryconfig.task_time_limit
        # celery is the container's process (exec form), so SIGTERM reaches it: warm shutdown.
        assert pod["containers"][0]["command"][0] == "celery"


def test_memory_from_the_measured_rss() -> None:
    deployments = by(rendered("base"), "Deployment")
    for feature in FEATURES:
        resources = deployments[f"worker-{feature}"]["spec"]["template"]["spec"]["containers"][0][
            "resources"
        ]
        high = capacity.MEASURED[feature].rss_mb[1]
        request = int(resources["requests"]["memory"].removesuffix("Mi"))
        limit = int(resources["limits"]["memory"].removesuffix("Mi"))
        assert high < request < limit
        assert resources["requests"]["cpu"] == "1"
        command = deployments[f"worker-{feature}"]["spec"]["template"]["spec"]["containers"][0][
            "command"
        ]
        assert "--concurrency=1" in command, "one process per requested core"


@pytest.mark.parametrize("folder", OVERLAYS)
def test_no_credential_in_the_manifests(folder: str) -> None:
    objects = rendered(folder)
    assert not by(objects, "Secret"), "secrets are created beside the manifests, by name"
    text = "".join(p.read_text() for p in (K8S / folder).glob("*.yaml"))
    assert not re.search(r"(?i)password\s*:|redis://[^ ]*@|AKIA[0-9A-Z]{16}", text)
    for obj in objects:
        for container in (
            obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            for env in container.get("env", []):
                assert "value" not in env or "://" not in env["value"], env
                if "valueFrom" in env:
                    secret = env["valueFrom"]["secretKeyRef"]["name"]
                    assert secret in {"rudolph-redis", "rudolph-flower"}


def test_the_eks_overlay() -> None:
    objects = rendered("overlays/eks")
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "rudolph", obj["metadata"]["name"]
    for deployment in by(objects, "Deployment").values():
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/rudolph:0.1.0"
    for scaler in by(objects, "ScaledObject").values():
        assert scaler["spec"]["triggers"][0]["metadata"]["enableTLS"] == "true"
        assert scaler["spec"]["minReplicaCount"] == 1  # the rest of the base is kept
    accounts = by(objects, "ServiceAccount")
    assert accounts["rudolph-worker"]["metadata"]["annotations"][
        "eks.amazonaws.com/role-arn"
    ].endswith(":role/rudolph-worker")
    assert "annotations" not in accounts["rudolph-flower"]["metadata"]
    config = by(objects, "ConfigMap")["rudolph-config"]["data"]
    assert config["RUDOLPH_OPENSEARCH_AUTH"] == "sigv4"
    assert config["RUDOLPH_ANALYZER"] == "rekognition"
    assert config["RUDOLPH_TABLE"] == "rudolph-images"  # merged, not replaced
