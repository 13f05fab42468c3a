"""rudolph's exceptions. Each message says what was wrong and what to do about it."""

from __future__ import annotations


class RudolphError(Exception):
    """Base class of every error rudolph raises on purpose."""

    #: Whether trying the same thing again later may succeed (throttling, timeouts, a
    #: service that is down). Tasks retry these with backoff; everything else is final.
    retryable: bool = False

    @property
    def code(self) -> str:
        """Short name for records and logs: the class name without 'Error'."""
        return type(self).__name__.removesuffix("Error")


class ConfigurationError(RudolphError):
    """A setting is missing or has a value rudolph cannot use."""


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


class TransientAnalyzerError(AnalyzerError):
    retryable = True


class ModelError(RudolphError):
    """A local model file is missing or cannot be built."""


class MalformedEventError(RudolphError):
    """An SQS message that is not an S3 event notification."""


class ObjectGoneError(RudolphError):
    """The S3 object was deleted (or replaced) before it could be read."""


class StoreUnavailableError(RudolphError):
    """DynamoDB could not be reached or refused the write; retrying later may succeed."""

    retryable = True


class SearchRefusedError(RudolphError, ValueError):
    """The index refused a search for a value the user gave (a number out of range, a cursor
    it cannot use): a bad request, to be changed, never a server error."""


class IndexUnavailableError(RudolphError):
    """OpenSearch could not be reached (refused, timed out, TLS); retrying later may succeed."""

    retryable = True


class RateLimitedError(RudolphError):
    """A call would wait too long for its turn under the fleet-wide rate limit (a Rekognition
    API's quota): rather than hold a worker, the task retries after `retry_after` seconds."""

    retryable = True

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        #: Seconds until a retry is likely to find a free slot (the retry's countdown).
        self.retry_after = retry_after


class BrokerUnavailableError(RudolphError):
    """The Celery broker (Redis) cannot be reached."""

    retryable = True
