"""The OpenSearch index against real OpenSearch 2.5.0 on 127.0.0.1 (the session's server)."""

from __future__ import annotations

import copy
import http.server
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opensearchpy import AWSV4SignerAuth, OpenSearch

from rudolph import opensearch_node
from rudolph.errors import ConfigurationError, IndexUnavailableError
from rudolph.index import INDEX_SETTINGS, MAPPING, SearchIndex, client, to_document
from rudolph.query import QuerySyntaxError
from rudolph.record import (
    Box,
    Emotion,
    Face,
    Label,
    Pose,
    Quality,
    Record,
    Smile,
    TextDetection,
    image_id,
)
from rudolph.settings import Settings
from tests.servers import free_port, opensearch_server, reachable_by_server

BUCKET = "reindeer-dropzone"
BOX = Box(left=0.1, top=0.1, width=0.5, height=0.2)


def make_record(
    key: str,
    labels: Sequence[Label] = (),
    lines: Sequence[str] = (),
    faces: int = 0,
) -> Record:
    text: list[TextDetection] = []
    for n, line in enumerate(lines):
        line_id = len(text)
        text.append(TextDetection(text=line, type="LINE", confidence=97.0, id=line_id, box=BOX))
        text += [
            TextDetection(
                text=word,
                type="WORD",
                confidence=95.0,
                id=100 * (n + 1) + i,
                parent_id=line_id,
                box=BOX,
            )
            for i, word in enumerate(line.split())
        ]
    return Record(
        image_id=image_id(BUCKET, key),
        bucket=BUCKET,
        key=key,
        size=1234,
        content_type="image/jpeg",
        metadata={"content-id": "cms-42"},
        width=640,
        height=480,
        status="done",
        labels=list(labels),
        text=text,
        faces=[Face(confidence=99.0, box=BOX) for _ in range(faces)],
        errors={"faces": "InvalidImageFormat: not really"} if not faces else {},
        event_time="2024-05-01T12:00:00.000Z",
        analyzed_at="2024-05-01T12:00:03.250000+00:00",
    )


CAT = make_record(
    "pets/tabby.jpg",
    [
        Label(name="Cat", confidence=88.4, parents=["Pet", "Mammal", "Animal"]),
        Label(name="Pet", confidence=88.0, parents=["Animal"]),
        Label(name="Mammal", confidence=88.0, parents=["Animal"]),
        Label(name="Animal", confidence=88.0),
    ],
)
CAR = make_record(
    "cars/red.jpg",
    [
        Label(
            name="Car",
            confidence=97.1,
            parents=["Vehicle", "Transportation"],
            aliases=["Automobile"],
        ),
        Label(name="Vehicle", confidence=97.1, parents=["Transportation"]),
    ],
)
SIGN = make_record(
    "street/corner.jpg",
    [Label(name="Sign", confidence=91.0, parents=["Symbol"])],
    lines=["NO PARKING", "TOW AWAY ZONE"],
)
PEOPLE = make_record(
    "party/group.jpg", [Label(name="Person", confidence=99.2, aliases=["Human"])], faces=2
)
CAT_FOOD = make_record(
    "shop/shelf.jpg",
    [Label(name="Shelf", confidence=80.0, parents=["Furniture"])],
    lines=["PREMIUM cat food", "2 for 1"],
)


def fresh_index(url: str) -> SearchIndex:
    """A SearchIndex over an alias of its own, so tests do not see each other's documents."""
    return SearchIndex(Settings(opensearch_url=url, index=f"rudolph-test-{uuid.uuid4().hex[:8]}"))


@pytest.fixture(scope="module")
def photos(opensearch_url: str) -> SearchIndex:
    index = fresh_index(opensearch_url)
    index.ensure()
    for record in (CAT, CAR, SIGN, PEOPLE, CAT_FOOD):
        index.put(record)
    index.refresh()
    return index


# -- the index and its alias


def test_ensure_is_idempotent_and_points_the_alias_at_a_versioned_index(
    opensearch_url: str,
) -> None:
    index = fresh_index(opensearch_url)
    first = index.ensure()
    assert first == f"{index.alias}-v1"
    assert index.ensure() == first
    assert SearchIndex(index.settings).ensure() == first  # another process, same answer

    raw = OpenSearch(opensearch_url)
    assert list(raw.indices.get_alias(name=index.alias)) == [first]
    mapping = raw.indices.get_mapping(index=index.alias)[first]["mappings"]
    assert mapping["dynamic"] == "strict"
    properties = mapping["properties"]
    assert set(properties) == set(MAPPING["properties"])
    assert properties["labels"]["normalizer"] == "lowercase"
    assert properties["labels"]["fields"]["text"]["analyzer"] == "rudolph_label"
    assert mapping["_meta"]["rudolph_schema"] == MAPPING["_meta"]["rudolph_schema"]
    assert properties["label_details"]["type"] == "nested"
    assert properties["errors"] == {"type": "object", "enabled": False}
    analysis = raw.indices.get_settings(index=first)[first]["settings"]["index"]["analysis"]
    assert analysis["normalizer"]["lowercase"]["filter"] == ["lowercase", "asciifolding"]
    # The synonym rules ship inline (no synonyms_path file), after the english stemmer.
    assert "car, automobile, motorcar, auto" in analysis["filter"]["rudolph_synonyms"]["synonyms"]
    assert analysis["analyzer"]["rudolph_synonyms"]["filter"][-2:] == [
        "rudolph_english",
        "rudolph_synonyms",
    ]


def test_ensure_takes_the_next_free_version(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    OpenSearch(opensearch_url).indices.create(index=f"{index.alias}-v1")  # not ours, no alias
    assert index.ensure() == f"{index.alias}-v2"


def test_ensure_refuses_an_alias_over_another_mapping(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    OpenSearch(opensearch_url).indices.create(
        index=f"{index.alias}-old",
        body={
            "mappings": {"properties": {"labels": {"type": "text"}}},
            "aliases": {index.alias: {}},
        },
    )
    with pytest.raises(ConfigurationError, match="does not have rudolph's mapping") as caught:
        index.ensure()
    assert "labels is text, not keyword" in str(caught.value)
    assert "run `rudolph reindex`" in str(caught.value)
    assert "RUDOLPH_INDEX" in str(caught.value)


def test_ensure_refuses_an_index_built_with_other_synonyms(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    older = copy.deepcopy(MAPPING)
    older["_meta"]["rudolph_schema"] = "an-older-one"  # same fields, other analysis settings
    OpenSearch(opensearch_url).indices.create(
        index=f"{index.alias}-v1",
        body={"settings": INDEX_SETTINGS, "mappings": older, "aliases": {index.alias: {}}},
    )
    with pytest.raises(ConfigurationError, match="other analysis settings or synonyms") as caught:
        index.ensure()
    assert "run `rudolph reindex`" in str(caught.value)


def test_ensure_refuses_an_index_named_like_the_alias(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    OpenSearch(opensearch_url).indices.create(index=index.alias)
    with pytest.raises(ConfigurationError, match="is an index, not an alias"):
        index.ensure()


@pytest.mark.servers  # starts an OpenSearch of its own, twice
def test_data_survives_a_restart(tmp_path: Path) -> None:
    with opensearch_server(tmp_path) as url:
        index = fresh_index(url)
        index.put(CAT)  # creates the index on first write
    with opensearch_server(tmp_path) as url:
        assert SearchIndex(index.settings.model_copy(update={"opensearch_url": url})).count() == 1


def test_a_relative_data_folder_is_made_absolute_for_the_jvm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rudolph dev` keeps its node under `.rudolph/opensearch`, relative to where it runs; the
    JVM starts elsewhere, so every path it is given must be absolute."""
    monkeypatch.chdir(reachable_by_server(tmp_path))
    launch = opensearch_node.prepare(Path(".rudolph") / "opensearch", free_port(), free_port())
    paths = [a.split("=", 1)[1] for a in launch.argv if a.startswith("-Epath.")]
    assert paths and all(Path(p).is_absolute() for p in paths)
    options = (tmp_path / ".rudolph" / "opensearch" / "config" / "jvm.options").read_text()
    assert f"file={tmp_path.resolve()}/.rudolph/opensearch/logs/gc.log" in options
    assert launch.env["OPENSEARCH_PATH_CONF"] == str(tmp_path / ".rudolph/opensearch/config")


# -- documents


def test_a_document_has_only_mapped_fields() -> None:
    document = to_document(SIGN)
    assert set(document) == set(MAPPING["properties"])
    assert document["text"] == ["NO PARKING", "TOW AWAY ZONE"]
    assert document["text_words"] == ["NO", "PARKING", "TOW", "AWAY", "ZONE"]
    assert document["has_text"] is True
    assert document["metadata"] == ["content-id=cms-42"]
    assert to_document(CAR)["label_parents"] == ["Vehicle", "Transportation"]
    assert to_document(CAR)["label_aliases"] == ["Automobile"]
    assert to_document(PEOPLE)["face_count"] == 2


SMILING = Face(
    confidence=99.5,
    box=BOX,
    smile=Smile(value=True, confidence=96.0),
    emotions=[Emotion(type="HAPPY", confidence=93.9), Emotion(type="CALM", confidence=1.5)],
    pose=Pose(roll=-5.3, yaw=9.5, pitch=-21.1),
    quality=Quality(brightness=72.0, sharpness=38.9),
)
FROWNING = Face(
    confidence=98.0,
    box=BOX,
    smile=Smile(value=False, confidence=80.0),
    emotions=[Emotion(type="SAD", confidence=60.0)],
)


def test_face_attributes_become_counts_emotions_and_one_entry_per_face(
    opensearch_url: str,
) -> None:
    record = PEOPLE.model_copy(
        update={"faces": [FROWNING, SMILING, Face(confidence=97.0, box=BOX)]}
    )
    document = to_document(record)
    assert (document["smiling_faces"], document["unsmiling_faces"]) == (1, 1)
    assert document["face_emotions"] == ["SAD", "HAPPY"]
    # most confident first; what a face lacks is left out, not null
    assert document["face_details"] == [
        {
            "confidence": 99.5,
            "smile": True,
            "smile_confidence": 96.0,
            "emotion": "HAPPY",
            "emotion_confidence": 93.9,
            "roll": -5.3,
            "yaw": 9.5,
            "pitch": -21.1,
            "brightness": 72.0,
            "sharpness": 38.9,
        },
        {
            "confidence": 98.0,
            "smile": False,
            "smile_confidence": 80.0,
            "emotion": "SAD",
            "emotion_confidence": 60.0,
        },
        {"confidence": 97.0},
    ]
    crowd = record.model_copy(update={"faces": [SMILING] * 150})
    assert len(to_document(crowd)["face_details"]) == 100
    assert to_document(crowd)["smiling_faces"] == 150
    # The strict mapping takes it (any field it lacked would be refused).
    index = fresh_index(opensearch_url)
    index.put(record)
    index.refresh()
    stored = index.get(record.image_id)
    assert stored is not None and stored["face_details"] == document["face_details"]


def test_putting_a_record_twice_leaves_one_document(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    index.put(CAT)
    index.put(CAT.model_copy(update={"status": "partial"}))
    index.refresh()
    assert index.count() == 1
    document = index.get(CAT.image_id)
    assert document is not None
    assert document["status"] == "partial"
    assert document["labels"] == ["Cat", "Pet", "Mammal", "Animal"]
    assert document["errors"] == {"faces": "InvalidImageFormat: not really"}


def test_delete_removes_and_a_missing_document_is_fine(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    index.put(CAR)
    index.refresh()
    assert index.search("car").hits
    index.delete(CAR.image_id)
    index.delete(CAR.image_id)  # already gone
    index.delete("no-such-image")
    index.refresh()
    assert index.get(CAR.image_id) is None
    assert index.count() == 0
    assert index.search("car").hits == []


def test_reads_before_anything_is_indexed_find_nothing(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    assert index.count() == 0
    assert index.get(CAT.image_id) is None
    assert index.search("cat").hits == []
    index.delete(CAT.image_id)


# -- search


def test_cat_finds_the_cat_first_because_of_its_label(photos: SearchIndex) -> None:
    hits = photos.search("cat").hits
    assert hits[0].image_id == CAT.image_id
    assert hits[0].bucket == BUCKET
    assert hits[0].key == "pets/tabby.jpg"
    assert 'label "Cat" (88%)' in hits[0].matched


def test_a_capitalised_plural_finds_the_label(photos: SearchIndex) -> None:
    hits = photos.search("Cats").hits
    assert hits[0].image_id == CAT.image_id
    assert hits[0].matched[0] == 'label "Cat" (88%)'


def test_an_alias_finds_the_car(photos: SearchIndex) -> None:
    hits = photos.search("automobile").hits
    assert [hit.image_id for hit in hits] == [CAR.image_id]
    # A synonym of the label (WordNet's lemmas of car) ranks above the alias.
    assert hits[0].matched == ['label "Car" (97%)', 'alias "Automobile"']


def test_a_parent_category_finds_the_car(photos: SearchIndex) -> None:
    # Vehicle is also one of the car's labels: remove that to see the parent alone.
    hits = photos.search("transportation").hits
    assert [hit.image_id for hit in hits] == [CAR.image_id]
    assert 'parent "Transportation"' in hits[0].matched
    hits = photos.search("vehicle").hits
    assert hits[0].image_id == CAR.image_id
    assert 'parent "Vehicle"' in hits[0].matched


@pytest.mark.parametrize("query", ["no parking", "NO PARKING", "parking"])
def test_ocr_text_finds_the_sign(photos: SearchIndex, query: str) -> None:
    hits = photos.search(query).hits
    assert [hit.image_id for hit in hits] == [SIGN.image_id]
    assert hits[0].matched == ['text "NO PARKING"']


def test_a_label_ranks_above_the_same_word_in_text(photos: SearchIndex) -> None:
    hits = photos.search("cat").hits
    assert [hit.image_id for hit in hits] == [CAT.image_id, CAT_FOOD.image_id]
    assert hits[0].score > hits[1].score
    assert hits[1].matched == ['text "PREMIUM cat food"']


def test_an_exact_label_ranks_above_a_parent(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    animal = make_record("zoo/animal.jpg", [Label(name="Animal", confidence=60.0)])
    index.put(CAT)  # Animal is a label here too, and a parent of Cat
    index.put(animal)
    index.put(make_record("zoo/dog.jpg", [Label(name="Dog", confidence=99, parents=["Animal"])]))
    index.refresh()
    hits = index.search("animal").hits
    # Both exact labels before the parent-only dog; the more confident label first.
    assert [hit.key for hit in hits] == ["pets/tabby.jpg", "zoo/animal.jpg", "zoo/dog.jpg"]
    assert hits[2].matched == ['parent "Animal"']


def test_people(photos: SearchIndex) -> None:
    hits = photos.search("person").hits
    assert [hit.image_id for hit in hits] == [PEOPLE.image_id]
    document = photos.get(PEOPLE.image_id)
    assert document is not None
    assert document["face_count"] == 2


@pytest.mark.parametrize(
    "query", ['"', "\\", "*", ":", "{", '" OR * : { \\', "labels:*", "*:*", "{}", "cat)"]
)
def test_query_syntax_is_a_clear_error_not_a_wider_search(photos: SearchIndex, query: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        photos.search(query)
    assert 1 <= caught.value.column <= len(query) + 1
    assert "^" in str(caught.value).splitlines()[-1]


def test_special_characters_inside_a_phrase_are_just_text(photos: SearchIndex) -> None:
    hits = photos.search('"cat * : { \\\\ \\""').hits  # a phrase: cat, then punctuation
    assert [hit.image_id for hit in hits] == [CAT.image_id, CAT_FOOD.image_id]
    hits = photos.search('"cat*"').hits
    assert [hit.image_id for hit in hits] == [CAT.image_id, CAT_FOOD.image_id]


def test_an_empty_query_lists_every_image(photos: SearchIndex) -> None:
    page = photos.search("   ")
    assert page.total == 5
    assert len(page.hits) == 5


def test_limits(photos: SearchIndex) -> None:
    assert len(photos.search("animal", limit=1).hits) == 1
    with pytest.raises(ValueError, match="limit"):
        photos.search("cat", limit=0)
    with pytest.raises(ValueError, match="at most"):
        photos.search("cat " * 100)


# -- the client


def test_basic_auth_comes_from_the_url_and_stays_out_of_the_host() -> None:
    settings = Settings(
        opensearch_url="https://rudolph:s%40cret@search.example.com:9200",
        opensearch_auth="basic",
    )
    opensearch = client(settings)
    connection = opensearch.transport.connection_pool.connections[0]
    assert connection.host == "https://search.example.com:9200"
    assert "s@cret" not in connection.host
    # urllib3 sends the credentials as a Basic header built from the decoded pair
    assert connection.headers["authorization"].startswith("Basic ")
    import base64

    encoded = connection.headers["authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded).decode() == "rudolph:s@cret"


def test_basic_auth_without_credentials_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="user:password"):
        client(Settings(opensearch_url="https://search.example.com", opensearch_auth="basic"))


def test_credentials_with_auth_none_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="RUDOLPH_OPENSEARCH_AUTH=basic"):
        client(Settings(opensearch_url="https://u:p@search.example.com"))


@pytest.mark.parametrize("url", ["search.example.com:9200", "ftp://x", "http://", "http://h:port"])
def test_a_bad_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="RUDOLPH_OPENSEARCH_URL"):
        client(Settings(opensearch_url=url))


def test_sigv4_signs_with_botocore_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = Settings(
        opensearch_url="https://search-rudolph.eu-west-1.es.amazonaws.com",
        opensearch_auth="sigv4",
        aws_region="eu-west-1",
    )
    opensearch = client(settings)
    connection = opensearch.transport.connection_pool.connections[0]
    auth = connection.session.auth
    assert isinstance(auth, AWSV4SignerAuth)
    assert auth.signer.region == "eu-west-1"
    assert auth.signer.service == "es"
    assert auth.signer.credentials.access_key == "AKIDEXAMPLE"
    # It signs (locally, no request is sent) for the region and service.
    import requests

    signed = auth(requests.Request("GET", settings.opensearch_url + "/_search").prepare())
    assert signed.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/es/aws4_request" in signed.headers["Authorization"]


def test_an_unreachable_server_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    index = SearchIndex(Settings(opensearch_url=url))
    with pytest.raises(IndexUnavailableError) as caught:
        index.search("cat")
    message = str(caught.value)
    assert url in message
    assert "start it with `rudolph dev` or set RUDOLPH_OPENSEARCH_URL" in message
    assert caught.value.retryable
    with pytest.raises(IndexUnavailableError):
        index.put(CAT)


def test_words_of_the_key_are_searched_last(photos: SearchIndex) -> None:
    hits = photos.search("tabby").hits
    assert [hit.image_id for hit in hits] == [CAT.image_id]
    assert hits[0].matched == ['key "pets/tabby.jpg"']


def test_key_folders_are_prefix_terms(photos: SearchIndex, opensearch_url: str) -> None:
    found = OpenSearch(opensearch_url).search(
        index=photos.alias, body={"query": {"term": {"key.path": "pets"}}}
    )
    assert [hit["_id"] for hit in found["hits"]["hits"]] == [CAT.image_id]


def test_a_write_recreates_a_removed_alias(opensearch_url: str) -> None:
    index = fresh_index(opensearch_url)
    index.put(CAT)
    raw = OpenSearch(opensearch_url)
    raw.indices.delete(index=f"{index.alias}-v1")
    index.put(CAR)  # this SearchIndex believed the index existed
    index.refresh()
    assert list(raw.indices.get_alias(name=index.alias)) == [f"{index.alias}-v1"]  # free again
    assert index.count() == 1


@pytest.fixture
def not_opensearch() -> Iterator[str]:
    """A server that answers 404 with no body to everything, like a wrong URL or proxy."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_one

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_404_from_something_else_is_not_an_empty_index(not_opensearch: str) -> None:
    index = SearchIndex(Settings(opensearch_url=not_opensearch))
    for call in (index.count, lambda: index.search("cat"), lambda: index.get("x"), index.ensure):
        with pytest.raises(ConfigurationError, match="RUDOLPH_OPENSEARCH_URL is the OpenSearch"):
            call()


def test_an_unusable_index_name_says_what_to_use(opensearch_url: str) -> None:
    index = SearchIndex(Settings(opensearch_url=opensearch_url, index="Rudolph Images"))
    with pytest.raises(ConfigurationError, match=r"RUDOLPH_INDEX='Rudolph Images'.*lowercase"):
        index.ensure()


def test_face_attributes_are_bounded_in_the_record() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="less than or equal to 100"):
        Smile(value=True, confidence=100.5)
    with pytest.raises(ValidationError, match="greater than or equal to -180"):
        Pose(roll=0, yaw=-181, pitch=0)
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        Quality(brightness=50, sharpness=250)
    with pytest.raises(ValidationError, match="literal_error"):
        Emotion(type="JOY", confidence=50)  # type: ignore[arg-type]
    happy = Emotion(type="HAPPY", confidence=50)
    with pytest.raises(ValidationError, match="an emotion type is given twice"):
        Face(confidence=99, box=BOX, emotions=[happy, happy])
    with pytest.raises(ValidationError, match="at most 9 items"):
        Face(confidence=99, box=BOX, emotions=[Emotion(type="CALM", confidence=1)] * 10)
    # absent, not null: a face without attributes dumps as before they existed
    assert set(Face(confidence=99, box=BOX).model_dump()) == {
        "confidence",
        "box",
        "landmarks",
        "attributes",
    }
