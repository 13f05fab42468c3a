"""rudolph's exceptions. Each message says what was wrong and what to do about it.

Whether a task retries is decided by class: a `TransientError` may succeed later (tasks retry
it with backoff), anything else is final and its message says what to fix.

    RudolphError
    ├── TransientError                  retry later: something is busy or down
    │   ├── TransientAnalyzerError      throttling, timeouts, a 5xx of an analysis service
    │   ├── StoreUnavailableError       DynamoDB unreachable, throttled or failing
    │   ├── IndexUnavailableError       OpenSearch unreachable, busy or failing
    │   ├── RateLimitedError            a Rekognition API's fleet-wide quota: wait your turn
    │   └── BrokerUnavailableError      Redis (Celery's broker) unreachable
    ├── ConfigurationError              a setting, a missing table or index, access denied
    ├── DevStackError                   (rudolph/devstack.py) the local stack cannot start
    ├── DevStateError                   (rudolph/devstate.py) the saved local state cannot be loaded
    ├── ImageError                      the input is not an image rudolph can analyse
    │   ├── EmptyImageError, UnreadableImageError, ImageTooSmallError, ImageTooLargeError
    ├── AnalyzerError                   an analysis backend refused an image (bad format...)
    ├── StoreRefusedError               DynamoDB refused a record (too large, invalid)
    ├── ModelError                      a local model file is missing or cannot be built
    ├── MalformedEventError             an SQS message that is not an S3 event
    ├── EventRouteError                 `rudolph init --events` cannot connect events to the queue
    ├── ObjectGoneError                 the object was deleted before it could be read
    ├── SearchRefusedError              the index refused a user's search (also a ValueError)
    ├── PeopleOffError                  a people command while RUDOLPH_PEOPLE is off
    ├── UnknownPersonError              no such person (never was, merged away, forgotten)
    ├── PersonNameError                 a name rudolph will not give a person (too long, control)
    ├── UnknownFaceError                no such face with an embedding in that image
    ├── FaceCollectionError             a face collection's answer rudolph cannot use
    ├── SearchEngineInstallError        (rudolph/opensearch_dist.py) OpenSearch cannot be installed
    ├── QuerySyntaxError                (rudolph/query.py) a query it cannot read (ValueError)
    ├── InventoryError                  (producer/inventory.py) an unreadable S3 Inventory
    └── BadRequestError, UnknownImageError   (rudolph/web/errors.py) a web request's 400, 404

Configuration errors (a missing table or index, access denied, a table keyed otherwise) are
ConfigurationErrors: final, and their messages name the setting or command that fixes them.

Four exceptions never leave their module, so they are not RudolphErrors:

    _ConditionFailed    (rudolph/store.py, used by its sibling rudolph/peoplestore.py) a
                        conditional write lost to a newer event; callers get None or False
    _Interrupted        (producer/listener.py) a BaseException the listener's signal handler
                        raises to leave an idle long poll at once
    DlibFormatError     (rudolph/models/dlib_resnet.py) a ValueError reading dlib's .dat;
                        ensure_onnx turns it into a ModelError
    TFLiteFormatError   (rudolph/models/tflite.py) a ValueError: a .tflite file that is not
                        a model its reader understands (fer's expression model)
"""

from __future__ import annotations


class RudolphError(Exception):
    """Base class of every error rudolph raises on purpose. Final unless a TransientError."""

    @property
    def retryable(self) -> bool:
        """Whether trying the same thing again later may succeed: decided by class."""
        return isinstance(self, TransientError)

    @property
    def code(self) -> str:
        """Short name for records and logs: the class name without 'Error'."""
        return type(self).__name__.removesuffix("Error")


class TransientError(RudolphError):
    """Trying again later may succeed (throttling, timeouts, a service that is down)."""


class ConfigurationError(RudolphError):
    """A setting is missing or has a value rudolph cannot use, or a resource it names does not
    exist or may not be used: fix the configuration, retrying will not help."""


class ImageError(RudolphError):
    """The input is not an image rudolph can analyse. Retrying will not help."""


class EmptyImageError(ImageError):
    pass


class UnreadableImageError(ImageError):
    pass


class ImageTooSmallError(ImageError):
    pass


class ImageTooLargeError(ImageError):
    pass


class AnalyzerError(RudolphError):
    """An analysis backend failed on an image it was given."""

    def __init__(self, message: str, service_code: str | None = None) -> None:
        super().__init__(message)
        self.service_code = service_code

    @property
    def code(self) -> str:
        # The service's own error name (InvalidImageFormat) is what people search for.
        if self.service_code:
            return self.service_code.removesuffix("Exception")
        return super().code

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} (temporary: try again later)" if self.retryable else message


class TransientAnalyzerError(AnalyzerError, TransientError):
    pass


class ModelError(RudolphError):
    """A local model file is missing or cannot be built."""


class MalformedEventError(RudolphError):
    """An SQS message that is no S3 object event (direct, through SNS or EventBridge)."""


class EventRouteError(RudolphError):
    """`rudolph init --events` could not connect the buckets' events to the queue."""


class ObjectGoneError(RudolphError):
    """The S3 object was deleted (or replaced) before it could be read."""


class StoreUnavailableError(TransientError):
    """DynamoDB could not be reached, throttled or failed (a 5xx); retrying later may succeed."""


class StoreRefusedError(RudolphError):
    """DynamoDB refused a record for what it holds (over 400 KB, an invalid value): writing
    it again will not help."""


class SearchRefusedError(RudolphError, ValueError):
    """The index refused a search for a value the user gave (a number out of range, a cursor
    it cannot use): a bad request, to be changed, never a server error."""


class PeopleOffError(RudolphError):
    """A people command or search while RUDOLPH_PEOPLE is off (no face is clustered)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} needs RUDOLPH_PEOPLE=on (face identity is biometric data, off by "
            "default): set it on the workers and here, then `rudolph backfill --all` to "
            "embed the faces of images analysed before"
        )


class UnknownPersonError(RudolphError):
    """No live person of that id."""

    def __init__(self, person_id: str) -> None:
        super().__init__(
            f"no person {person_id!r}: it never was, was merged into another or was "
            "forgotten; `rudolph people` lists the persons and their ids"
        )


class PersonNameError(RudolphError):
    """A name that cannot be a person's: too long, or with control or format characters."""


class UnknownFaceError(RudolphError):
    """An image without that face, or whose face has no embedding."""

    def __init__(self, image_id: str, face: int) -> None:
        super().__init__(
            f"image {image_id} has no face number {face} with an embedding: faces are "
            "numbered from 0 in `rudolph show`'s order; only RUDOLPH_PEOPLE=on embeds them"
        )


class FaceCollectionError(RudolphError):
    """Rekognition's face collection answered something rudolph cannot use (a face without an
    id, a face another program indexed): final, the message says what to do."""


class SearchEngineInstallError(RudolphError):
    """The local OpenSearch could not be fetched, verified or unpacked (`make setup`): the
    message says why and what to do (RUDOLPH_DEV_SEARCH=noida is the fallback)."""


class IndexUnavailableError(TransientError):
    """OpenSearch could not be reached (refused, timed out, TLS); retrying later may succeed."""


class RateLimitedError(TransientError):
    """A call would wait too long for its turn under the fleet-wide rate limit (a Rekognition
    API's quota): rather than hold a worker, the task retries after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        #: Seconds until a retry is likely to find a free slot (the retry's countdown).
        self.retry_after = retry_after


class BrokerUnavailableError(TransientError):
    """The Celery broker (Redis) cannot be reached."""
