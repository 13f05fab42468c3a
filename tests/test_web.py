"""`rudolph web` over HTTP: a real `rudolph web` process (uvicorn) over moto's S3 and DynamoDB
and the OpenSearch-compatible server, with sample photos analysed by the local backend.

The fixtures here are shared with tests/test_web_browser.py.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rudolph import aws, stages
from rudolph.events import ObjectRef
from rudolph.query import parse
from rudolph.record import image_id
from rudolph.settings import FEATURES, Settings
from rudolph.store import RecordStore
from rudolph.web.pages import quoted, with_filter
from tests.photos import encode, group_picture, load, sign_picture
from tests.servers import free_port, processes

RUDOLPH = str(Path(sys.executable).parent / "rudolph")

CAT = "pets/chelsea the cat.jpg"
PEOPLE = "people/group of three.jpg"
SIGN = "street/no parking.jpg"
COFFEE = "kitchen/coffee.png"
ROCKET = "space/rocket.jpg"
# Markup in a key and in metadata: the pages must show it as text, never run it.
HOSTILE = "evil/<img src=x onerror=alert(1)>\"&'.jpg"
HOSTILE_META = "<script>alert('meta')</script>"


def _photos() -> dict[str, bytes]:
    return {
        CAT: encode(load("chelsea"), "JPEG"),
        PEOPLE: encode(group_picture(), "JPEG", quality=92),
        SIGN: encode(sign_picture("china", "NO PARKING"), "JPEG", quality=92),
        COFFEE: encode(load("coffee"), "PNG"),
        ROCKET: encode(load("rocket"), "JPEG"),
        HOSTILE: encode(load("camera"), "JPEG"),
    }


@dataclass
class Photos:
    """The sample photos in S3, analysed into the table and the index."""

    settings: Settings
    env: dict[str, str]
    uploaded: dict[str, bytes]

    def id(self, key: str) -> str:
        return image_id(self.settings.bucket, key)


def analyse_into_table_and_index(settings: Settings, uploaded: Mapping[str, bytes]) -> None:
    """What the fleet does per image, in this process: the three features, then aggregate."""
    started = datetime.now(UTC)
    for n, key in enumerate(uploaded):
        # Distinct upload times, in upload order, so sort=newest/oldest is well defined.
        when = (started + timedelta(seconds=n)).isoformat(timespec="milliseconds")
        ref = ObjectRef(bucket=settings.bucket, key=key, event_time=when.replace("+00:00", "Z"))
        outcomes = [stages.analyze_feature(feature, ref, settings) for feature in FEATURES]
        assert stages.aggregate(outcomes, ref, settings) is not None, key
    stages.index(settings).refresh()


def analysed_photos(moto_url: str, opensearch_url: str) -> Photos:
    """A bucket, table and index of their own, holding the sample photos, analysed."""
    name = f"web-{uuid.uuid4().hex[:8]}"
    env = {
        "RUDOLPH_AWS_ENDPOINT_URL": moto_url,
        "RUDOLPH_OPENSEARCH_URL": opensearch_url,
        "RUDOLPH_BUCKET": name,
        "RUDOLPH_TABLE": name,
        "RUDOLPH_INDEX": name,
        "RUDOLPH_ANALYZER": "local",
    }
    settings = Settings.from_env(env)
    s3 = aws.client("s3", settings)
    s3.create_bucket(Bucket=settings.bucket)
    RecordStore(settings).ensure()
    stages.index(settings).ensure()
    uploaded = _photos()
    for key, body in uploaded.items():
        metadata = {"content-id": HOSTILE_META} if key == HOSTILE else {}
        s3.put_object(Bucket=settings.bucket, Key=key, Body=body, Metadata=metadata)
    analyse_into_table_and_index(settings, uploaded)
    return Photos(settings, env, uploaded)


@pytest.fixture(scope="module")
def photos(moto_url: str, opensearch_url: str) -> Photos:
    return analysed_photos(moto_url, opensearch_url)


@contextmanager
def web_server(env: Mapping[str, str], timeout: float = 60.0) -> Iterator[str]:
    """A `rudolph web` process on a free port of 127.0.0.1; its URL once it answers. Stopped
    by PID (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with processes() as group:
        process = group.start("web", [RUDOLPH, "web", "--port", str(port)], env=dict(env))
        log = group.log_dir / "web.log"
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"rudolph web exited ({process.returncode}):\n{log.read_text()}"
                )
            try:
                urllib.request.urlopen(f"{url}/static/web.css", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (401 with auth)
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"rudolph web did not answer within {timeout:.0f} s:\n{log.read_text()}"
                    ) from None
                time.sleep(0.1)
        yield url


@pytest.fixture(scope="module")
def web(photos: Photos) -> Iterator[str]:
    with web_server(photos.env) as url:
        yield url


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def call(
    url: str, method: str = "GET", body: Any = None, auth: tuple[str, str] | None = None
) -> Answer:
    """One HTTP request (`body` sent as JSON), its answer whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def get(url: str, auth: tuple[str, str] | None = None, **params: Any) -> Answer:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    return call(url, auth=auth)


def search(web: str, q: str, **params: Any) -> dict[str, Any]:
    answer = get(f"{web}/api/search", q=q, **params)
    assert answer.status == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def keys(result: dict[str, Any]) -> list[str]:
    return [hit["key"] for hit in result["hits"]]


# -- the search API


def test_search_finds_the_cat_first_with_its_labels_and_a_thumbnail_url(
    web: str, photos: Photos
) -> None:
    result = search(web, "cat")
    assert keys(result)[0] == CAT
    hit = result["hits"][0]
    assert hit["image_id"] == photos.id(CAT)
    assert "Cat" in hit["labels"]
    assert hit["face_count"] == 0
    assert hit["matched"] and "Cat" in hit["matched"][0]
    assert hit["page"] == f"/images/{photos.id(CAT)}"
    assert result["url_expires_in"] == 300
    assert result["facets"] is None  # not asked for


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('text:"no parking"', [SIGN]),
        ("faces>=2", [PEOPLE]),
        ("has:text -label:cat", [SIGN]),
        ("label:cat OR faces>=3", [CAT, PEOPLE]),
    ],
)
def test_the_query_language_reaches_the_index(web: str, query: str, expected: list[str]) -> None:
    assert sorted(keys(search(web, query))) == sorted(expected)


def test_facets_count_labels_faces_text_and_status(web: str, photos: Photos) -> None:
    result = search(web, "", facets="true")
    assert result["total"] == len(photos.uploaded)
    facets = result["facets"]
    assert facets["with_faces"] == 2  # the group and the cameraman (HOSTILE)
    assert facets["with_text"] == 1
    assert {c["value"]: c["count"] for c in facets["status"]} == {"done": len(photos.uploaded)}
    labels = {c["value"]: c["count"] for c in facets["labels"]}
    assert labels.get("Cat") == 1
    assert [c["count"] for c in facets["labels"]] == sorted(labels.values(), reverse=True)


def test_the_cursor_pages_through_every_image_once(web: str, photos: Photos) -> None:
    seen: list[str] = []
    after = None
    for _ in range(len(photos.uploaded)):
        params = {"limit": 2, "sort": "oldest"} | ({"after": after} if after else {})
        page = search(web, "", **params)
        assert page["total"] == len(photos.uploaded)
        seen += keys(page)
        after = page["next_after"]
        if after is None:
            break
    assert seen == list(photos.uploaded)  # uploaded (event time) order, each once


def test_a_syntax_error_is_400_with_its_column(web: str) -> None:
    answer = get(f"{web}/api/search", q='cat label:"no parking')
    assert answer.status == 400
    problem = answer.json()
    assert problem["column"] == 11  # the quote that is never closed
    assert problem["query"] == 'cat label:"no parking'
    assert "column 11" in problem["detail"]


@pytest.mark.parametrize("query", ['"', "\\", "*", ":", "{", 'a"b', "cat:", "}{][", "\x00", "a\\"])
def test_characters_special_to_lucene_or_json_never_make_a_server_error(
    web: str, query: str
) -> None:
    answer = get(f"{web}/api/search", q=query)
    assert answer.status in (200, 400), answer.text
    assert "detail" in answer.json() if answer.status == 400 else "hits" in answer.json()


def test_bad_parameters_are_client_errors(web: str) -> None:
    assert get(f"{web}/api/search", q="cat", limit=0).status == 422
    assert get(f"{web}/api/search", q="cat", sort="sideways").status == 422
    bad_cursor = get(f"{web}/api/search", q="cat", after="not-a-cursor")
    assert bad_cursor.status == 400, bad_cursor.text
    assert bad_cursor.json()["detail"]


# -- images


def test_an_image_is_its_table_record_plus_a_presigned_url_that_fetches_it(
    web: str, photos: Photos
) -> None:
    answer = get(f"{web}/api/images/{photos.id(PEOPLE)}")
    assert answer.status == 200
    body = answer.json()
    stored = RecordStore(photos.settings).get(photos.id(PEOPLE))
    assert stored is not None
    assert body["record"] == json.loads(stored.model_dump_json())
    assert len(body["record"]["faces"]) == 3
    url = body["url"]
    assert url.startswith(photos.settings.aws_endpoint_url)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-Signature"]
    # The browser's view: the URL alone fetches the bytes (no credentials of its own).
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == photos.uploaded[PEOPLE]


def test_thumbnail_urls_fetch_the_images(web: str, photos: Photos) -> None:
    for hit in search(web, "", limit=20)["hits"]:
        with urllib.request.urlopen(hit["url"], timeout=10) as response:
            assert response.read() == photos.uploaded[hit["key"]], hit["key"]


def test_an_unknown_image_is_404(web: str) -> None:
    answer = get(f"{web}/api/images/{'0' * 64}")
    assert answer.status == 404
    assert "no record for image id" in answer.json()["detail"]
    page = get(f"{web}/images/{'0' * 64}")
    assert page.status == 404
    assert "no record for image id" in page.text
    # Not an id at all (DynamoDB refuses keys over 2 KB): still 404, not 503.
    assert get(f"{web}/api/images/{'x' * 3000}").status == 404
    assert get(f"{web}/api/images/..%2F..%2Fetc").status == 404


# -- the pages


def test_the_search_page_shows_thumbnails_labels_and_facet_links(web: str, photos: Photos) -> None:
    page = get(f"{web}/", q="cat")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'data-image-id="{photos.id(CAT)}"' in page.text
    assert "<li>Cat</li>" in page.text
    # A facet narrows the query: cat label:"Cat".
    narrowed = "/?" + urllib.parse.urlencode({"q": 'cat label:"Cat"'})
    assert f'href="{narrowed}"'.replace("&", "&amp;") in page.text
    assert "/?" + urllib.parse.urlencode({"q": "cat has:text"}) in page.text


def test_the_search_page_shows_a_syntax_error_next_to_the_box(web: str) -> None:
    page = get(f"{web}/", q="cat AND")
    assert page.status == 400
    assert 'id="query-error"' in page.text
    assert 'data-column="5"' in page.text
    assert "column 5" in page.text


def test_the_image_page_draws_face_and_text_boxes(web: str, photos: Photos) -> None:
    people = get(f"{web}/images/{photos.id(PEOPLE)}").text
    assert people.count('class="box face"') == 3
    # Each portrait's person is boxed as an object too, titled with its label.
    assert people.count('class="box object"') >= 3
    assert "<title>Person " in people
    for kind in ("object", "face", "line"):  # each layer has its switch
        assert f'name="layer" value="{kind}" checked' in people
    sign = get(f"{web}/images/{photos.id(SIGN)}").text
    assert sign.count('class="box line"') >= 1
    assert "NO PARKING" in sign


def test_markup_from_records_is_escaped(web: str, photos: Photos) -> None:
    pages = [
        get(f"{web}/", q="").text,
        get(f"{web}/", q="key:evil/").text,
        get(f"{web}/images/{photos.id(HOSTILE)}").text,
    ]
    for page in pages:
        assert "<img src=x onerror" not in page
        assert "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&#34;&amp;&#39;.jpg" in pages[2]
    assert "&lt;script&gt;alert(&#39;meta&#39;)&lt;/script&gt;" in pages[2]
    # And the query echoed back.
    echoed = get(f"{web}/", q='"<b>bold</b>"').text
    assert "<b>bold</b>" not in echoed and "&lt;b&gt;bold&lt;/b&gt;" in echoed


def test_pages_forbid_inline_scripts(web: str) -> None:
    headers = get(f"{web}/").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_openapi_describes_the_api(web: str) -> None:
    spec = get(f"{web}/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) == {
        "/api/search",
        "/api/images/{image_id}",
        "/api/images/{image_id}/original",
        "/api/images/{image_id}/faces/{face}/similar",  # RUDOLPH_PEOPLE=on (test_persons.py)
        "/api/people",  # RUDOLPH_PEOPLE=on (test_web_people.py)
        "/api/people/{person_id}",
    }
    search_op = paths["/api/search"]["get"]
    assert {p["name"] for p in search_op["parameters"]} == {
        "q",
        "limit",
        "after",
        "sort",
        "facets",
    }
    assert {"200", "400", "503"} <= set(search_op["responses"])
    assert {"200", "404", "503"} <= set(paths["/api/images/{image_id}"]["get"]["responses"])
    original = paths["/api/images/{image_id}/original"]["get"]["responses"]
    assert {"200", "404", "503"} <= set(original)


# -- auth and failures


def test_basic_auth_covers_pages_api_openapi_and_static_files(photos: Photos) -> None:
    user, password = "ada", "pass:with:colons"
    with web_server({**photos.env, "RUDOLPH_WEB_AUTH": f"{user}:{password}"}) as url:
        for path in ("/", "/api/search", "/openapi.json", "/static/web.css", "/images/x"):
            refused = get(url + path)
            assert refused.status == 401, path
            assert refused.headers["www-authenticate"].startswith('Basic realm="rudolph"')
            assert password not in refused.text
            assert get(url + path, auth=(user, "wrong")).status == 401
            assert get(url + path, auth=("eve", password)).status == 401
        assert get(url + "/", auth=(user, password)).status == 200
        assert get(url + "/api/search", auth=(user, password), q="cat").status == 200
        assert get(url + "/openapi.json", auth=(user, password)).status == 200


def test_503_says_what_to_do_when_the_index_or_table_is_unreachable(photos: Photos) -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}"
    env = {
        **photos.env,
        "RUDOLPH_OPENSEARCH_URL": nothing_there,
        "RUDOLPH_AWS_ENDPOINT_URL": nothing_there,
    }
    with web_server(env) as url:
        search_down = get(f"{url}/api/search", q="cat")
        assert search_down.status == 503
        assert search_down.headers["retry-after"]
        assert "RUDOLPH_OPENSEARCH_URL" in search_down.json()["detail"]
        table_down = get(f"{url}/api/images/{photos.id(CAT)}")
        assert table_down.status == 503
        assert "RUDOLPH_AWS_ENDPOINT_URL" in table_down.json()["detail"]
        page = get(f"{url}/", q="cat")
        assert page.status == 503 and "RUDOLPH_OPENSEARCH_URL" in page.text


def test_a_malformed_auth_setting_stops_the_server_without_echoing_it(photos: Photos) -> None:
    done = subprocess.run(
        [RUDOLPH, "web", "--port", str(free_port())],
        env={**os.environ, **photos.env, "RUDOLPH_WEB_AUTH": "justapassword"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "RUDOLPH_WEB_AUTH must be user:password" in done.stderr
    assert "justapassword" not in done.stderr


# -- facet filters (no server)


@pytest.mark.parametrize(
    ("query", "term", "narrowed"),
    [
        ("", "has:text", "has:text"),
        ("cat", 'label:"Cat"', 'cat label:"Cat"'),
        ("cat OR dog", "faces>=1", "(cat OR dog) faces>=1"),
        ("confidence>=90 (cat OR dog)", "status:done", "confidence>=90 (cat OR dog) status:done"),
        ('label:"Egyptian Mau" cat', 'label:"Egyptian Mau"', 'label:"Egyptian Mau" cat'),
    ],
)
def test_a_facet_filter_narrows_the_query_as_written(query: str, term: str, narrowed: str) -> None:
    assert with_filter(query, term) == narrowed
    parse(narrowed)  # and it still parses


@pytest.mark.parametrize("label", ["Cat", 'say "cheese"', "back\\slash", "Egyptian Mau"])
def test_a_label_facet_quotes_any_name(label: str) -> None:
    terms = parse(f"label:{quoted(label)}").terms()
    assert [(t.field, t.value) for t in terms] == [("label", label)]
