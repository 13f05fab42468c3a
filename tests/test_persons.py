"""Persons (RUDOLPH_PEOPLE=on): faces cluster into persons as records are saved, on the real
servers (moto's DynamoDB, OpenSearch 2.5.0 with its k-NN plugin).

The photos are two real people under several guises (tests/photos.py `two_people`): Eileen
Collins (skimage's astronaut) and Grace Hopper (matplotlib's), as they are, mirrored, scaled,
turned and cropped; and the group picture with both (Collins twice). Their faces are found
and embedded once by the local backend; each test saves them as records under keys of its own
through `stages.save`, the aggregate task's own path.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from click.testing import CliRunner

from rudolph import stages
from rudolph.analysis import analyze
from rudolph.backends.local import LocalAnalyzer
from rudolph.cli import main
from rudolph.errors import PeopleOffError, UnknownPersonError
from rudolph.events import ObjectRef
from rudolph.index.faces import FaceIndex, Neighbour
from rudolph.people import People, founder_id, search_index
from rudolph.peoplestore import PeopleStore
from rudolph.provision import init
from rudolph.record import Face, Record, image_id
from rudolph.settings import Settings, get_settings
from rudolph.source import ImageInput
from tests.fleet import fleet, poll
from tests.photos import encode, group_picture, two_people
from tests.test_web import web_server


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, list[Face]]]:
    """Photo name -> (who, its faces with their embeddings)."""
    analyzer = LocalAnalyzer(
        Settings(model_dir=Settings().model_dir, people="on", threads=1)  # the setup's models
    )
    analyzer.load(("faces",))
    found = {}
    photos = {**two_people(), "group": ("both", group_picture())}
    for name, (who, picture) in photos.items():
        record = analyze(ImageInput.from_bytes(encode(picture, "PNG")), analyzer, ("faces",))
        assert record.faces and all(face.embedding for face in record.faces), name
        found[name] = (who, record.faces)
    return found


def _settings(moto_url: str, opensearch_url: str, people: str = "on") -> Settings:
    name = uuid.uuid4().hex[:8]
    return Settings(
        aws_endpoint_url=moto_url,
        opensearch_url=opensearch_url,
        table=f"t-{name}",
        index=f"rudolph-test-{name}",
        bucket=f"b-{name}",
        people=people,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(moto_url: str, opensearch_url: str) -> Iterator[Settings]:
    settings = _settings(moto_url, opensearch_url)
    init(settings, say=lambda _: None)
    yield settings
    for cached in (stages.store, stages.index, stages.people, get_settings):
        cached.cache_clear()


def _record(settings: Settings, key: str, found: list[Face]) -> tuple[Record, ObjectRef]:
    ref = ObjectRef(bucket=settings.bucket, key=key, etag="e", sequencer="0A")
    record = Record(
        image_id=image_id(settings.bucket, key),
        bucket=settings.bucket,
        key=key,
        status="done",
        faces=found,
        sequencer=ref.sequencer,
    )
    return record, ref


def _save(settings: Settings, key: str, found: list[Face]) -> str:
    record, ref = _record(settings, key, found)
    assert stages.save(record, ref, settings)
    return record.image_id


def _persons(settings: Settings) -> list[dict[str, Any]]:
    """`rudolph people --json`, as a script reads it."""
    return [json.loads(line) for line in _cli(settings, "people", "--json").splitlines()]


def _env(settings: Settings) -> dict[str, str]:
    return {
        "RUDOLPH_AWS_ENDPOINT_URL": str(settings.aws_endpoint_url),
        "RUDOLPH_OPENSEARCH_URL": settings.opensearch_url,
        "RUDOLPH_TABLE": settings.table,
        "RUDOLPH_INDEX": settings.index,
        "RUDOLPH_BUCKET": settings.bucket,
        "RUDOLPH_PEOPLE": settings.people,
    }


def _invoke(settings: Settings, *args: str) -> Any:
    get_settings.cache_clear()  # the command reads the environment it is given
    return CliRunner().invoke(main, list(args), env=_env(settings))


def _cli(settings: Settings, *args: str) -> str:
    result = _invoke(settings, *args)
    assert result.exit_code == 0, result.output
    return str(result.output)


def _search(settings: Settings, query: str) -> set[str]:
    index = search_index(settings)
    index.refresh()  # both indices show writes within a second; a test does not wait for it
    FaceIndex(settings).refresh()
    return {hit.image_id for hit in index.search(query, limit=100).hits}


def _upload_everything(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> dict[str, set[str]]:
    """Every photo under a random key; who -> the image ids with that person."""
    expected: dict[str, set[str]] = {"collins": set(), "hopper": set()}
    for name, (who, found) in faces.items():
        image = _save(settings, f"{uuid.uuid4().hex}/{name}.png", found)
        for person in ("collins", "hopper") if who == "both" else (who,):
            expected[person].add(image)
    return expected


def test_two_people_under_any_keys_come_out_as_two_persons_with_all_their_photos(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    expected = _upload_everything(settings, faces)
    listed = _persons(settings)
    assert [set(p["image_ids"]) for p in listed] == [expected["collins"], expected["hopper"]]
    assert [p["face_count"] for p in listed] == [len(expected["collins"]) + 1, 5]
    assert all(p["name"] is None for p in listed)
    assert all(set(p) == {"person_id", "name", "face_count", "image_ids"} for p in listed)
    # One face document per face, each with its person, in the face index.
    face_index = FaceIndex(settings)
    face_index.refresh()
    for person in listed:
        assert set(face_index.image_ids_of([person["person_id"]])) == set(person["image_ids"])
    # `rudolph show` gives each face its person.
    group = next(iter(expected["collins"] & expected["hopper"]))
    shown = json.loads(_cli(settings, "show", group, "--json"))
    by_person = sorted(face["person_id"] for face in shown["faces"])
    collins, hopper = listed[0]["person_id"], listed[1]["person_id"]
    assert by_person == sorted([collins, collins, hopper])
    assert all("embedding" in face for face in shown["faces"])


def test_a_duplicate_delivery_changes_nothing(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    record, ref = _record(settings, "again.png", faces["group"][1])
    assert stages.save(record, ref, settings)
    before = _persons(settings)
    for _ in range(2):
        assert stages.save(record, ref, settings)
    assert _persons(settings) == before
    assert [p["face_count"] for p in before] == [2, 1]


def test_naming_finds_exactly_its_photos_and_person_ids_too(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    expected = _upload_everything(settings, faces)
    hopper = next(p for p in _persons(settings) if set(p["image_ids"]) == expected["hopper"])
    _cli(settings, "people", "name", hopper["person_id"], "Grace Hopper")
    assert _search(settings, 'person:"Grace Hopper"') == expected["hopper"]
    assert _search(settings, 'person:"grace hopper"') == expected["hopper"]
    assert _search(settings, f"person:{hopper['person_id']}") == expected["hopper"]
    assert _search(settings, '-person:"Grace Hopper"') == expected["collins"] - expected["hopper"]
    assert _search(settings, 'person:"Ada Lovelace"') == set()
    named = [p for p in _persons(settings) if p["name"] == "Grace Hopper"]
    assert [p["person_id"] for p in named] == [hopper["person_id"]]


def test_forget_leaves_no_embedding_behind(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    expected = _upload_everything(settings, faces)
    persons = _persons(settings)
    collins = next(p for p in persons if set(p["image_ids"]) == expected["collins"])
    output = _cli(settings, "people", "forget", collins["person_id"])
    assert f"{len(expected['collins']) + 1} face(s)" in output
    assert [set(p["image_ids"]) for p in _persons(settings)] == [expected["hopper"]]
    face_index = FaceIndex(settings)
    face_index.refresh()
    assert face_index.image_ids_of([collins["person_id"]]) == []
    store = stages.store(settings)
    people = PeopleStore(settings, store)
    assert people.person(collins["person_id"]) is None
    assert not people.assignments([collins["person_id"]])
    for image in expected["collins"]:
        record = store.get(image)
        assert record is not None
        embedded = [face.embedding is not None for face in record.faces]
        # Only Hopper's face in the group picture keeps its embedding.
        assert sum(embedded) == (1 if image in expected["hopper"] else 0)
        assert len(people.assignments_of_image(image)) == sum(embedded)
    assert _search(settings, f"person:{collins['person_id']}") == set()
    with pytest.raises(UnknownPersonError, match="rudolph people"):
        People(settings).forget(collins["person_id"])


def test_deleting_an_image_deletes_its_faces(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    kept = _save(settings, "kept.png", faces["hopper"][1])
    gone = _save(settings, "gone.png", faces["hopper-crop"][1])
    stages.remove(ObjectRef(bucket=settings.bucket, key="gone.png", sequencer="0B"), settings)
    (person,) = _persons(settings)
    assert person["image_ids"] == [kept] and person["face_count"] == 1
    face_index = FaceIndex(settings)
    face_index.refresh()
    assert list(face_index.faces_where("image_id", [gone])) == []


def test_merge_name_and_similar_faces(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    expected = _upload_everything(settings, faces)
    collins, hopper = (p["person_id"] for p in _persons(settings))
    _cli(settings, "people", "name", hopper, "Grace Hopper")
    # Similar faces to Hopper's own photo: her other photos first, all under 0.6.
    FaceIndex(settings).refresh()  # searchable within a second anyway
    alone = next(i for i in expected["hopper"] if i not in expected["collins"])
    lines = _cli(settings, "people", "similar", alone, "0", "--json", "--limit", "4").splitlines()
    near = [json.loads(line) for line in lines]
    assert len(near) == 4 and all(n["person_id"] == hopper for n in near)
    assert all(n["distance"] < 0.6 for n in near) and alone not in {n["image_id"] for n in near}
    _cli(settings, "people", "merge", collins, hopper)
    (merged,) = _persons(settings)
    assert merged["person_id"] == collins and merged["name"] == "Grace Hopper"
    assert set(merged["image_ids"]) == expected["collins"] | expected["hopper"]
    assert _search(settings, f"person:{hopper}") == expected["collins"] | expected["hopper"]
    assert _search(settings, 'person:"Grace Hopper"') == expected["collins"] | expected["hopper"]
    # Recluster repairs the wrong merge: two persons again, each with all of its photos.
    assert "into 2 person(s)" in _cli(settings, "people", "recluster")
    split = _persons(settings)
    assert [set(p["image_ids"]) for p in split] == [expected["collins"], expected["hopper"]]
    assert split[0]["person_id"] == collins  # most of the merged person's faces are hers


def test_recluster_repairs_a_split_and_keeps_the_name(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    expected = _upload_everything(settings, faces)
    collins, hopper = (p["person_id"] for p in _persons(settings))
    # Two of Hopper's five faces wrongly made a person of their own.
    store = PeopleStore(settings)
    store.create_person("p000000000000001")
    for a in store.assignments([hopper])[:2]:
        assert store.move(a.image_id, a.face, hopper, "p000000000000001")
    _cli(settings, "people", "name", hopper, "Grace Hopper")
    assert len(_persons(settings)) == 3
    _cli(settings, "people", "recluster")
    assert _persons(settings) == [
        {
            "person_id": collins,
            "name": None,
            "face_count": len(expected["collins"]) + 1,
            "image_ids": sorted(expected["collins"]),
        },
        {
            "person_id": hopper,
            "name": "Grace Hopper",
            "face_count": 5,
            "image_ids": sorted(expected["hopper"]),
        },
    ]
    assert _search(settings, 'person:"Grace Hopper"') == expected["hopper"]


class _Together(FaceIndex):
    """A worker's face index whose first k-NN query waits until the other worker has made its
    own: both look before either writes, the worst moment for a new person."""

    def __init__(self, settings: Settings, barrier: threading.Barrier) -> None:
        super().__init__(settings)
        self.barrier = barrier
        self.waited = False

    def nearest(self, vector: Any, k: int = 20, within: float | None = None) -> list[Neighbour]:
        found = super().nearest(vector, k, within)
        if not self.waited:
            self.waited = True
            self.barrier.wait(timeout=30)
        return found


@pytest.mark.parametrize("round_", range(3))
def test_the_same_new_person_at_two_workers_at_once_is_one_person(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]], round_: int
) -> None:
    barrier = threading.Barrier(2)
    names = (
        ["hopper", "hopper-crop"],
        ["astronaut-crop", "astronaut"],
        ["hopper-large", "hopper-mirrored"],
    )[round_]

    def worker(name: str) -> dict[int, str]:
        record, ref = _record(settings, f"{name}.png", faces[name][1])
        assert stages.store(settings).put_final(record, ref.order)
        people = People(settings, faces=_Together(settings, barrier))
        return people.index_record(record, ref.order)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(worker, names))
    founders = {founder_id(image_id(settings.bucket, f"{n}.png"), 0) for n in names}
    (person,) = _persons(settings)
    assert person["person_id"] == min(founders)
    # Both founded a person (neither saw the other's face at first): the later id was merged.
    gone = PeopleStore(settings).person(max(founders))
    assert gone is not None and gone.merged_into == min(founders)
    assert person["face_count"] == 2
    assert sorted(person["image_ids"]) == sorted(
        image_id(settings.bucket, f"{n}.png") for n in names
    )
    # Both workers were told the person that stands (a face followed the merge).
    assert {r[0] for r in results} <= founders
    face_index = FaceIndex(settings)
    face_index.refresh()
    docs = list(face_index.faces_where("person_id", [person["person_id"]]))
    assert len(docs) == 2


def test_people_off_writes_nothing(
    moto_url: str, opensearch_url: str, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    off = _settings(moto_url, opensearch_url, people="off")
    init(off, say=lambda _: None)
    stripped = [face.model_copy(update={"embedding": None}) for face in faces["group"][1]]
    with_embeddings = faces["group"][1]
    _save(off, "a.png", stripped)
    # Even a record that carries embeddings (analysed with people on elsewhere): nothing.
    _save(off, "b.png", with_embeddings)
    face_index = FaceIndex(off)
    client = face_index._client
    assert not client.indices.exists(index=face_index.name)
    assert list(PeopleStore(off).assignments()) == []
    assert PeopleStore(off).persons() == []
    with pytest.raises(PeopleOffError, match="RUDOLPH_PEOPLE=on"):
        search_index(off).search('person:"Grace Hopper"')
    result = _invoke(off, "people", "--json")
    assert result.exit_code == 2 and "RUDOLPH_PEOPLE=on" in result.output
    for cached in (stages.store, stages.index, stages.people, get_settings):
        cached.cache_clear()


def _get(url: str, auth: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else None


def test_similar_faces_and_person_search_over_the_json_api_behind_its_auth(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    expected = _upload_everything(settings, faces)
    collins = _persons(settings)[0]["person_id"]  # most photos first: hers
    _cli(settings, "people", "name", collins, "Eileen Collins")
    alone = next(i for i in expected["collins"] if i not in expected["hopper"])
    FaceIndex(settings).refresh()  # searchable within a second anyway
    env = {**os.environ, **_env(settings), "RUDOLPH_WEB_AUTH": "ada:long-secret-9"}
    with web_server(env) as url:
        similar = f"{url}/api/images/{alone}/faces/0/similar?limit=3"
        assert _get(similar)[0] == 401
        status, body = _get(similar, "ada:long-secret-9")
        assert status == 200, body
        assert body["image_id"] == alone and body["face"] == 0
        assert len(body["similar"]) == 3
        assert all(s["person_id"] == collins and s["distance"] < 0.6 for s in body["similar"])
        assert all(s["page"] == f"/images/{s['image_id']}" for s in body["similar"])
        status, body = _get(f"{url}/api/images/{alone}/faces/7/similar", "ada:long-secret-9")
        assert status == 404 and "face number 7" in body["detail"]
        query = urllib.parse.quote('person:"Eileen Collins"')
        status, body = _get(f"{url}/api/search?q={query}&limit=50", "ada:long-secret-9")
        assert status == 200 and {h["image_id"] for h in body["hits"]} == expected["collins"]
    off = {**env, "RUDOLPH_PEOPLE": "off"}
    with web_server(off) as url:
        status, body = _get(f"{url}/api/images/{alone}/faces/0/similar", "ada:long-secret-9")
        assert status == 400 and "RUDOLPH_PEOPLE=on" in body["detail"]
        status, body = _get(f"{url}/api/search?q={query}", "ada:long-secret-9")
        assert status == 400 and "RUDOLPH_PEOPLE=on" in body["detail"]


def test_photos_uploaded_to_the_fleet_come_out_as_two_persons(
    moto_url: str, opensearch_url: str, redis_url: str
) -> None:
    """The whole way: uploads under random keys, S3 events, the listener, a worker with two
    processes (whose aggregates may cluster at the same moment)."""
    photos = two_people()
    with fleet(moto_url, opensearch_url, redis_url, RUDOLPH_PEOPLE="on") as running:
        who_of = {}
        for name, (who, picture) in photos.items():
            key = f"{uuid.uuid4().hex[:6]}/{name}.jpg"
            running.upload(key, encode(picture))
            who_of[running.image_id(key)] = who
        for key in list(who_of):
            poll(lambda key=key: running.store.get(key), 300, f"the record of {key}")
        expected = [
            {image for image, who in who_of.items() if who == person}
            for person in ("collins", "hopper")
        ]
        people = People(running.settings)

        def two_persons() -> bool:
            running.check_alive()
            return [set(s.image_ids) for s in people.summaries()] == expected

        poll(two_persons, 60, "two persons with all their photos")
        running.idle()
        assert [s.face_count for s in people.summaries()] == [5, 4]


def test_a_new_upload_of_the_key_replaces_its_faces(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    _save(settings, "hopper.png", faces["hopper"][1])
    record, ref = _record(settings, "same.png", faces["group"][1])
    assert stages.save(record, ref, settings)
    # The same key uploaded again (a newer event): Hopper alone, one face instead of three.
    newer = ref.model_copy(update={"sequencer": "0B"})
    assert stages.save(
        record.model_copy(update={"faces": faces["hopper-crop"][1]}), newer, settings
    )
    (hopper,) = _persons(settings)
    assert hopper["face_count"] == 2
    assert set(hopper["image_ids"]) == {record.image_id, image_id(settings.bucket, "hopper.png")}
    assert set(PeopleStore(settings).assignments_of_image(record.image_id)) == {0}
    face_index = FaceIndex(settings)
    face_index.refresh()
    assert [d["face"] for d in face_index.faces_where("image_id", [record.image_id])] == [0]
    # The older event, delivered again late, changes nothing.
    assert not stages.save(record, ref, settings)
    assert _persons(settings) == [hopper]


@pytest.mark.parametrize("person_id", ["p0000000000000ff", "nobody", "\x1b[31mred" + "x" * 3000])
def test_an_unknown_person_is_an_error_that_says_where_the_ids_are(
    settings: Settings, person_id: str
) -> None:
    for args in (
        ["name", person_id, "Ada"],
        ["merge", person_id, person_id + "0"],
        ["forget", person_id],
    ):
        result = _invoke(settings, "people", *args)
        assert result.exit_code == 2, result.output
        assert "`rudolph people` lists the persons" in result.output
        assert "\x1b" not in result.output


def test_reindex_writes_the_face_index_again_from_the_table(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    expected = _upload_everything(settings, faces)
    before = _persons(settings)
    face_index = FaceIndex(settings)
    face_index._client.indices.delete(index=face_index.name)
    output = _cli(settings, "reindex")
    assert f"faces indexed     {sum(p['face_count'] for p in before)}" in output
    assert _persons(settings) == before
    for person, images in zip(before, (expected["collins"], expected["hopper"]), strict=True):
        assert set(FaceIndex(settings).image_ids_of([person["person_id"]])) == images
        assert _search(settings, f"person:{person['person_id']}") == images


def test_recluster_gives_back_an_id_a_merge_took(
    settings: Settings, faces: dict[str, tuple[str, list[Face]]]
) -> None:
    def image(name: str) -> str:
        return image_id(settings.bucket, f"{name}.png")

    # Hopper's first face saved is her smallest (image id, face): recluster derives her new
    # person's id from it, the very id of the person the merge took away.
    for name in sorted(["hopper", "hopper-crop"], key=image):
        _save(settings, f"{name}.png", faces[name][1])
    for name in ("astronaut", "astronaut-crop", "astronaut-small"):
        _save(settings, f"{name}.png", faces[name][1])
    collins, hopper = (p["person_id"] for p in _persons(settings))
    assert hopper == founder_id(min(image("hopper"), image("hopper-crop")), 0)
    _cli(settings, "people", "merge", collins, hopper)
    _cli(settings, "people", "recluster")
    assert [(p["person_id"], len(p["image_ids"])) for p in _persons(settings)] == [
        (collins, 3),
        (hopper, 2),
    ]
    assert _search(settings, f"person:{hopper}") == {image("hopper"), image("hopper-crop")}
