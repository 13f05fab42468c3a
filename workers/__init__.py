"""The Celery app of the fleet: `celery -A workers worker -Q labels,text,faces,aggregate`."""

from celery import Celery

app = Celery("rudolph")
app.config_from_object("celeryconfig")

from workers import tasks  # noqa: E402  (registers the tasks on the app)

__all__ = ["app", "tasks"]
