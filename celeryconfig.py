"""Every Celery setting of the fleet, in one place (https://docs.celeryq.dev/en/stable/userguide/configuration.html).

Read by `workers.app`; the broker and result backend come from the environment, the queue and
task names from rudolph.vocabulary.
"""

import os

from kombu import Queue

from rudolph.vocabulary import AGGREGATE_QUEUE, QUEUES, TASK_QUEUES

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
result_backend = os.environ.get("CELERY_RESULT_BACKEND", broker_url)

# One queue per feature, so each can be scaled and rate-limited on its own.
task_queues = tuple(Queue(name) for name in QUEUES)
task_default_queue = AGGREGATE_QUEUE
task_routes = {task: {"queue": queue} for task, queue in TASK_QUEUES.items()}

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

# At-least-once: a task is acknowledged after it ran, and a worker that dies mid-task
# (SIGKILL, OOM) leaves it to be redelivered rather than lost.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Time limits: OCR of a 2048 px page is ~2 s; anything near a minute is stuck.
task_soft_time_limit = 120
task_time_limit = 150

# Redis redelivers an unacknowledged task after this long; it must exceed the longest task
# and the longest retry countdown (an ETA task is held unacknowledged until it is due).
visibility_timeout = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
broker_transport_options = {
    "visibility_timeout": visibility_timeout,
    # Look for a dead worker's tasks every 10 s (kombu's default scans every ~100 s).
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
result_backend_transport_options = {"visibility_timeout": visibility_timeout}

# Chord parts and results are only needed until the aggregate ran.
result_expires = 24 * 3600

# Events for Flower and `rudolph status`.
worker_send_task_events = True
task_send_sent_event = True

broker_connection_retry_on_startup = True
worker_hijack_root_logger = False
