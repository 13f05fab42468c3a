"""docker-compose.yml validated by Debian's `docker-compose config` (no Docker engine needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rudolph.vocabulary import QUEUES
from rudolph.worker_command import celery_worker_argv

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
PROJECT_NAME = "rudolph-compose-test"
# A value no one would use as a real login: it proves the resolved one comes from the env.
FLOWER_LOGIN = "compose-test:not-a-real-password"

WORKERS = {f"worker-{queue}": queue for queue in QUEUES}
SERVICES = {"redis", "aws", "opensearch", "dashboards", "init", "producer", "flower", *WORKERS}
RUDOLPH_SERVICES = {"init", "producer", "flower", *WORKERS}
RUDOLPH_ENV = {
    "CELERY_BROKER_URL": "redis://redis:6379/0",
    "CELERY_RESULT_BACKEND": "redis://redis:6379/1",
    "RUDOLPH_AWS_ENDPOINT_URL": "http://aws:5000",
    "AWS_REGION": "us-east-1",
    "RUDOLPH_OPENSEARCH_URL": "http://opensearch:9200",
    "RUDOLPH_ANALYZER": "local",
}


def _binary() -> str:
    found = shutil.which("docker-compose") or (
        "/usr/bin/docker-compose" if Path("/usr/bin/docker-compose").exists() else None
    )
    if found is None:
        pytest.skip(
            "docker-compose is not installed (Debian package `docker-compose`; "
            "`make setup` installs it)"
        )
    return found


def compose(
    tmp_path: Path, *args: str, flower_login: str | None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose -p PROJECT -f docker-compose.yml ARGS`, from a foreign cwd, clean env."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COMPOSE_", "FLOWER_", "RUDOLPH_", "DOCKER_"))
    }
    if flower_login is not None:
        env["FLOWER_BASIC_AUTH"] = flower_login
    env_file = tmp_path / "empty.env"  # not the repo's .env, whatever a developer keeps there
    env_file.write_text("")
    command = [_binary(), "--env-file", str(env_file), "-p", PROJECT_NAME]
    command += ["-f", str(COMPOSE_FILE), *args]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The resolved configuration (anchors merged, variables interpolated)."""
    result = compose(tmp_path_factory.mktemp("compose"), "config", flower_login=FLOWER_LOGIN)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _host_ips(ports: list[Any]) -> list[str | None]:
    """The host address of each published port, in short ("ip:host:container") or long form."""
    ips: list[str | None] = []
    for port in ports:
        if isinstance(port, dict):
            ips.append(port.get("host_ip"))
        else:
            parts = str(port).split("/")[0].split(":")
            ips.append(parts[0] if len(parts) == 3 else None)
    return ips


def _option(command: list[str], *names: str) -> list[str]:
    """Every value given to one of ``names`` (as ``-Q x``, ``-Qx`` or ``--queues=x``)."""
    values = []
    for i, arg in enumerate(command):
        for name in names:
            if arg == name and i + 1 < len(command):
                values.append(command[i + 1])
            elif name.startswith("--") and arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
            elif not name.startswith("--") and arg.startswith(name) and arg != name:
                values.append(arg[len(name) :])
    return values


def test_config_is_valid_with_a_flower_login(tmp_path: Path) -> None:
    result = compose(tmp_path, "config", "-q", flower_login=FLOWER_LOGIN)
    assert result.returncode == 0, result.stderr


def test_config_refuses_to_run_without_a_flower_login(tmp_path: Path) -> None:
    result = compose(tmp_path, "config", "-q", flower_login=None)
    assert result.returncode != 0
    assert "set FLOWER_BASIC_AUTH" in result.stderr + result.stdout


def test_the_file_uses_the_compose_spec() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "version" not in raw
    assert "x-rudolph" in raw


def test_services(config: dict[str, Any]) -> None:
    assert set(config["services"]) == SERVICES


def test_each_worker_consumes_exactly_its_queue(config: dict[str, Any]) -> None:
    for name, queue in WORKERS.items():
        service = config["services"][name]
        command = service["command"]
        assert _option(command, "-Q", "--queues") == [queue], name
        assert "-E" in command, f"{name}: Flower needs task events"
        # The command line of every other worker of the fleet, written out by hand in YAML.
        assert command == celery_worker_argv([queue], concurrency=2, name=queue), name
        assert service["environment"]["RUDOLPH_THREADS"] == "1", name
        assert service["restart"] == "unless-stopped", name
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
        # `--scale worker-x=N` needs replicas without fixed names or host ports.
        assert "container_name" not in service, name
        assert not service.get("ports"), name


def test_rudolph_services_share_image_and_settings(config: dict[str, Any]) -> None:
    images = {config["services"][name]["image"] for name in RUDOLPH_SERVICES}
    assert len(images) == 1
    for name in RUDOLPH_SERVICES:
        service = config["services"][name]
        assert "build" in service, name
        environment = service["environment"]
        for variable, value in RUDOLPH_ENV.items():
            assert environment.get(variable) == value, f"{name}: {variable}"
    assert config["services"]["init"]["command"] == ["rudolph", "init"]
    assert config["services"]["producer"]["command"] == ["rudolph", "listen"]


def test_startup_order(config: dict[str, Any]) -> None:
    services = config["services"]
    init_deps = services["init"]["depends_on"]
    assert init_deps["aws"]["condition"] == "service_healthy"
    assert init_deps["opensearch"]["condition"] == "service_healthy"
    assert services["producer"]["depends_on"]["init"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("redis", "aws", "opensearch"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert _option(services["redis"]["command"], "--appendonly") == ["yes"]


def test_every_published_port_binds_localhost(config: dict[str, Any]) -> None:
    published = {}
    for name, service in config["services"].items():
        ips = _host_ips(service.get("ports", []))
        assert all(ip == "127.0.0.1" for ip in ips), f"{name} publishes {service['ports']}"
        if ips:
            published[name] = service["ports"]
    assert {"flower", "dashboards", "opensearch", "aws"} <= set(published)


def test_flower_login_comes_only_from_the_environment(tmp_path: Path) -> None:
    result = compose(tmp_path, "config", "--no-interpolate", flower_login=None)
    assert result.returncode == 0, result.stderr
    flower = yaml.safe_load(result.stdout)["services"]["flower"]
    assert _option(flower["command"], "--basic-auth") == [
        "${FLOWER_BASIC_AUTH:?set FLOWER_BASIC_AUTH=user:password}"
    ]
    assert "FLOWER_BASIC_AUTH" not in flower.get("environment", {})
    text = COMPOSE_FILE.read_text()
    assert "FLOWER_BASIC_AUTH:-" not in text and "FLOWER_BASIC_AUTH-" not in text


def test_flower_gets_the_login_given(config: dict[str, Any]) -> None:
    flower = config["services"]["flower"]
    assert flower["command"][:4] == ["celery", "-A", "workers", "flower"]
    assert _option(flower["command"], "--basic-auth") == [FLOWER_LOGIN]


def test_compose_runs_the_opensearch_of_dev_and_tests(config: dict[str, Any]) -> None:
    from rudolph.opensearch_dist import VERSION

    services = config["services"]
    assert services["opensearch"]["image"] == f"opensearchproject/opensearch:{VERSION}"
    assert services["dashboards"]["image"] == f"opensearchproject/opensearch-dashboards:{VERSION}"
