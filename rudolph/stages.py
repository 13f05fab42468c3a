"""The library side of the fleet's tasks: analyse one feature of an S3 object, merge the
outcomes into the record, and save it to DynamoDB and OpenSearch.

The Celery tasks in `workers/` are thin wrappers over these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rudolph import aws, downloads
from rudolph.analysis import FeatureOutcome, build_record, feature_error, run_feature
from rudolph.backends import get_analyzer
from rudolph.errors import AnalyzerError, ObjectGoneError, TransientAnalyzerError
from rudolph.events import ObjectRef
from rudolph.images import DecodedImage, decode
from rudolph.index import SearchIndex
from rudolph.logs import log_outcome
from rudolph.people import People
from rudolph.peoplestore import PeopleStore
from rudolph.record import Record, image_id
from rudolph.settings import FEATURES, Feature, Settings
from rudolph.source import ImageInput, ObjectAttributes, S3Object
from rudolph.store import RecordStore

log = logging.getLogger(__name__)

_GONE = {"NoSuchKey", "404", "NoSuchVersion", "NoSuchBucket"}


def _s3_error(exc: ClientError, ref: ObjectRef) -> Exception:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _GONE:
        return ObjectGoneError(
            f"{ref.uri} no longer exists ({code}): it was deleted before it could be read; "
            "nothing to do"
        )
    if code in ("AccessDenied", "403"):
        return AnalyzerError(
            f"access denied reading {ref.uri}: grant s3:GetObject on the bucket to the "
            "worker's role",
            "AccessDenied",
        )
    return TransientAnalyzerError(f"S3 {code} reading {ref.uri}", code or None)


def _attributes(response: dict[str, Any], ref: ObjectRef) -> ObjectAttributes:
    """The record's object fields from a GetObject or HeadObject response."""
    return ObjectAttributes(
        etag=str(response.get("ETag", "")).strip('"') or ref.etag,
        size=response.get("ContentLength", ref.size),
        content_type=response.get("ContentType"),
        metadata=response.get("Metadata", {}),
        version_id=response.get("VersionId") or ref.version_id,
    )


def fetcher(ref: ObjectRef, settings: Settings) -> Callable[[], S3Object]:
    """A function that returns the object version the event refers to, with its attributes:
    downloaded once per host for the pipeline's tasks (`downloads`)."""

    def download() -> S3Object:
        params: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        try:
            response = aws.client("s3", settings).get_object(**params)
            body: bytes = response["Body"].read()
        except ClientError as exc:
            raise _s3_error(exc, ref) from exc
        except BotoCoreError as exc:
            raise TransientAnalyzerError(f"S3 unreachable reading {ref.uri}: {exc}") from exc
        return S3Object(body=body, attributes=_attributes(response, ref))

    return lambda: downloads.fetch(_cache_key(ref, settings), download)


def decoder(ref: ObjectRef, settings: Settings) -> Callable[[bytes], DecodedImage]:
    """Decodes the object's bytes once per host for the pipeline's tasks (`downloads`)."""
    budget = settings.decode_budget_mb
    return lambda data: downloads.decoded(
        _cache_key(ref, settings), lambda: decode(data, budget_mb=budget)
    )


def decoded_elsewhere(ref: ObjectRef, settings: Settings) -> Callable[[], DecodedImage | None]:
    """The object's pixels if another task of the host decoded them already (`downloads`)."""
    return lambda: downloads.decoded_if_there(_cache_key(ref, settings))


def _cache_key(ref: ObjectRef, settings: Settings) -> str:
    # The whole reference (and where S3 is): a newer event never reads an older entry.
    return f"{settings.aws_endpoint_url or 'aws'} {ref.model_dump_json()}"


def analyze_feature(feature: Feature, ref: ObjectRef, settings: Settings) -> FeatureOutcome:
    """One feature of one object. Raises TransientAnalyzerError when a retry may succeed."""
    image = ImageInput.from_s3(
        ref.location(),
        fetcher(ref, settings),
        decoder(ref, settings),
        decoded_elsewhere(ref, settings),
    )
    outcome = run_feature(get_analyzer(settings), feature, image)
    if image.attributes is None:
        return outcome
    return outcome.model_copy(update={"s3_object": image.attributes})


def gave_up(feature: Feature, exc: BaseException, attempts: int) -> FeatureOutcome:
    """The outcome of a feature whose retries ran out: an error, so the aggregate still runs."""
    return FeatureOutcome(
        feature=feature, error=f"{feature_error(exc)} (gave up after {attempts} attempts)"
    )


def object_info(ref: ObjectRef, settings: Settings) -> dict[str, Any] | None:
    """The object's own attributes for the record, or None when it no longer exists."""
    params: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        params["VersionId"] = ref.version_id
    try:
        head = aws.client("s3", settings).head_object(**params)
    except ClientError as exc:
        error = _s3_error(exc, ref)
        if isinstance(error, ObjectGoneError):
            return None
        raise error from exc
    return asdict(_attributes(head, ref))


_GONE_ERROR = f"{ObjectGoneError('').code}:"


def downloaded_info(
    outcomes: Sequence[FeatureOutcome], ref: ObjectRef, settings: Settings
) -> dict[str, Any] | None:
    """The object's attributes as the features' download saw them; None when a feature
    found it gone. A HEAD only when no feature downloaded it (Rekognition reads S3 itself,
    or every download failed).

    A delete after the download needs no HEAD to catch it: its removed event tombstones the
    item, and put_final never writes over a newer event (store.py).
    """
    if any(o.error and o.error.startswith(_GONE_ERROR) for o in outcomes):
        return None
    seen = next((o.s3_object for o in outcomes if o.s3_object is not None), None)
    return asdict(seen) if seen is not None else object_info(ref, settings)


def aggregate_run(
    outcomes: Sequence[FeatureOutcome],
    ref: ObjectRef,
    settings: Settings,
    rerun: Sequence[Feature] | None = None,
) -> Record | None:
    """`aggregate` the outcomes of a pipeline; with `rerun` (only these features ran), the
    others come from the stored record."""
    if rerun and tuple(rerun) != FEATURES:
        outcomes = [*outcomes, *stored_outcomes(ref, settings, rerun)]
    return aggregate(outcomes, ref, settings)


def aggregate(
    outcomes: Sequence[FeatureOutcome], ref: ObjectRef, settings: Settings
) -> Record | None:
    """Merge the outcomes into the record and save it; None when the object is gone or a
    newer event owns the image now."""
    info = downloaded_info(outcomes, ref, settings)
    if info is None:
        log.info("%s was deleted before its analysis finished: no record written", ref.uri)
        store(settings).forget_pending(ref)
        return None
    record = _record_and_save(outcomes, ref, settings, **info)
    log_outcome(record, outcomes)
    return record


def _record_and_save(
    outcomes: Sequence[FeatureOutcome], ref: ObjectRef, settings: Settings, **fields: Any
) -> Record | None:
    record = build_record(
        outcomes,
        image_id=image_id(ref.bucket, ref.key),
        backend=settings.analyzer,
        bucket=ref.bucket,
        key=ref.key,
        event_time=ref.event_time,
        sequencer=ref.sequencer,
        **fields,
    )
    return record if save(record, ref, settings) else None


def reject(ref: ObjectRef, message: str, settings: Settings) -> Record | None:
    """A failed record for an object refused at the door (empty, too large), written like an
    analysed one, so the failure is visible where people look."""
    outcomes = [FeatureOutcome(feature=feature, error=message) for feature in FEATURES]
    return _record_and_save(
        outcomes, ref, settings, etag=ref.etag, size=ref.size, version_id=ref.version_id
    )


@lru_cache(maxsize=4)
def store(settings: Settings) -> RecordStore:
    return RecordStore(settings)


@lru_cache(maxsize=4)
def index(settings: Settings) -> SearchIndex:
    return SearchIndex(settings)


@lru_cache(maxsize=4)
def people(settings: Settings) -> People:
    return People(settings, PeopleStore(settings, store(settings)))


def save(record: Record, ref: ObjectRef, settings: Settings) -> bool:
    """DynamoDB first (the source of truth), then the search index; False when the event is
    stale (a newer upload or a delete of the same key was recorded since)."""
    revision = store(settings).put_final(record, ref.order)
    if revision is None:
        log.info("%s: a newer event owns this image; this result is dropped", ref.uri)
        return False
    index(settings).put(record, revision)
    # Persons next to the image's document (RUDOLPH_PEOPLE=on; off, no embedding or FaceId).
    if settings.people_on and any(face.embedding or face.face_id for face in record.faces):
        people(settings).index_record(record, ref.order)
    return True


def remove(ref: ObjectRef, settings: Settings) -> str:
    """Forget a deleted object: its item becomes a deletion marker, its document goes."""
    key = image_id(ref.bucket, ref.key)
    revision = store(settings).tombstone(ref)
    if revision is None:
        log.info("%s: delete event older than the recorded state; ignored", ref.uri)
        return key
    index(settings).delete(key, revision)
    if settings.people_on:
        people(settings).remove_image(key, ref.order)
    return key


def stored_outcomes(
    ref: ObjectRef, settings: Settings, rerun: Sequence[Feature]
) -> list[FeatureOutcome]:
    """The features not in `rerun`, as outcomes taken from the stored record (as it is now),
    so that an aggregate of re-run features keeps the others; none when there is no record."""
    record = store(settings).get(image_id(ref.bucket, ref.key))
    if record is None:
        return []
    versions = record.analyzer.versions if record.analyzer else {}
    backend = record.analyzer.backend if record.analyzer else None
    return [
        FeatureOutcome(
            feature=feature,
            labels=record.labels if feature == "labels" else [],
            text=record.text if feature == "text" else [],
            faces=record.faces if feature == "faces" else [],
            error=record.errors.get(feature),
            backend=backend,
            version=versions.get(feature),
            notes=record.analyzer.notes if record.analyzer else [],
            width=record.width,
            height=record.height,
        )
        for feature in FEATURES
        if feature not in rerun
    ]
