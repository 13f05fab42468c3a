"""People through a Rekognition face collection (RUDOLPH_ANALYZER=rekognition with
RUDOLPH_PEOPLE=on): every call is checked by botocore's Stubber against the real API model
(request parameters and response shapes), the face details come from a real DetectFaces
answer (tests/fixtures/rekognition), and persons and assignments go to moto's DynamoDB, the
same PeopleStore as the local path's."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from rudolph import aws, stages
from rudolph.backends.rekognition import RekognitionAnalyzer
from rudolph.cli import main
from rudolph.collection import FaceCollection, external_id, image_of
from rudolph.errors import (
    AnalyzerError,
    ConfigurationError,
    FaceCollectionError,
    TransientAnalyzerError,
    TransientError,
    UnknownFaceError,
)
from rudolph.events import ObjectRef
from rudolph.facespace import CollectionFaces, LocalFaces, face_space
from rudolph.people import People, founder_id, search_index
from rudolph.peoplestore import PeopleStore
from rudolph.ratelimit import NO_LIMIT
from rudolph.record import Box, Face, Record, image_id
from rudolph.settings import Settings, get_settings
from rudolph.source import ImageInput, S3Location
from rudolph.store import RecordStore

F1 = "11111111-1111-4111-8111-111111111111"
F2 = "22222222-2222-4222-8222-222222222222"
F3 = "33333333-3333-4333-8333-333333333333"
STRAY = "99999999-9999-4999-8999-999999999999"
BOX = {"Width": 0.2, "Height": 0.3, "Left": 0.1, "Top": 0.1}


@pytest.fixture
def settings(moto_url: str) -> Settings:
    name = uuid.uuid4().hex[:8]
    settings = Settings(
        aws_endpoint_url=moto_url,
        analyzer="rekognition",
        people="on",
        table=f"t-{name}",
        bucket=f"b-{name}",
    )
    RecordStore(settings).ensure()
    return settings


@pytest.fixture
def stubbed(settings: Settings) -> Iterator[tuple[People, Stubber]]:
    client = boto3.client("rekognition", region_name="us-east-1")
    store = PeopleStore(settings)
    with Stubber(client) as stubber:
        space = CollectionFaces(FaceCollection(settings, client), store)
        yield People(settings, store=store, space=space), stubber
        stubber.assert_no_pending_responses()


def _saved(people: People, key: str, face_ids: list[str], sequencer: str = "0A") -> Record:
    """A record with faces the faces task indexed, written to the table as the fleet does."""
    ref = ObjectRef(bucket=people.settings.bucket, key=key, etag="e", sequencer=sequencer)
    record = Record(
        image_id=image_id(ref.bucket, key),
        bucket=ref.bucket,
        key=key,
        status="done",
        sequencer=sequencer,
        faces=[
            Face(confidence=99.0, box=Box(left=0.1, top=0.1, width=0.2, height=0.3), face_id=f)
            for f in face_ids
        ],
    )
    people.records.put(record)
    return record


def _order(sequencer: str = "0A") -> str:
    return ObjectRef(bucket="b", key="k", etag="e", sequencer=sequencer).order


def _search(stubber: Stubber, people: People, face_id: str, *matches: tuple[str, str]) -> None:
    """SearchFaces of `face_id` answering these (FaceId, image id) matches."""
    stubber.add_response(
        "search_faces",
        {
            "SearchedFaceId": face_id,
            "FaceMatches": [
                {
                    "Similarity": 99.1 - n,
                    "Face": {
                        "FaceId": match,
                        "BoundingBox": BOX,
                        "ImageId": str(uuid.uuid4()),
                        "ExternalImageId": image,
                        "Confidence": 99.9,
                    },
                }
                for n, (match, image) in enumerate(matches)
            ],
            "FaceModelVersion": "7.0",
        },
        expected_params={
            "CollectionId": people.settings.collection_id,
            "FaceId": face_id,
            "MaxFaces": 20,
            "FaceMatchThreshold": 90.0,
        },
    )


def _one_person_in_two_photos(people: People, stubber: Stubber) -> tuple[Record, Record]:
    """F1 founds a person, F2 joins it: SearchFaces as it answers each."""
    first, second = _saved(people, "a.jpg", [F1]), _saved(people, "b.jpg", [F2])
    for face in (F1, F1):
        _search(stubber, people, face)
    people.index_record(first, _order())
    _search(stubber, people, F2, (F1, first.image_id))
    people.index_record(second, _order())
    return first, second


def test_the_collection_is_chosen_from_settings_and_created_once(settings: Settings) -> None:
    client = boto3.client("rekognition", region_name="us-east-1")
    collection = FaceCollection(settings, client)
    name = collection.name
    assert name == f"{settings.table}-faces"
    with Stubber(client) as stubber:
        expected = {"CollectionId": collection.name}
        stubber.add_response(
            "create_collection",
            {
                "StatusCode": 200,
                "CollectionArn": f"aws:rekognition:us-east-1:123456789012:collection/{name}",
                "FaceModelVersion": "7.0",
            },
            expected,
        )
        stubber.add_client_error(
            "create_collection",
            "ResourceAlreadyExistsException",
            "exists",
            400,
            expected_params=expected,
        )
        assert collection.ensure() is True
        assert collection.ensure() is False  # a second `rudolph init`, or another process
        stubber.assert_no_pending_responses()
    store = PeopleStore(settings)
    assert isinstance(face_space(settings, store), CollectionFaces)
    local = settings.model_copy(update={"analyzer": "local"})
    assert isinstance(face_space(local, store), LocalFaces)


def test_image_ids_map_to_external_ids_and_back() -> None:
    key = image_id("bucket", "any key/with spaces & ünïcode.jpg")
    assert external_id(key) == key and image_of(key, "c") == key
    with pytest.raises(ValueError):
        external_id("not an image id")
    with pytest.raises(FaceCollectionError, match="RUDOLPH_FACE_COLLECTION"):
        image_of("holiday-photo.jpg", "c")


@pytest.fixture
def three_faces(fixtures_dir: Path) -> list[dict[str, Any]]:
    """The real DetectFaces answer's three face details (IndexFaces' FaceDetail is the same
    shape)."""
    path = fixtures_dir / "rekognition" / "detect_faces_three_people_2018.json"
    details: list[dict[str, Any]] = json.loads(path.read_text())["FaceDetails"]
    return details


def _indexed(face_id: str, detail: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "Face": {
            "FaceId": face_id,
            "BoundingBox": detail["BoundingBox"],
            "ImageId": str(uuid.uuid4()),
            "ExternalImageId": key,
            "Confidence": detail["Confidence"],
        },
        "FaceDetail": detail,
    }


def test_the_faces_task_indexes_faces_with_the_image_id(
    settings: Settings, three_faces: list[dict[str, Any]]
) -> None:
    location = S3Location(bucket=settings.bucket, key="family/at the lake.jpg", size=90_000)
    key = image_id(location.bucket, location.key)
    faint = copy.deepcopy(three_faces[1])
    faint["Confidence"] = 40.0  # indexed, but under RUDOLPH_MIN_CONFIDENCE
    client = boto3.client("rekognition", region_name="us-east-1")
    analyzer = RekognitionAnalyzer(settings, client=client, limiter=NO_LIMIT)
    with Stubber(client) as stubber:
        stubber.add_response(
            "index_faces",
            {
                "FaceRecords": [_indexed(F1, three_faces[0], key), _indexed(F2, faint, key)],
                "UnindexedFaces": [{"Reasons": ["LOW_SHARPNESS"], "FaceDetail": three_faces[2]}],
                "FaceModelVersion": "7.0",
            },
            expected_params={
                "CollectionId": settings.collection_id,
                "Image": {"S3Object": {"Bucket": location.bucket, "Name": location.key}},
                "ExternalImageId": key,
                "DetectionAttributes": ["DEFAULT", "SMILE", "EMOTIONS"],
                "MaxFaces": 100,
                "QualityFilter": "AUTO",
            },
        )
        # The faint face is not kept, so it leaves the collection at once.
        stubber.add_response(
            "delete_faces",
            {"DeletedFaces": [F2]},
            {"CollectionId": settings.collection_id, "FaceIds": [F2]},
        )
        image = ImageInput.from_s3(location, lambda: pytest.fail("passed by reference"))
        faces = analyzer.faces(image)
        stubber.assert_no_pending_responses()
    # Most confident first, the unindexed face kept without a FaceId; details as DetectFaces'.
    assert [f.face_id for f in faces] == [F1, None]
    assert [f.confidence for f in faces] == [
        d["Confidence"] for d in (three_faces[0], three_faces[2])
    ]
    assert all(len(f.landmarks) == 30 and f.smile is not None for f in faces)
    assert analyzer.version("faces") == "rekognition 7.0"
    # The FaceId goes through the record as it is.
    record = Record(image_id=key, status="done", faces=faces)
    assert Record.model_validate_json(record.model_dump_json()).faces[0].face_id == F1


def test_a_face_joins_the_person_searchfaces_finds_else_founds_one(
    stubbed: tuple[People, Stubber],
) -> None:
    people, stubber = stubbed
    first = _saved(people, "a.jpg", [F1])
    _search(stubber, people, F1)  # an empty collection: a new person...
    _search(stubber, people, F1)  # ...that looks again for a twin founded at the same moment
    assert people.index_record(first, _order()) == {0: founder_id(first.image_id, 0)}

    second = _saved(people, "b.jpg", [F2])
    # F3 is indexed but its record not saved yet: it has no person to join.
    _search(stubber, people, F2, (F3, image_id("x", "y")), (F1, first.image_id))
    assert people.index_record(second, _order()) == {0: founder_id(first.image_id, 0)}

    [person] = people.summaries()
    assert person.face_count == 2
    assert person.image_ids == sorted([first.image_id, second.image_id])
    assert people.store.assignment(second.image_id, 0).face_id == F2  # type: ignore[union-attr]
    # The same commands as the local path: name, `person:` by name or id.
    people.name(person.person_id, "Ada Lovelace")
    assert people.image_ids_for("ada lovelace") == person.image_ids
    assert people.image_ids_for(person.person_id) == person.image_ids

    # A duplicate delivery changes nothing and calls nothing.
    assert people.index_record(second, _order()) == {0: person.person_id}


def test_similar_faces_through_searchfaces(stubbed: tuple[People, Stubber]) -> None:
    people, stubber = stubbed
    first, second = _one_person_in_two_photos(people, stubber)
    stubber.add_response(
        "search_faces",
        {
            "SearchedFaceId": F2,
            "FaceMatches": [
                {
                    "Similarity": 97.5,
                    "Face": {"FaceId": F1, "BoundingBox": BOX, "ExternalImageId": first.image_id},
                }
            ],
        },
        {
            "CollectionId": people.settings.collection_id,
            "FaceId": F2,
            "MaxFaces": 5,
            "FaceMatchThreshold": 0.0,
        },
    )
    [near] = people.similar(second.image_id, 0, limit=5)
    assert (near.image_id, near.face, near.distance) == (first.image_id, 0, pytest.approx(0.025))
    with pytest.raises(UnknownFaceError):
        people.similar(second.image_id, 1)


def test_forget_deletes_the_persons_faces_from_the_collection(
    stubbed: tuple[People, Stubber],
) -> None:
    people, stubber = stubbed
    first, second = _saved(people, "a.jpg", [F1]), _saved(people, "b.jpg", [F2, F3])
    for face in (F1, F1):
        _search(stubber, people, face)
    people.index_record(first, _order())
    _search(stubber, people, F2, (F1, first.image_id))
    _search(stubber, people, F3, (F1, first.image_id))
    people.index_record(second, _order())
    [person] = people.summaries()
    stubber.add_response(
        "delete_faces",
        {"DeletedFaces": [F1, F2, F3]},
        {"CollectionId": people.settings.collection_id, "FaceIds": [F1, F2, F3]},
    )
    assert people.forget(person.person_id) == 3
    assert people.summaries() == [] and people.store.assignments() == []
    # No FaceId is left in the records either: nothing points at the deleted faces.
    for record in (first, second):
        stored = people.records.get(record.image_id)
        assert stored is not None and all(f.face_id is None for f in stored.faces)


def test_deleting_an_image_deletes_its_faces(stubbed: tuple[People, Stubber]) -> None:
    people, stubber = stubbed
    record = _saved(people, "a.jpg", [F1, F2])
    for face in (F1, F1, F2, F2):
        _search(stubber, people, face)
    people.index_record(record, _order())
    stubber.add_response(
        "delete_faces",
        {"DeletedFaces": [F1, F2]},
        {"CollectionId": people.settings.collection_id, "FaceIds": [F1, F2]},
    )
    people.remove_image(record.image_id, _order("0B"))
    assert people.store.assignments() == [] and people.summaries() == []


def test_throttling_is_transient_and_the_retry_finishes_the_job(
    stubbed: tuple[People, Stubber],
) -> None:
    people, stubber = stubbed
    record = _saved(people, "a.jpg", [F1])
    for code in ("ThrottlingException", "ProvisionedThroughputExceededException"):
        stubber.add_client_error("search_faces", code, "Rate exceeded", 400)
        with pytest.raises(TransientError) as raised:
            people.index_record(record, _order())
        assert isinstance(raised.value, TransientAnalyzerError) and raised.value.retryable
    assert people.store.assignments() == []  # nothing half-written
    _search(stubber, people, F1)
    _search(stubber, people, F1)
    assert people.index_record(record, _order()) == {0: founder_id(record.image_id, 0)}


def test_a_missing_collection_or_grant_says_what_to_do(stubbed: tuple[People, Stubber]) -> None:
    people, stubber = stubbed
    record = _saved(people, "a.jpg", [F1])
    stubber.add_client_error("search_faces", "ResourceNotFoundException", "no collection", 400)
    with pytest.raises(ConfigurationError, match="rudolph init"):
        people.index_record(record, _order())
    client = boto3.client("rekognition", region_name="us-east-1")
    analyzer = RekognitionAnalyzer(people.settings, client=client, limiter=NO_LIMIT)
    with Stubber(client) as stub:
        stub.add_client_error("index_faces", "AccessDeniedException", "not authorized", 400)
        location = S3Location(bucket=people.settings.bucket, key="a.jpg")
        with pytest.raises(AnalyzerError, match="rekognition:IndexFaces") as raised:
            analyzer.faces(ImageInput.from_s3(location, lambda: b""))
        assert not raised.value.retryable


def test_a_malformed_answer_is_refused(
    stubbed: tuple[People, Stubber], three_faces: list[dict[str, Any]]
) -> None:
    people, stubber = stubbed
    record = _saved(people, "a.jpg", [F1])
    # A face someone else indexed into the collection, under a file name of theirs.
    _search(stubber, people, F1, (STRAY, "holiday.jpg"))
    with pytest.raises(FaceCollectionError, match="RUDOLPH_FACE_COLLECTION"):
        people.index_record(record, _order())
    assert people.store.assignments() == [] and people.store.persons() == []
    # IndexFaces answering a face record without a FaceId (the model allows it) is refused.
    client = boto3.client("rekognition", region_name="us-east-1")
    analyzer = RekognitionAnalyzer(people.settings, client=client, limiter=NO_LIMIT)
    with Stubber(client) as stub:
        stub.add_response("index_faces", {"FaceRecords": [{"FaceDetail": three_faces[0]}]})
        location = S3Location(bucket=people.settings.bucket, key="a.jpg")
        with pytest.raises(FaceCollectionError, match="FaceId"):
            analyzer.faces(ImageInput.from_s3(location, lambda: b""))


def test_recluster_through_searchfaces_repairs_a_split_and_keeps_the_name(
    stubbed: tuple[People, Stubber],
) -> None:
    people, stubber = stubbed
    first, second = _saved(people, "a.jpg", [F1]), _saved(people, "b.jpg", [F2])
    # Saved when SearchFaces did not match them (a threshold changed since, say): two persons.
    for face in (F1, F1):
        _search(stubber, people, face)
    people.index_record(first, _order())
    for face in (F2, F2):
        _search(stubber, people, face)
    people.index_record(second, _order())
    assert len(people.summaries()) == 2
    # Recluster takes the faces in (image id, number) order, one SearchFaces each.
    ordered = sorted([(first.image_id, F1), (second.image_id, F2)])
    named = founder_id(ordered[0][0], 0)
    people.name(named, "Ada Lovelace")
    (_, earlier), (_, later) = ordered
    _search(stubber, people, earlier, (later, ordered[1][0]))
    _search(stubber, people, later, (earlier, ordered[0][0]))
    report = people.recluster()
    assert (report.faces, report.persons) == (2, 1)
    [person] = people.summaries()
    assert person.image_ids == sorted([first.image_id, second.image_id])
    assert (person.person_id, person.name) == (named, "Ada Lovelace")
    assert {a.face_id for a in people.store.assignments()} == {F1, F2}


def test_a_rerun_at_the_same_event_moves_the_assignment_to_the_new_face_id(
    stubbed: tuple[People, Stubber],
) -> None:
    people, stubber = stubbed
    record = _saved(people, "a.jpg", [F1])
    for face in (F1, F1):
        _search(stubber, people, face)
    [person] = people.index_record(record, _order()).values()
    # `backfill --missing faces`: IndexFaces again, a new FaceId for the same face and event.
    rerun = _saved(people, "a.jpg", [F2])
    stubber.add_response(
        "delete_faces",
        {"DeletedFaces": [F1]},
        {"CollectionId": people.settings.collection_id, "FaceIds": [F1]},
    )
    assert people.index_record(rerun, _order()) == {0: person}
    assert [a.face_id for a in people.store.assignments()] == [F2]


def test_the_people_commands_work_unchanged(
    stubbed: tuple[People, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    people, stubber = stubbed
    first, second = _one_person_in_two_photos(people, stubber)
    # The commands build their People from the environment: the same stubbed client.
    stubbed_client = people.space.collection.client  # type: ignore[attr-defined]
    real = aws.client
    monkeypatch.setattr(
        aws,
        "client",
        lambda service, s: stubbed_client if service == "rekognition" else real(service, s),
    )
    env = {
        "RUDOLPH_AWS_ENDPOINT_URL": str(people.settings.aws_endpoint_url),
        "RUDOLPH_TABLE": people.settings.table,
        "RUDOLPH_BUCKET": people.settings.bucket,
        "RUDOLPH_ANALYZER": "rekognition",
        "RUDOLPH_PEOPLE": "on",
    }

    def cli(*args: str) -> str:
        get_settings.cache_clear()
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == 0, result.output
        return str(result.output)

    try:
        [listed] = [json.loads(line) for line in cli("people", "--json").splitlines()]
        assert listed["face_count"] == 2 and listed["name"] is None
        assert sorted(listed["image_ids"]) == sorted([first.image_id, second.image_id])
        cli("people", "name", listed["person_id"], "Ada Lovelace")
        stubber.add_response(
            "delete_faces",
            {"DeletedFaces": [F1, F2]},
            {"CollectionId": people.settings.collection_id, "FaceIds": [F1, F2]},
        )
        cli("people", "forget", listed["person_id"])
        assert cli("people", "--json") == ""
    finally:
        get_settings.cache_clear()


def test_collection_calls_wait_their_turn_under_the_rate_limits(settings: Settings) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.apis: list[str] = []

        def acquire(self, api: str) -> float:
            return 0.0

        def wait(self, api: str, max_wait: float) -> None:
            self.apis.append(api)

    client, recorder = boto3.client("rekognition", region_name="us-east-1"), Recorder()
    collection = FaceCollection(settings, client, limiter=recorder)
    with Stubber(client) as stubber:
        stubber.add_response("search_faces", {"SearchedFaceId": F1, "FaceMatches": []})
        stubber.add_response("delete_faces", {"DeletedFaces": [F1]})
        assert collection.search(F1) == []
        collection.delete([F1])
    # The names RUDOLPH_RATE_LIMITS uses (SearchFaces=50), as for the Detect* calls.
    assert recorder.apis == ["SearchFaces", "DeleteFaces"]


def test_from_indexfaces_to_person_search_through_the_aggregate_path(
    moto_url: str,
    opensearch_url: str,
    three_faces: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The faces task's IndexFaces, the record saved by `stages.save` (the aggregate task's
    own path: table, index, persons), then `person:"name"` finds exactly those photos."""
    name = uuid.uuid4().hex[:8]
    settings = Settings(
        aws_endpoint_url=moto_url,
        opensearch_url=opensearch_url,
        analyzer="rekognition",
        people="on",
        table=f"t-{name}",
        index=f"rudolph-test-{name}",
        bucket=f"b-{name}",
    )
    RecordStore(settings).ensure()
    client = boto3.client("rekognition", region_name="us-east-1")
    real = aws.client
    monkeypatch.setattr(
        aws, "client", lambda service, s: client if service == "rekognition" else real(service, s)
    )
    analyzer = RekognitionAnalyzer(settings, client=client, limiter=NO_LIMIT)
    saved = {}
    try:
        with Stubber(client) as stubber:
            for key, face_id in (("lake.jpg", F1), ("party.jpg", F2), ("other.jpg", F3)):
                image = image_id(settings.bucket, key)
                stubber.add_response(
                    "index_faces",
                    {"FaceRecords": [_indexed(face_id, three_faces[0], image)]},
                )
                location = S3Location(bucket=settings.bucket, key=key)
                faces = analyzer.faces(ImageInput.from_s3(location, lambda: b""))
                ref = ObjectRef(bucket=settings.bucket, key=key, etag="e", sequencer="0A")
                record = Record(
                    image_id=image, bucket=settings.bucket, key=key, status="done", faces=faces
                )
                people = stages.people(settings)
                if face_id == F2:  # the second photo: SearchFaces finds the first's face
                    _search(stubber, people, F2, (F1, saved["lake.jpg"]))
                else:  # the first and the third: nobody yet, each founds a person
                    _search(stubber, people, face_id)
                    _search(stubber, people, face_id)
                assert stages.save(record, ref, settings)
                saved[key] = image
            stubber.assert_no_pending_responses()
        people = stages.people(settings)
        people.name(founder_id(saved["lake.jpg"], 0), "Ada Lovelace")
        index = search_index(settings)
        index.refresh()
        found = {hit.image_id for hit in index.search('person:"ada lovelace"', limit=10).hits}
        assert found == {saved["lake.jpg"], saved["party.jpg"]}
        assert people.persons_of_image(saved["party.jpg"]) == {0: founder_id(saved["lake.jpg"], 0)}
    finally:
        for cached in (stages.store, stages.index, stages.people):
            cached.cache_clear()


def _final(people: People, key: str, face_ids: list[str], order: str) -> Record:
    """`_saved`'s record as the aggregate writes it (put_final: with its event order)."""
    record = _saved(people, key, face_ids)
    people.records.delete(record.image_id)
    assert people.records.put_final(record, order) == 1
    return record


def test_a_redelivered_faces_task_leaves_no_orphan_in_the_collection(
    stubbed: tuple[People, Stubber],
) -> None:
    """The faces task indexed F1, its worker died before the result reached the aggregate,
    and the redelivered task indexed the same face again as F2: the record has F2, and F1 is
    in the collection under this image with nobody holding it. The clustering's SearchFaces
    meets it, and the aggregate deletes it."""
    people, stubber = stubbed
    record = _final(people, "a.jpg", [F2], _order())
    other = _saved(people, "b.jpg", [F3])  # another image's unassigned face: not ours to delete
    for _ in range(2):  # to cluster, then after founding (the race check)
        _search(stubber, people, F2, (F1, record.image_id), (F3, other.image_id))
    stubber.add_response(
        "delete_faces",
        {"DeletedFaces": [F1]},
        {"CollectionId": people.settings.collection_id, "FaceIds": [F1]},
    )
    [person] = people.index_record(record, _order()).values()
    stubber.assert_no_pending_responses()
    assert [a.face_id for a in people.store.assignments([person])] == [F2]


def test_a_stray_of_an_image_a_newer_event_claimed_is_left_to_that_event(
    stubbed: tuple[People, Stubber],
) -> None:
    """The same stray, but a newer upload of the key claimed the record meanwhile: its faces
    task may have indexed that face, so the older aggregate deletes nothing (an unexpected
    DeleteFaces would fail the Stubber)."""
    people, stubber = stubbed
    record = _final(people, "a.jpg", [F2], _order("0A"))
    for _ in range(2):
        _search(stubber, people, F2, (F1, record.image_id))
    newer = ObjectRef(bucket=record.bucket, key="a.jpg", etag="e2", sequencer="0B")
    assert people.records.mark_pending(newer)
    people.index_record(record, _order("0A"))
    stubber.assert_no_pending_responses()
