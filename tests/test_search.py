"""Search over a real index (OpenSearch 2.5.0): the sample photos analysed by the local
backend, plus records shaped like Rekognition's output. Hits, their order, facets, pagination,
errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from rudolph.analysis import analyze
from rudolph.backends import get_analyzer
from rudolph.cli import main
from rudolph.demo import sample_photos
from rudolph.errors import SearchRefusedError
from rudolph.index import SearchIndex, SearchPage
from rudolph.query import QuerySyntaxError
from rudolph.record import Emotion, Face, Instance, Label, Record, Smile, image_id
from rudolph.settings import Settings, get_settings
from rudolph.source import ImageInput
from rudolph.vocabulary import FEATURES
from tests.test_index import BOX, fresh_index, make_record

SAMPLES = "reindeer-dropzone"
REKOGNITION = "rekognition-bucket"
ANIMAL = ["Mammal", "Animal"]


def rekognition(key: str, labels: list[Label], **changes: object) -> Record:
    """A record as the Rekognition backend writes it: parents, no aliases."""
    record = make_record(key, labels, lines=changes.pop("lines", ()))  # type: ignore[arg-type]
    return record.model_copy(
        update={"bucket": REKOGNITION, "image_id": image_id(REKOGNITION, key)} | changes
    )


CAR = rekognition(
    "street/car.jpg",
    [
        Label(name="Car", confidence=98.0, parents=["Vehicle", "Transportation"]),
        Label(name="Vehicle", confidence=98.0, parents=["Transportation"]),
        Label(name="Transportation", confidence=98.0),
    ],
    lines=["NDV 9IF"],
    metadata={"content-id": "cms-7"},
    event_time="2024-06-01T10:00:00Z",
)
PUPPY = rekognition(
    "pets/puppy.jpg",
    [
        Label(name="Dog", confidence=96.0, parents=["Pet", "Canine", *ANIMAL]),
        Label(name="Puppy", confidence=92.0, parents=["Dog", "Pet", "Canine", *ANIMAL]),
        Label(name="Pet", confidence=96.0, parents=["Animal"]),
        Label(name="Animal", confidence=96.0),
    ],
    event_time="2024-06-01T11:00:00Z",
)
KITTEN = rekognition(
    "pets/kitten.jpg",
    [
        Label(name="Cat", confidence=70.0, parents=["Pet", *ANIMAL]),
        Label(name="Animal", confidence=70.0),
    ],
    event_time="2024-06-01T12:00:00Z",
)
CROWD = rekognition(
    "people/crowd.jpg",
    [Label(name="Person", confidence=99.0, instances=[Instance(confidence=99.0, box=BOX)] * 3)],
    status="partial",
    faces=[
        # as Rekognition's DetectFaces says: one smiles, one is surprised, one was not asked
        Face(
            confidence=99.0,
            box=BOX,
            smile=Smile(value=True, confidence=93.0),
            emotions=[Emotion(type="HAPPY", confidence=88.8), Emotion(type="CALM", confidence=1.6)],
        ),
        Face(
            confidence=99.0,
            box=BOX,
            smile=Smile(value=False, confidence=71.5),
            emotions=[Emotion(type="SURPRISED", confidence=55.6)],
        ),
        Face(confidence=99.0, box=BOX),
    ],
    errors={"text": "ThrottlingException: try again"},
    event_time="2024-06-01T13:00:00Z",
)
RECORDS = [CAR, PUPPY, KITTEN, CROWD]


def sample_key(name: str) -> str:
    return f"samples/{name}.jpg"


@pytest.fixture(scope="module")
def index(opensearch_url: str) -> SearchIndex:
    """The 7 sample photos (local backend, real models) and the 4 Rekognition-shaped records."""
    search_index = fresh_index(opensearch_url)
    analyzer = get_analyzer(Settings())
    for number, photo in enumerate(sample_photos()):
        record = analyze(ImageInput.from_path(photo), analyzer, FEATURES)
        key = f"samples/{photo.name}"
        search_index.put(
            record.model_copy(
                update={
                    "image_id": image_id(SAMPLES, key),
                    "bucket": SAMPLES,
                    "key": key,
                    "event_time": f"2024-05-0{number + 1}T09:00:00Z",
                }
            )
        )
    for record in RECORDS:
        search_index.put(record)
    search_index.refresh()
    return search_index


def keys(page: SearchPage) -> list[str | None]:
    return [hit.key for hit in page.hits]


# -- free words, ranking, synonyms and plurals


def test_a_label_beats_a_weaker_label(index: SearchIndex) -> None:
    page = index.search("cat")
    assert keys(page) == [sample_key("cat"), "pets/kitten.jpg"]
    assert page.hits[0].matched[0].startswith('label "Cat"')
    assert page.hits[0].labels[0] == "Animal"  # most confident first
    assert page.total == 2


@pytest.mark.parametrize("query", ["kitten", "kittens", "Kitty"])
def test_kittens_find_cats(index: SearchIndex, query: str) -> None:
    page = index.search(query)
    assert keys(page) == [sample_key("cat"), "pets/kitten.jpg"]
    assert page.hits[1].matched[0] == 'label "Cat" (70%)'


@pytest.mark.parametrize("query", ["automobile", "automobiles", "motorcar", "cars"])
def test_automobiles_find_the_car(index: SearchIndex, query: str) -> None:
    page = index.search(query)
    assert keys(page) == ["street/car.jpg"]
    assert page.hits[0].matched[0] == 'label "Car" (98%)'


def test_puppies_find_the_dog(index: SearchIndex) -> None:
    page = index.search("puppies")
    assert keys(page) == ["pets/puppy.jpg"]
    assert page.hits[0].matched[:2] == ['label "Puppy" (92%)', 'label "Dog" (96%)']


def test_a_parent_and_text(index: SearchIndex) -> None:
    assert keys(index.search("transportation"))[0] == "street/car.jpg"
    page = index.search("no parking")
    assert keys(page) == [sample_key("no parking")]
    assert page.hits[0].matched == ['text "NO PARKING"', 'key "samples/no parking.jpg"']
    assert keys(index.search('"hopper"')) == [sample_key("grace hopper")]


def test_adjacent_words_must_all_match(index: SearchIndex) -> None:
    assert keys(index.search("person camera")) == [sample_key("cameraman")]
    assert keys(index.search("person rocket")) == []


# -- fields and operators


def test_label_field_is_labels_only(index: SearchIndex) -> None:
    assert keys(index.search("label:car")) == ["street/car.jpg"]
    assert keys(index.search("label:automobile")) == ["street/car.jpg"]
    assert keys(index.search("label:parking")) == []  # only in OCR text


def test_text_field_is_ocr_text_only(index: SearchIndex) -> None:
    assert keys(index.search('text:"no parking"')) == [sample_key("no parking")]
    assert keys(index.search("text:ndv")) == ["street/car.jpg"]
    assert keys(index.search('text:"parking no"')) == []  # a phrase keeps its order


def test_faces(index: SearchIndex) -> None:
    with_faces = ["people/crowd.jpg", sample_key("grace hopper"), sample_key("cameraman")]
    assert keys(index.search("faces>=1", sort="newest"))[:3] == with_faces
    assert index.search("faces>=1").total == 4
    assert keys(index.search("faces>=2")) == ["people/crowd.jpg"]
    assert index.search("faces:0").total == 7
    assert index.search("faces<1").total == 7
    assert keys(index.search("person faces:1", sort="oldest")) == [
        sample_key("astronaut"),
        sample_key("cameraman"),
        sample_key("grace hopper"),
    ]


def test_smiles_and_emotions(index: SearchIndex) -> None:
    """The local backend on the sample portraits (the astronaut smiles; Grace Hopper is calm;
    the cameraman is read as sad) and the crowd as Rekognition describes it."""
    assert set(keys(index.search("smile:yes"))) == {sample_key("astronaut"), "people/crowd.jpg"}
    assert set(keys(index.search("smile:no"))) == {
        sample_key("grace hopper"),
        sample_key("cameraman"),
    }
    assert keys(index.search("emotion:happy", sort="oldest")) == [
        sample_key("astronaut"),
        "people/crowd.jpg",
    ]
    assert keys(index.search("emotion:CALM")) == [sample_key("grace hopper")]
    assert keys(index.search("emotion:surprised")) == ["people/crowd.jpg"]
    assert keys(index.search("emotion:fear")) == []
    assert set(keys(index.search("faces>=1 -smile:yes"))) == {
        sample_key("grace hopper"),
        sample_key("cameraman"),
    }
    assert keys(index.search("person smile:yes faces:1")) == [sample_key("astronaut")]
    with pytest.raises(QuerySyntaxError, match="use smile:yes or smile:no"):
        index.search("smile:maybe")
    with pytest.raises(QuerySyntaxError, match="no emotion 'joy'"):
        index.search("emotion:joy")


def test_confidence_bounds_label_terms(index: SearchIndex) -> None:
    assert keys(index.search("cat confidence>=80")) == [sample_key("cat")]
    # The kitten's Cat at 70%, then the sample's Tiger Cat at 33% (a word of the label).
    assert keys(index.search("cat confidence<80")) == ["pets/kitten.jpg", sample_key("cat")]
    assert keys(index.search("kittens confidence>=80")) == [sample_key("cat")]
    # Alone, it keeps images with some label that confident.
    assert "pets/kitten.jpg" not in keys(index.search("confidence>=90", limit=50))


def test_count_bounds_label_terms_by_their_instances(index: SearchIndex) -> None:
    assert keys(index.search("label:person count>=3")) == ["people/crowd.jpg"]
    assert keys(index.search("person count>=2")) == ["people/crowd.jpg"]
    assert index.search("label:person count>3").total == 0
    # The local detector boxes one person on each portrait among the samples.
    single = keys(index.search("label:person count:1", sort="oldest"))
    assert {sample_key("astronaut"), sample_key("grace hopper")} <= set(single)
    assert "people/crowd.jpg" not in single
    # Alone, it keeps images with some label found that many times.
    assert keys(index.search("count>=3")) == ["people/crowd.jpg"]


def test_key_bucket_status_meta(index: SearchIndex) -> None:
    assert index.search("key:samples/").total == 7
    assert keys(index.search("key:samples/c", sort="oldest")) == [
        sample_key("cameraman"),
        sample_key("cat"),
        sample_key("coffee"),
    ]
    assert keys(index.search("key:*")) == []  # a literal prefix, never a wildcard
    assert index.search(f"bucket:{REKOGNITION}").total == 4
    assert keys(index.search("status:partial")) == ["people/crowd.jpg"]
    assert keys(index.search("meta.content-id:cms-7")) == ["street/car.jpg"]
    assert keys(index.search("has:text", sort="newest")) == [
        "street/car.jpg",
        sample_key("no parking"),
        sample_key("grace hopper"),
    ]


def test_exclusion(index: SearchIndex) -> None:
    assert keys(index.search("animal -label:cat")) == ["pets/puppy.jpg"]
    assert keys(index.search(f"bucket:{REKOGNITION} -person", sort="oldest")) == [
        "street/car.jpg",
        "pets/puppy.jpg",
        "pets/kitten.jpg",
    ]
    assert keys(index.search("-(animal OR person OR text)")) == [
        *keys(index.search("-animal -person -text"))
    ]


def test_or_and_precedence(index: SearchIndex) -> None:
    # Which images match, not in what order: the order is the engine's scoring (synonym
    # tiers, norms), which is not what this test is about.
    assert set(keys(index.search("dog OR car"))) == {"street/car.jpg", "pets/puppy.jpg"}
    # AND binds tighter: dog OR (cat AND pet), then (dog OR cat) AND canine.
    assert set(keys(index.search("dog OR cat AND pet"))) == {
        sample_key("cat"),
        "pets/kitten.jpg",
        "pets/puppy.jpg",
    }
    assert keys(index.search("(dog OR cat) AND canine")) == ["pets/puppy.jpg"]


def test_the_empty_query_lists_everything_with_facets(index: SearchIndex) -> None:
    page = index.search("", facets=True, limit=50)
    assert page.total == 11
    assert page.next_after is None
    assert page.facets is not None
    assert page.facets.with_faces == 4
    assert page.facets.with_text == 3
    assert page.facets.status == [("done", 10), ("partial", 1)]
    assert ("Person", 4) in page.facets.labels
    assert page.facets.labels[0][1] >= page.facets.labels[-1][1]


def test_facets_follow_the_query(index: SearchIndex) -> None:
    facets = index.search("animal", facets=True).facets
    assert facets is not None
    assert facets.labels[0] == ("Animal", 3)
    assert ("Cat", 2) in facets.labels and ("Dog", 1) in facets.labels
    assert (facets.with_faces, facets.with_text, facets.status) == (0, 0, [("done", 3)])
    assert index.search("cat").facets is None


# -- special characters: a clean result or a clear error


@pytest.mark.parametrize(
    ("query", "column"),
    [
        ('"', 1),
        ("\\", 1),
        ("*", 1),
        (":", 1),
        ("{", 1),
        ("cat *", 5),
        ("foo:bar", 1),
        ('cat"', 4),
        ("{}", 1),
        ('label:"', 7),
    ],
)
def test_special_characters_give_a_clear_error(index: SearchIndex, query: str, column: int) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        index.search(query)
    assert caught.value.column == column


def test_an_unknown_field_lists_the_known_ones(index: SearchIndex) -> None:
    with pytest.raises(QuerySyntaxError, match="label, text, key, bucket"):
        index.search("foo:bar")


@pytest.mark.parametrize("query", ['"cat*"', "cat*", '"{cat}"', r'"cat \\ \""', "cat:)"[:3]])
def test_special_characters_inside_words_are_literal(index: SearchIndex, query: str) -> None:
    assert keys(index.search(query)) == [sample_key("cat"), "pets/kitten.jpg"]


# -- pagination


def test_pages_follow_each_other(index: SearchIndex) -> None:
    seen: list[str | None] = []
    after = None
    for _ in range(10):
        page = index.search("", limit=3, after=after, sort="newest")
        seen += keys(page)
        after = page.next_after
        if after is None:
            break
    assert seen == keys(index.search("", limit=50, sort="newest"))
    assert len(seen) == 11


def test_a_phrase_across_consecutive_ocr_lines(opensearch_url: str) -> None:
    """A sign reading DOUBLE / PARKING on two lines is found by the phrase; a sign with the
    phrase within one line ranks above it; words on lines apart in the wrong order are not."""
    signs = fresh_index(opensearch_url)
    two_lines = make_record("signs/two-lines.jpg", lines=["NO", "DOUBLE", "PARKING", "ZONE"])
    one_line = make_record("signs/one-line.jpg", lines=["NO DOUBLE PARKING", "TOW ZONE"])
    reversed_ = make_record("signs/reversed.jpg", lines=["PARKING", "DOUBLE"])
    for record in (two_lines, one_line, reversed_):
        signs.put(record)
    signs.refresh()
    for query in ('text:"double parking"', '"double parking"'):
        page = signs.search(query)
        assert keys(page) == ["signs/one-line.jpg", "signs/two-lines.jpg"], query
        assert page.hits[0].matched == ['text "NO DOUBLE PARKING"']
        assert page.hits[1].matched == ['text "DOUBLE / PARKING" (across lines)']
    assert keys(signs.search('text:"no double parking zone"')) == ["signs/two-lines.jpg"]


def test_a_cursor_for_another_sort_or_garbage_is_refused(index: SearchIndex) -> None:
    after = index.search("", limit=2).next_after
    assert after is not None
    with pytest.raises(ValueError, match="--sort score, not newest"):
        index.search("", limit=2, after=after, sort="newest")
    with pytest.raises(ValueError, match="not a cursor rudolph gave"):
        index.search("", after="bm9wZQ")


def _forged(sort: str, *after: object, raw: str | None = None) -> str:
    body = raw or json.dumps({"sort": sort, "after": list(after)})
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


ID = "a" * 64


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("score", _forged("score", raw=f'{{"sort":"score","after":[Infinity,"{ID}"]}}')),
        ("score", _forged("score", raw=f'{{"sort":"score","after":[NaN,"{ID}"]}}')),
        ("newest", _forged("newest", "2024-01-01", ID)),  # a date field sorts as a long
        # OpenSearch gives a missing date as a long's extreme, never null; a null one makes
        # OpenSearch 2.5 fail with a 500 (a NullPointerException), so it never gets there.
        ("newest", _forged("newest", None, ID)),
        ("oldest", _forged("oldest", 2**63, ID)),
        ("oldest", _forged("oldest", 0.5, ID)),
        ("score", _forged("score", True, ID)),
        ("score", _forged("score", 1.0, "not-an-image-id")),
        ("score", _forged("score", 1.0, ID, 3)),
        ("score", "x" * 600),
    ],
)
def test_a_forged_cursor_is_refused_before_the_index_sees_it(
    index: SearchIndex, sort: str, cursor: str
) -> None:
    with pytest.raises(ValueError, match="not a cursor rudolph gave; start again without it"):
        index.search("", after=cursor, sort=sort)  # type: ignore[arg-type]


def test_a_value_the_index_refuses_is_a_bad_request(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever slips past rudolph's own checks is the user's error, a 400, never a 500.

    No query or cursor that passes rudolph's checks is refused by OpenSearch 2.5 (probed:
    long queries, many clauses, synonyms, key paths, every cursor shape), so the check is
    taken away here: a cursor with one value too many reaches the real server, which answers
    400 ("search_after has 3 value(s) but sort has 2"), and that must become
    SearchRefusedError."""
    from rudolph.index import live

    monkeypatch.setattr(live, "decode_cursor", lambda cursor, sort: [1.0, ID, 3])
    with pytest.raises(SearchRefusedError, match="start again without the cursor") as caught:
        index.search("", after=_forged("score", 1.0, ID, 3))
    assert "search_after has 3 value(s)" in str(caught.value)


@pytest.mark.parametrize("sort", ["score", "newest", "oldest"])
def test_paging_while_documents_are_added(opensearch_url: str, sort: str) -> None:
    """search_after on (score or time, image_id): no page repeats or skips an older hit."""
    herd = fresh_index(opensearch_url)

    def reindeer(n: int) -> Record:
        record = make_record(
            f"herd/{n:03d}.jpg",
            [Label(name="Reindeer", confidence=50 + n % 7, parents=["Deer", *ANIMAL])],
        )
        return record.model_copy(update={"event_time": f"2024-01-01T00:{n % 60:02d}:00Z"})

    for n in range(40):
        herd.put(reindeer(n))
    herd.refresh()
    old = {reindeer(n).image_id for n in range(40)}
    seen: list[str] = []
    after = None
    added = 40
    while True:
        page = herd.search("reindeer", limit=6, after=after, sort=sort)  # type: ignore[arg-type]
        seen += [hit.image_id for hit in page.hits]
        for _ in range(3):  # meanwhile, more of the herd arrives, before and after the cursor
            herd.put(reindeer(added))
            added += 1
        herd.refresh()
        after = page.next_after
        if after is None:
            break
    assert len(seen) == len(set(seen))  # no duplicates
    assert old <= set(seen)  # no old document skipped


# -- the command


@pytest.fixture
def cli_env(index: SearchIndex, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RUDOLPH_OPENSEARCH_URL", index.settings.opensearch_url)
    monkeypatch.setenv("RUDOLPH_INDEX", index.alias)
    monkeypatch.setenv("COLUMNS", "200")  # rich would shorten the table to 80 columns
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_the_search_command_pages_with_reasons_and_facets() -> None:
    result = CliRunner().invoke(main, ["search", "animal", "--limit", "2", "--facets"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "s3://rekognition-bucket/pets/puppy.jpg" in lines[1]
    assert 'label "Animal" (96%)' in lines[1]
    assert "2 of 3 images" in result.stdout
    assert "labels: Animal 3, " in result.stdout
    assert "with faces: 0  with text: 0" in result.stdout
    cursor = lines[-1].removeprefix("next page: --after ")
    assert lines[-1].startswith("next page: --after ")
    result = CliRunner().invoke(main, ["search", "animal", "--after", cursor, "--json"])
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert [hit["key"] for hit in page["hits"]] == ["pets/kitten.jpg"]
    assert page["next_after"] is None
    assert page["total"] == 3


@pytest.mark.usefixtures("cli_env")
def test_the_search_command_shows_a_syntax_error_with_a_caret() -> None:
    result = CliRunner().invoke(main, ["search", "cat AND (dog"])
    assert result.exit_code == 2
    assert "this ( is never closed at column 9" in result.stderr
    assert result.stderr.splitlines()[-2:] == ["  cat AND (dog", "          ^"]


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_images_without_an_event_time_page_last(opensearch_url: str, sort: str) -> None:
    undated = fresh_index(opensearch_url)
    for n in range(7):
        record = make_record(f"k/{n}.jpg", [Label(name="Cat", confidence=60)])
        when = None if n % 2 else f"2024-01-0{n + 1}T00:00:00Z"
        undated.put(record.model_copy(update={"event_time": when}))
    undated.refresh()
    seen: list[str | None] = []
    after = None
    while True:
        page = undated.search("cat", limit=2, after=after, sort=sort)  # type: ignore[arg-type]
        seen += keys(page)
        after = page.next_after
        if after is None:
            break
    dated = ["k/0.jpg", "k/2.jpg", "k/4.jpg", "k/6.jpg"]
    assert seen[:4] == (dated if sort == "oldest" else dated[::-1])
    assert sorted(seen[4:], key=str) == ["k/1.jpg", "k/3.jpg", "k/5.jpg"]


def test_a_missing_date_pages_as_the_long_opensearch_sorts_it_as() -> None:
    """An emulator gives null as a missing date's sort value; the cursor carries the long
    OpenSearch itself gives, since it answers a null search_after with a 500."""
    from rudolph.index.search import decode_cursor, encode_cursor

    assert decode_cursor(encode_cursor("newest", [None, ID]), "newest") == [-(2**63), ID]
    assert decode_cursor(encode_cursor("oldest", [None, ID]), "oldest") == [2**63 - 1, ID]
