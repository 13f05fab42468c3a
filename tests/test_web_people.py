"""The web's People page, its JSON API and the persons on an image's page (RUDOLPH_PEOPLE=on),
over HTTP against a real `rudolph web` process behind basic auth, over moto and OpenSearch.

The photos are the two real people of tests/photos.py `two_people` (Eileen Collins and Grace
Hopper) and the group picture with both, in S3 as PNGs; their faces are found and embedded
once by the local backend, then saved as records through `stages.save`, the aggregate task's
own path, which clusters them into persons.

The data is shared with tests/test_web_browser.py.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from rudolph import aws, stages
from rudolph.analysis import analyze
from rudolph.backends.local import LocalAnalyzer
from rudolph.events import ObjectRef
from rudolph.index.faces import FaceIndex
from rudolph.people import People
from rudolph.provision import init
from rudolph.record import Face, Record, image_id
from rudolph.settings import Settings, get_settings
from rudolph.source import ImageInput
from tests.photos import encode, group_picture, two_people
from tests.test_persons import _invoke
from tests.test_web import Answer, web_server
from tests.test_web import call as request

USER, PASSWORD = "ada", "long-secret-17"
AUTH = (USER, PASSWORD)
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
#: The photos uploaded: name -> who is in it.
WHO = {
    "astronaut": ("collins",),
    "astronaut-mirrored": ("collins",),
    "astronaut-crop": ("collins",),
    "hopper": ("hopper",),
    "hopper-mirrored": ("hopper",),
    "group": ("collins", "hopper"),
}


@cache
def _analysed() -> dict[str, tuple[bytes, tuple[int, int], list[Face]]]:
    """Photo name -> (PNG bytes, size, its faces with embeddings): analysed once a session."""
    analyzer = LocalAnalyzer(Settings(model_dir=Settings().model_dir, people="on", threads=1))
    analyzer.load(("faces",))
    pictures = {name: picture for name, (_, picture) in two_people().items() if name in WHO}
    pictures["group"] = group_picture()
    found = {}
    for name, picture in pictures.items():
        body = encode(picture, "PNG")
        record = analyze(ImageInput.from_bytes(body), analyzer, ("faces",))
        assert record.faces and all(face.embedding for face in record.faces), name
        found[name] = (body, picture.size, record.faces)
    return found


@dataclass
class PeopleSite:
    """The photos in S3 and their records, persons clustered; a web server over them."""

    settings: Settings
    env: dict[str, str]
    images: dict[str, str]  # photo name -> image id
    url: str = ""

    def photos_of(self, who: str) -> set[str]:
        return {self.images[name] for name, there in WHO.items() if who in there}


def people_site(moto_url: str, opensearch_url: str) -> PeopleSite:
    """A bucket, table and indices of their own with the photos uploaded and analysed."""
    name = uuid.uuid4().hex[:8]
    env = {
        "RUDOLPH_AWS_ENDPOINT_URL": moto_url,
        "RUDOLPH_OPENSEARCH_URL": opensearch_url,
        "RUDOLPH_BUCKET": f"people-{name}",
        "RUDOLPH_TABLE": f"people-{name}",
        "RUDOLPH_INDEX": f"people-{name}",
        "RUDOLPH_PEOPLE": "on",
    }
    settings = Settings.from_env(env)
    init(settings, say=lambda _: None)
    s3 = aws.client("s3", settings)
    images = {}
    for n, (photo, (body, (width, height), faces)) in enumerate(_analysed().items()):
        key = f"{uuid.uuid4().hex}/{photo}.png"
        s3.put_object(Bucket=settings.bucket, Key=key, Body=body, ContentType="image/png")
        ref = ObjectRef(bucket=settings.bucket, key=key, etag="e", sequencer=f"{n + 10:02X}")
        record = Record(
            image_id=image_id(settings.bucket, key),
            bucket=settings.bucket,
            key=key,
            status="done",
            width=width,
            height=height,
            content_type="image/png",
            faces=faces,
            sequencer=ref.sequencer,
        )
        assert stages.save(record, ref, settings)
        images[photo] = record.image_id
    stages.index(settings).refresh()
    FaceIndex(settings).refresh()
    for cached in (stages.store, stages.index, stages.people, get_settings):
        cached.cache_clear()
    return PeopleSite(settings, env, images)


@pytest.fixture(scope="module")
def site(moto_url: str, opensearch_url: str) -> Iterator[PeopleSite]:
    built = people_site(moto_url, opensearch_url)
    with web_server({**built.env, "RUDOLPH_WEB_AUTH": f"{USER}:{PASSWORD}"}) as url:
        built.url = url
        yield built


def call(
    url: str, method: str = "GET", body: Any = None, auth: tuple[str, str] | None = AUTH
) -> Answer:
    """A request with the server's credentials unless told otherwise."""
    return request(url, method, body, auth)


def persons(site: PeopleSite) -> list[dict[str, Any]]:
    answer = call(f"{site.url}/api/people")
    assert answer.status == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


def rename(site: PeopleSite, person_id: str, name: Any) -> Answer:
    return call(f"{site.url}/api/people/{urllib.parse.quote(person_id)}", "PUT", {"name": name})


def test_the_people_api_lists_what_the_cli_lists_most_photos_first(site: PeopleSite) -> None:
    listed = persons(site)
    assert [set(p["image_ids"]) for p in listed] == [
        site.photos_of("collins"),
        site.photos_of("hopper"),
    ]
    expected = [s.as_json() for s in People(site.settings).summaries()]
    assert listed == expected  # the fields and values of `rudolph people --json`
    assert all(set(p) == {"person_id", "name", "face_count", "image_ids"} for p in listed)


def test_everything_people_is_behind_the_auth(site: PeopleSite) -> None:
    person = persons(site)[0]["person_id"]
    for method, path, body in [
        ("GET", "/people", None),
        ("GET", "/api/people", None),
        ("PUT", f"/api/people/{person}", {"name": "Nobody Allowed"}),
        ("GET", f"/images/{site.images['group']}", None),
    ]:
        for auth in (None, (USER, "wrong")):
            answer = call(f"{site.url}{path}", method, body, auth=auth)
            assert answer.status == 401, (method, path, auth)
            assert answer.headers["www-authenticate"].startswith("Basic")
    assert persons(site)[0]["name"] != "Nobody Allowed"


def test_renaming_makes_the_name_searchable_and_bad_requests_are_4xx(site: PeopleSite) -> None:
    collins = persons(site)[0]["person_id"]
    answer = rename(site, collins, "  Eileen Collins ")
    assert answer.status == 200, answer.text
    assert answer.json() == {"person_id": collins, "name": "Eileen Collins"}
    assert persons(site)[0]["name"] == "Eileen Collins"
    query = urllib.parse.urlencode({"q": 'person:"eileen collins"', "limit": 50})
    found = call(f"{site.url}/api/search?{query}").json()
    assert {hit["image_id"] for hit in found["hits"]} == site.photos_of("collins")

    for bad_id in ["p0000000000000ff", "nobody", "x" * 3000]:
        answer = rename(site, bad_id, "Someone")
        assert answer.status == 404, answer.text
        assert "no person" in answer.json()["detail"]
        assert "`rudolph people` lists the persons" in answer.json()["detail"]
    for bad_name, says in [
        ("x" * 101, "at most 100 characters"),
        ("Ada\nLovelace", "U+000A"),
        ("Ada \u202eecalevol", "U+202E"),
    ]:
        answer = rename(site, collins, bad_name)
        assert answer.status == 400, answer.text
        assert says in answer.json()["detail"]
    for not_a_name in [5, ["Ada"], {"first": "Ada"}]:
        assert rename(site, collins, not_a_name).status == 422
    no_body = call(f"{site.url}/api/people/{collins}", "PUT", None)
    assert no_body.status == 422
    assert persons(site)[0]["name"] == "Eileen Collins"  # nothing bad was stored

    answer = rename(site, collins, "")  # unnames
    assert answer.status == 200 and answer.json()["name"] is None
    assert persons(site)[0]["name"] is None


def test_the_people_page_has_a_card_per_person_with_its_face_count_and_photos_link(
    site: PeopleSite,
) -> None:
    answer = call(f"{site.url}/people")
    assert answer.status == 200, answer.text
    page = answer.text
    listed = persons(site)
    # In order, each with its photo count and a link to its photos.
    at = [page.index(f'data-person-id="{p["person_id"]}"') for p in listed]
    assert at == sorted(at)
    for p in listed:
        assert f'href="/?q=person%3A{p["person_id"]}"' in page
    assert "4 photos" in page and "3 photos" in page
    # Face crops over presigned S3 URLs: a signature, never the server's secret key.
    assert page.count("<image href=") == 2
    assert "X-Amz-Signature=" in page
    assert "aws_secret_access_key" not in page.lower()
    assert 'href="/people"' in call(f"{site.url}/").text  # reachable from every page


def test_a_hostile_name_is_text_on_every_page(site: PeopleSite) -> None:
    hopper = persons(site)[1]["person_id"]
    assert rename(site, hopper, HOSTILE_NAME).status == 200
    try:
        escaped = "&lt;img src=x onerror=alert(1)&gt;"
        people = call(f"{site.url}/people").text
        assert escaped in people and HOSTILE_NAME not in people
        image = call(f"{site.url}/images/{site.images['hopper']}").text
        assert escaped in image and HOSTILE_NAME not in image
        assert json.loads(call(f"{site.url}/api/people").body)[1]["name"] == HOSTILE_NAME
    finally:
        rename(site, hopper, "")


def test_the_image_page_captions_faces_with_their_persons(site: PeopleSite) -> None:
    collins, hopper = (p["person_id"] for p in persons(site))
    assert rename(site, hopper, "Grace Hopper").status == 200
    try:
        page = call(f"{site.url}/images/{site.images['group']}").text
        # Three faces: Collins twice (caption: her id, unnamed), Hopper once (her name).
        assert page.count('class="face-tag"') == 3
        assert page.count(f'data-person-id="{collins}"') == 2
        assert f'data-person-id="{hopper}" data-x=' in page
        assert ">Grace Hopper</a>" in page
        assert page.count(f'href="/?q=person%3A{hopper}"') >= 3  # box, caption, table
        assert "<th>smile</th><th>emotion</th>" in page
        assert 'class="smile">yes ' in page or 'class="smile">no ' in page
    finally:
        rename(site, hopper, "")


def test_with_people_off_the_page_says_so_and_how_to_turn_it_on(site: PeopleSite) -> None:
    with web_server({**site.env, "RUDOLPH_PEOPLE": "off"}) as url:
        answer = call(f"{url}/people", auth=None)
        assert answer.status == 200
        assert "Face identity is off" in answer.text
        assert "RUDOLPH_PEOPLE=on" in answer.text
        api = call(f"{url}/api/people", auth=None)
        assert api.status == 400 and "RUDOLPH_PEOPLE=on" in api.json()["detail"]
        person = persons(site)[0]["person_id"]
        answer = call(f"{url}/api/people/{person}", "PUT", {"name": "Ada"}, auth=None)
        assert answer.status == 400 and "RUDOLPH_PEOPLE=on" in answer.json()["detail"]
        image = call(f"{url}/images/{site.images['group']}", auth=None)
        assert image.status == 200 and "face-tag" not in image.text


def test_the_cli_refuses_the_names_the_api_refuses(site: PeopleSite) -> None:
    person = persons(site)[0]["person_id"]
    result = _invoke(site.settings, "people", "name", person, "Ada\x1b[31m")
    assert result.exit_code == 2 and "U+001B" in result.output
    assert persons(site)[0]["name"] is None
