"""`rudolph dev`: the whole fleet on this machine, no Docker, no AWS.

moto's server (S3, SQS, DynamoDB), OpenSearch 2.5.0 (rudolph/opensearch_node.py; with
RUDOLPH_DEV_SEARCH=noida the noida-db emulator, the fallback for a machine that cannot install
it), Redis, a Celery worker on every queue, the SQS listener and Flower, all on 127.0.0.1.
Each process's output goes to .rudolph/logs/; .rudolph/dev.env holds the settings another
shell needs.
Ctrl-C stops every process it started. The integration tests use the same pieces.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from rudolph import opensearch_node, worker_command
from rudolph.devstate import DevState, Summary
from rudolph.errors import RudolphError, SearchEngineInstallError
from rudolph.vocabulary import QUEUES

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class DevStackError(RudolphError):
    """A local service could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def preferred_port(port: int) -> int:
    """`port` when nothing listens there (stable URLs for people), else a free one."""
    return free_port() if port_open(port) else port


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise DevStackError(f"{what} did not happen within {timeout:.0f} s")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies, so a
    killed test run or `rudolph dev` leaves no server behind (Linux only; elsewhere a no-op)."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Processes:
    """Child processes started in their own session, stopped together by PID."""

    log_dir: Path
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        group: int | None = None,
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                user=user,
                group=group,
                start_new_session=True,  # its own process group: Ctrl-C is ours to pass on
                preexec_fn=_die_with_parent,
            )
        self.running.append((name, process))
        return process

    def check(self, process: subprocess.Popen[bytes], name: str) -> None:
        if process.poll() is not None:
            raise DevStackError(
                f"{name} exited with status {process.returncode}; see {self.log_dir / name}.log"
            )

    def dead(self) -> list[str]:
        return [name for name, p in self.running if p.poll() is not None]

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return next(p for n, p in self.running if n == name)

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Signal one process group by name, wait for it, and stop tracking it."""
        process = self.process(name)
        _signal_group(process, sig)
        process.wait(timeout)
        _signal_group(process, signal.SIGKILL)  # whatever of its group is left
        self.running.remove((name, process))

    def stop(self, timeout: float = 20.0, names: Collection[str] | None = None) -> None:
        """SIGTERM every group (newest first), or those of `names`, then SIGKILL what is left
        after `timeout`."""
        chosen = [(n, p) for n, p in reversed(self.running) if names is None or n in names]
        for _, process in chosen:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for entry in chosen:
            process = entry[1]
            with suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)  # the group: workers' pool children too
            process.wait(5)
            self.running.remove(entry)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _alive_and(
    processes: Processes, process: subprocess.Popen[bytes], name: str, probe: Callable[[], bool]
) -> Callable[[], bool]:
    """A readiness check that fails fast when the process already died."""

    def check() -> bool:
        processes.check(process, name)
        return probe()

    return check


def _http_ok(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.HTTPError, OSError):
        return False  # an error page is not a ready server


# -- the services ------------------------------------------------------------------------


def start_moto(processes: Processes, port: int) -> str:
    moto = BIN / "moto_server"
    if not moto.exists():
        raise DevStackError("moto_server is missing: run `make setup` (pip extra 'stack')")
    # moto binds 0.0.0.0 by default: never here.
    process = processes.start("moto", [str(moto), "-H", HOST, "-p", str(port)])
    url = f"http://{HOST}:{port}"
    wait_until(
        _alive_and(processes, process, "moto", lambda: _http_ok(url + "/moto-api/")),
        30,
        f"moto answering on {url}",
    )
    return url


def noida_binary() -> Path:
    """noida-db's own server binary. `.venv/bin/noida-db` is a Python wrapper that runs it as
    a child; started directly, its PID is the server's."""
    from importlib.resources import files

    try:
        binary = Path(str(files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError:
        binary = Path("/nonexistent")
    if not binary.is_file():
        raise DevStackError("noida-db is missing: run `make setup` (pip extra 'stack')")
    return binary


#: RUDOLPH_DEV_SEARCH=noida: the noida-db emulator instead of OpenSearch (fallback only).
SEARCH_ENGINE_VARIABLE = "RUDOLPH_DEV_SEARCH"


def search_engine_choice() -> str:
    """'opensearch' (default) or 'noida' (RUDOLPH_DEV_SEARCH=noida)."""
    chosen = os.environ.get(SEARCH_ENGINE_VARIABLE, "opensearch").strip().lower() or "opensearch"
    if chosen not in ("opensearch", "noida"):
        raise DevStackError(
            f"{SEARCH_ENGINE_VARIABLE}={chosen!r}: use 'opensearch' (the default) or 'noida'"
        )
    return chosen


def start_noida(processes: Processes, port: int, data_dir: Path) -> str:
    """noida-db, an OpenSearch emulator that scans every document: the fallback only."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # noida-db prints a harmless GLIBC version warning at start (into the log).
    argv = [str(noida_binary()), "start", "--only", "elasticsearch", "--host", HOST,
            "--elasticsearch-port", str(port), "--data-dir", str(data_dir)]  # fmt: skip
    process = processes.start("opensearch", argv)
    url = f"http://{HOST}:{port}"
    wait_until(
        _alive_and(processes, process, "opensearch", lambda: _http_ok(url)),
        60,
        f"noida-db answering on {url}",
    )
    return url


def start_real_opensearch(
    processes: Processes, port: int, base_dir: Path, timeout: float = 120.0
) -> str:
    """OpenSearch 2.5.0 on 127.0.0.1:`port`, config, data and logs under `base_dir` (kept
    across restarts); returns once the cluster is yellow or green."""
    try:
        launch = opensearch_node.prepare(base_dir, port, free_port())
    except SearchEngineInstallError as exc:
        raise DevStackError(str(exc)) from exc
    process = processes.start(
        "opensearch", launch.argv, launch.env, user=launch.user, group=launch.group
    )
    url = f"http://{HOST}:{port}"
    wait_until(
        _alive_and(processes, process, "opensearch", lambda: opensearch_node.healthy(url)),
        timeout,
        f"OpenSearch healthy (yellow or green) on {url}",
        interval=0.25,
    )
    return url


def start_opensearch(processes: Processes, port: int, data_dir: Path) -> str:
    """The search engine on 127.0.0.1:`port`: OpenSearch 2.5.0, or noida-db when
    RUDOLPH_DEV_SEARCH=noida."""
    if search_engine_choice() == "noida":
        return start_noida(processes, port, data_dir)
    return start_real_opensearch(processes, port, data_dir)


def start_redis(processes: Processes, port: int) -> str:
    server = shutil.which("redis-server")
    if server is None:
        raise DevStackError(
            "no Redis listens on 127.0.0.1:6379 and redis-server is not installed: "
            "`sudo apt-get install redis-server` (or `make setup`), or set CELERY_BROKER_URL"
        )
    process = processes.start(
        "redis",
        [
            server,
            "--bind",
            HOST,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    )
    wait_until(
        _alive_and(processes, process, "redis", lambda: port_open(port)),
        20,
        f"redis-server listening on port {port}",
    )
    return f"redis://{HOST}:{port}/0"


def ensure_redis(processes: Processes) -> str:
    """The broker URL: CELERY_BROKER_URL, a Redis on 6379, or one we start."""
    configured = os.environ.get("CELERY_BROKER_URL")
    if configured:
        return configured
    if port_open(6379):
        return f"redis://{HOST}:6379/0"
    return start_redis(processes, free_port())


def celery_worker_argv(
    queues: Sequence[str] = QUEUES, concurrency: int = 2, name: str = "dev"
) -> list[str]:
    """A worker of the local stack: this virtualenv's celery, logging each image's outcome
    (INFO)."""
    return worker_command.celery_worker_argv(
        queues, concurrency=concurrency, name=name, celery=str(BIN / "celery")
    )


@contextmanager
def running(processes: Processes) -> Iterator[Processes]:
    try:
        yield processes
    finally:
        processes.stop()


@dataclass
class Stack:
    """What `rudolph dev` started, and the environment that points at it."""

    env: dict[str, str]
    urls: dict[str, str]
    flower_auth: str
    #: What was loaded from the last saved state (None: the stack started empty).
    restored: Summary | None = None
    #: Whether the search index was rebuilt from the table (the last stop was not clean).
    reindexed: bool = False


def stack_env(
    aws_url: str, search_url: str, broker: str, name: str | None = None
) -> dict[str, str]:
    """The environment that points rudolph at a local stack; `name` names the bucket, queue,
    table and index (defaults otherwise)."""
    env = {
        "RUDOLPH_AWS_ENDPOINT_URL": aws_url,
        "RUDOLPH_OPENSEARCH_URL": search_url,
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "AWS_REGION": "us-east-1",
        # moto accepts any credentials; these never reach AWS.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # One onnxruntime thread per worker process: the pool supplies the parallelism.
        "RUDOLPH_THREADS": "1",
    }
    if name:
        for variable in ("RUDOLPH_BUCKET", "RUDOLPH_QUEUE_NAME", "RUDOLPH_TABLE", "RUDOLPH_INDEX"):
            env[variable] = name
    return env


#: The fleet's own processes: stopped before the state is saved, so nothing writes meanwhile.
FLEET = ("flower", "listener", "worker")


def _aws(service: str, env: Mapping[str, str]) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=env["RUDOLPH_AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def _run_rudolph(command: str, env: Mapping[str, str], timeout: float) -> None:
    done = subprocess.run(
        [str(BIN / "rudolph"), command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise DevStackError(f"`rudolph {command}` failed: {done.stderr.strip() or done.stdout}")


def start_stack(
    processes: Processes, state_dir: Path, with_flower: bool = True, fresh: bool = False
) -> Stack:
    """Start every service and the fleet on the state saved by the last stop (`fresh`: on
    nothing; the saved state is discarded)."""
    saved = DevState(state_dir / "aws-state")
    if fresh:
        saved.discard()
    keep_index = saved.clean()
    if not keep_index:
        # The index's data could name images the saved buckets and table do not have.
        shutil.rmtree(state_dir / "opensearch", ignore_errors=True)
    aws_url = start_moto(processes, preferred_port(5000))
    search_url = start_opensearch(processes, preferred_port(9200), state_dir / "opensearch")
    broker = ensure_redis(processes)
    env = stack_env(aws_url, search_url, broker)
    env["CELERY_RESULT_BACKEND"] = os.environ.get("CELERY_RESULT_BACKEND", broker)
    env["AWS_REGION"] = os.environ.get("AWS_REGION", "us-east-1")
    for name in (
        "RUDOLPH_ANALYZER",
        "RUDOLPH_BUCKET",
        "RUDOLPH_QUEUE_NAME",
        "RUDOLPH_TABLE",
        "RUDOLPH_INDEX",
        "RUDOLPH_MIN_CONFIDENCE",
        "RUDOLPH_MODEL_DIR",
        "RUDOLPH_PEOPLE",
    ):
        if os.environ.get(name):
            env[name] = os.environ[name]
    restored = None
    if saved.saved():
        # Before `rudolph init` adds the buckets' notifications: nothing is analysed again.
        restored = saved.load(_aws("s3", env), _aws("dynamodb", env), env["AWS_REGION"])
        saved.mark_in_use()
    _run_rudolph("init", env, timeout=120)
    reindexed = restored is not None and not keep_index
    if reindexed:
        _run_rudolph("reindex", env, timeout=1800)
    urls = {
        "aws (moto: S3, SQS, DynamoDB)": aws_url,
        f"search ({opensearch_node.engine(search_url) or 'noida-db'})": search_url,
        "redis": broker,
    }
    worker = processes.start("worker", celery_worker_argv(), env)
    listener = processes.start("listener", [str(BIN / "rudolph"), "listen"], env)
    flower_auth = f"rudolph:{secrets.token_urlsafe(12)}"
    if with_flower:
        port = preferred_port(5555)
        flower = processes.start(
            "flower",
            [
                str(BIN / "celery"),
                "-A",
                "workers",
                "flower",
                f"--address={HOST}",
                f"--port={port}",
                f"--basic-auth={flower_auth}",
            ],
            env,
        )
        urls["flower"] = f"http://{HOST}:{port} (user rudolph, password in {state_dir / 'dev.env'})"
        processes.check(flower, "flower")
    processes.check(worker, "worker")
    processes.check(listener, "listener")
    env["FLOWER_BASIC_AUTH"] = flower_auth
    if with_flower:
        env["FLOWER_URL"] = f"http://{HOST}:{port}"
    return Stack(
        env=env, urls=urls, flower_auth=flower_auth, restored=restored, reindexed=reindexed
    )


def save_stack(processes: Processes, stack: Stack, state_dir: Path) -> Summary:
    """Stop the fleet, then save moto's buckets and tables for the next start (the search
    index keeps its own data); the services themselves keep running until `running` ends."""
    processes.stop(names=FLEET)
    return DevState(state_dir / "aws-state").save(
        _aws("s3", stack.env), _aws("dynamodb", stack.env)
    )


def write_env(path: Path, env: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `rudolph dev`: `source` this to point any rudolph command at it."]
    lines += [f"export {name}={value}" for name, value in env.items()]
    path.write_text("\n".join(lines) + "\n")
