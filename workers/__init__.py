"""The fleet's workers: `celery -A workers worker -Q labels,text,faces,aggregate`.

`workers.app` is the Celery app (workers/celery_app.py); the tasks are in workers/tasks.py.
"""

from workers.celery_app import app

__all__ = ["app"]
