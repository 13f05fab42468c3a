"""What is refused before any analysis: objects no worker should download."""

from __future__ import annotations

from rudolph.errors import EmptyImageError, ImageTooLargeError, RudolphError
from rudolph.events import ObjectRef
from rudolph.settings import Settings


def refusal(ref: ObjectRef, settings: Settings) -> RudolphError | None:
    """Why this object will not be analysed, or None when it may go through."""
    if ref.size == 0:
        return EmptyImageError(
            "the object is empty (0 bytes): the upload did not complete; upload the image again"
        )
    limit = settings.max_object_mb * 1024 * 1024
    if ref.size is not None and ref.size > limit:
        return ImageTooLargeError(
            f"the object is {ref.size / 1024 / 1024:.1f} MB, over the "
            f"{settings.max_object_mb:g} MB limit (RUDOLPH_MAX_OBJECT_MB): downscale it or "
            "raise the limit"
        )
    return None
