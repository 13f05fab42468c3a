"""The command line of a Celery worker of the fleet, spelled once: `rudolph dev`, the tests and
the benchmarks (rudolph/devstack.py) and both deployments (deploy/aws/build.py,
deploy/k8s/build.py) start their workers with it."""

from __future__ import annotations

from collections.abc import Sequence

#: The module Celery loads the app from (`workers/celery_app.py`, exported by `workers`).
CELERY_APP = "workers"


def celery_worker_argv(
    queues: Sequence[str],
    *,
    concurrency: int,
    name: str,
    celery: str = "celery",
    loglevel: str | None = "INFO",
) -> list[str]:
    """`celery -A workers worker` consuming `queues` with `concurrency` pool processes, as node
    `name@<host>`, sending task events (Flower and `rudolph status` read them).

    `celery` is the program (a path where PATH may not have it). INFO by default: each
    image's `rudolph.outcome` line is logged at INFO (`loglevel` None: Celery's WARNING).
    """
    if isinstance(queues, str):  # a str is a Sequence[str] too: "text" would become t,e,x,t
        raise TypeError(f"queues is a sequence of queue names, not the string {queues!r}")
    argv = [
        celery,
        "-A",
        CELERY_APP,
        "worker",
        "-Q",
        ",".join(queues),
        f"--concurrency={concurrency}",
        f"--hostname={name}@%h",
        "-E",
    ]
    if loglevel is not None:
        argv.append(f"--loglevel={loglevel}")
    return argv
