"""Turning object events into Celery work: chord(group(labels, text, faces), aggregate) per
created image, a removal per deleted one, a rejection for what the door refused."""

from __future__ import annotations

from celery import chord, group
from celery.canvas import Signature

from rudolph.events import ObjectRef
from workers import tasks


def pipeline_for(ref: ObjectRef) -> Signature:
    # Task messages carry the reference only; each worker reads the object itself.
    payload = ref.model_dump(mode="json")
    return chord(
        group(tasks.labels.s(payload), tasks.text.s(payload), tasks.faces.s(payload)),
        tasks.aggregate.s(payload),
    )


class CeleryDispatcher:
    """What the listener and `reconcile` call to enqueue work."""

    def created(self, ref: ObjectRef) -> str:
        """Enqueue the pipeline of one created object; returns the aggregate's task id."""
        return str(pipeline_for(ref).apply_async().id)

    def removed(self, ref: ObjectRef) -> str:
        return str(tasks.remove.delay(ref.model_dump(mode="json")).id)

    def rejected(self, ref: ObjectRef, message: str) -> str:
        return str(tasks.reject.delay(ref.model_dump(mode="json"), message).id)
