"""`rudolph web` in a real headless browser: Debian's /usr/bin/chromium driven by Playwright
(its client only: no browser is downloaded), against a real `rudolph web` process over moto
and the OpenSearch-compatible server. Screenshots go to .artifacts/web-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.test_web import CAT, PEOPLE, SIGN, Photos, analysed_photos, web_server
from tests.test_web_people import AUTH, HOSTILE_NAME, PeopleSite, people_site

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / ".artifacts"
# Headless in a container, and quiet: no sandbox (root), no GPU, no calls home.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent: `make setup` installs Debian's chromium package",
)


@pytest.fixture(scope="module")
def site(moto_url: str, opensearch_url: str) -> Iterator[tuple[Photos, str]]:
    photos = analysed_photos(moto_url, opensearch_url)
    with web_server(photos.env) as url:
        yield photos, url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@contextmanager
def browsing(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page in a fresh context (`options`: Playwright's, e.g. http_credentials) that may
    only reach this machine and must raise no JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    context.set_default_timeout(20_000)
    elsewhere: list[str] = []

    def only_loopback(route: Route) -> None:
        # Every request (page, scripts, presigned images) must stay on this machine.
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A dialog would be a hostile name run as script: record it (and dismiss it).
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield page
    context.close()
    assert not elsewhere, f"the page asked for something off this machine: {elsewhere}"
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with browsing(browser) as page:
        yield page


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"web-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def search_for(page: Page, url: str, query: str) -> None:
    page.goto(url)
    page.fill("#q", query)
    page.press("#q", "Enter")
    page.wait_for_load_state()


def thumbnails(page: Page) -> list[str]:
    keys: list[str] = page.locator("#grid > .thumb").evaluate_all(
        "thumbs => thumbs.map(t => t.dataset.key)"
    )
    return keys


def loaded(page: Page, selector: str) -> None:
    """Wait until every image matching `selector` has really decoded (naturalWidth > 0)."""
    page.wait_for_function(
        "selector => { const images = [...document.querySelectorAll(selector)];"
        " return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector,
    )


def test_typing_a_query_shows_the_right_thumbnails_loaded_from_s3(
    page: Page, site: tuple[Photos, str]
) -> None:
    photos, url = site
    search_for(page, url, "cat")
    assert page.input_value("#q") == "cat"
    assert thumbnails(page)[0] == CAT
    loaded(page, "#grid > .thumb img")
    first = page.locator("#grid > .thumb").first
    expect(first.locator("ul.labels")).to_contain_text("Cat")

    search_for(page, url, "faces>=2")
    assert thumbnails(page) == [PEOPLE]
    loaded(page, "#grid > .thumb img")
    expect(page.locator("#grid > .thumb .faces")).to_have_text("3 faces")

    page.goto(url)  # every image, with the facets
    loaded(page, "#grid > .thumb img")
    assert sorted(thumbnails(page)) == sorted(photos.uploaded)
    screenshot(page, "search")


def test_a_facet_narrows_the_query(page: Page, site: tuple[Photos, str]) -> None:
    _, url = site
    page.goto(url)
    page.locator("a.facet", has_text=re.compile(r"^with text$")).click()
    page.wait_for_load_state()
    assert page.input_value("#q") == "has:text"
    assert thumbnails(page) == [SIGN]
    page.locator("a.facet[data-facet=label]", has_text=re.compile(r"^Text$")).click()
    page.wait_for_load_state()
    assert page.input_value("#q") == 'has:text label:"Text"'
    assert thumbnails(page) == [SIGN]


def test_a_syntax_error_is_shown_next_to_the_box_at_its_column(
    page: Page, site: tuple[Photos, str]
) -> None:
    _, url = site
    search_for(page, url, 'label:"cat')
    error = page.locator("#query-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("never closed")
    expect(error).to_contain_text("column 7")
    # The cursor sits on the mistake.
    assert page.evaluate("document.getElementById('q').selectionStart") == 6
    screenshot(page, "syntax-error")


def test_more_appends_the_next_page(page: Page, site: tuple[Photos, str]) -> None:
    photos, url = site
    page.goto(f"{url}/?q=&sort=oldest&limit=2")
    assert len(thumbnails(page)) == 2
    page.click("#more")
    expect(page.locator("#grid > .thumb")).to_have_count(4)
    assert page.url.endswith("limit=2")  # appended in place, not navigated
    while page.locator("#more").count():
        shown = len(thumbnails(page))  # before the click: the page may arrive before a count
        page.click("#more")
        page.wait_for_function(
            "n => document.querySelectorAll('#grid > .thumb').length > n", arg=shown
        )
    assert thumbnails(page) == list(photos.uploaded)  # each once, oldest first
    loaded(page, "#grid > .thumb img")


def _boxes_inside_image(page: Page, kind: str) -> int:
    image = page.locator("#image").bounding_box()
    assert image is not None
    rects = page.locator(f"svg.overlay rect.{kind}")
    for n in range(rects.count()):
        box = rects.nth(n).bounding_box()
        assert box is not None and box["width"] > 2 and box["height"] > 2
        assert (
            image["x"] - 1 <= box["x"]
            and box["x"] + box["width"] <= image["x"] + image["width"] + 1
        )
        assert (
            image["y"] - 1 <= box["y"]
            and box["y"] + box["height"] <= image["y"] + image["height"] + 1
        )
    return rects.count()


def test_opening_an_image_shows_its_face_and_text_boxes(
    page: Page, site: tuple[Photos, str]
) -> None:
    photos, url = site
    search_for(page, url, "faces>=2")
    page.locator("#grid > .thumb a").first.click()
    page.wait_for_url(f"**/images/{photos.id(PEOPLE)}*")
    loaded(page, "#image")
    assert _boxes_inside_image(page, "face") == 3
    assert _boxes_inside_image(page, "object") >= 3  # the three people, boxed whole
    expect(page.locator(".faces-table tr")).to_have_count(4)  # a header and three faces
    screenshot(page, "image-faces")
    # Each layer switches off and on by itself.
    page.locator('input[value="object"]').uncheck()
    expect(page.locator("svg.overlay rect.object").first).to_be_hidden()
    expect(page.locator("svg.overlay rect.face").first).to_be_visible()
    screenshot(page, "image-objects-off")
    page.locator('input[value="face"]').uncheck()
    page.locator('input[value="object"]').check()
    expect(page.locator("svg.overlay rect.face").first).to_be_hidden()
    expect(page.locator("svg.overlay rect.object").first).to_be_visible()

    search_for(page, url, 'text:"no parking"')
    page.locator("#grid > .thumb a").first.click()
    page.wait_for_url(f"**/images/{photos.id(SIGN)}*")
    loaded(page, "#image")
    assert _boxes_inside_image(page, "line") >= 1
    expect(page.locator("td.ocr").first).to_have_text("NO PARKING")
    screenshot(page, "image-text")


@pytest.fixture(scope="module")
def people(moto_url: str, opensearch_url: str) -> Iterator[PeopleSite]:
    built = people_site(moto_url, opensearch_url)
    with web_server({**built.env, "RUDOLPH_WEB_AUTH": ":".join(AUTH)}) as url:
        built.url = url
        yield built


def _person_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#people > .person").evaluate_all(
        "cards => cards.map(c => c.dataset.personId)"
    )
    return ids


def test_the_people_page_renames_and_leads_to_a_persons_photos(
    browser: Browser, people: PeopleSite
) -> None:
    credentials = {"username": AUTH[0], "password": AUTH[1]}
    with browsing(browser, http_credentials=credentials) as page:
        page.goto(f"{people.url}/")
        page.locator("a.nav-people").click()
        page.wait_for_url("**/people")
        cards = page.locator("#people > .person")
        expect(cards).to_have_count(2)
        collins, hopper = _person_ids(page)
        expect(cards.nth(0).locator(".count")).to_have_text("4 photos")
        expect(cards.nth(1).locator(".count")).to_have_text("3 photos")
        expect(cards.locator(".name")).to_have_text(["unnamed", "unnamed"])
        # Each face crop is the person's picture, loaded from S3 through its presigned URL.
        page.wait_for_function(
            "() => [...document.querySelectorAll('.portrait svg image')].every(i =>"
            " i.getBBox().width > 0)"
        )
        # An <image> in SVG tells nothing of its bytes: the same URL as an <img> (cross-origin
        # fetch() is CORS's and the CSP's to refuse) must decode.
        loaded_crops = page.evaluate(
            "() => Promise.all([...document.querySelectorAll('.portrait svg image')].map("
            " i => new Promise(done => { const img = new Image();"
            " img.onload = () => done(img.naturalWidth); img.onerror = () => done(0);"
            " img.src = i.href.baseVal; })))"
        )
        assert len(loaded_crops) == 2 and all(width > 0 for width in loaded_crops)
        screenshot(page, "people")

        # Renaming through the page: the name appears at once, and stays after a reload.
        card = cards.nth(1)
        card.locator("form.rename input").fill("Grace Hopper")
        card.locator("form.rename button").click()
        expect(card.locator(".rename-status")).to_have_text("saved")
        expect(card.locator(".name")).to_have_text("Grace Hopper")
        # A hostile name is shown as the text it is; nothing runs (the fixture fails on a
        # dialog or a script error).
        first = cards.nth(0)
        first.locator("form.rename input").fill(HOSTILE_NAME)
        first.locator("form.rename input").press("Enter")
        expect(first.locator(".rename-status")).to_have_text("saved")
        expect(first.locator(".name")).to_have_text(HOSTILE_NAME)
        assert first.locator(".name img").count() == 0
        # A refused name says why and changes nothing.
        card.locator("form.rename input").fill("Grace \u202eHopper")
        card.locator("form.rename button").click()
        expect(card.locator(".rename-status")).to_contain_text("not saved: a name may not")
        page.reload()
        expect(cards.locator(".name")).to_have_text([HOSTILE_NAME, "Grace Hopper"])
        assert page.locator(".person .name img").count() == 0
        screenshot(page, "people-renamed")

        # One click: the person's photos, and exactly them.
        cards.nth(1).locator("a.photos").click()
        page.wait_for_url("**/?q=person*")
        assert page.input_value("#q") == f"person:{hopper}"
        shown = page.locator("#grid > .thumb").evaluate_all(
            "thumbs => thumbs.map(t => t.dataset.imageId)"
        )
        assert set(shown) == people.photos_of("hopper") and len(shown) == 3

        # The group picture: its face boxes captioned with the persons, one click from theirs.
        page.goto(f"{people.url}/images/{people.images['group']}")
        tags = page.locator("a.face-tag")
        expect(tags).to_have_count(3)
        expect(page.locator(f'a.face-tag[data-person-id="{hopper}"]')).to_have_text("Grace Hopper")
        expect(page.locator(f'a.face-tag[data-person-id="{collins}"]')).to_have_text(
            [HOSTILE_NAME, HOSTILE_NAME]
        )
        # Each caption sits just under its face box.
        for n in range(3):
            tag = tags.nth(n).bounding_box()
            box = page.locator("svg.overlay rect.face").nth(n).bounding_box()
            assert tag is not None and box is not None and tag["width"] > 10
            left_aligned = abs(tag["x"] - box["x"]) < 2
            right_aligned = abs(tag["x"] + tag["width"] - box["x"] - box["width"]) < 2
            assert left_aligned or right_aligned
            image = page.locator("#image").bounding_box()
            assert image is not None and tag["x"] >= image["x"] - 1
            assert tag["x"] + tag["width"] <= image["x"] + image["width"] + 1
            assert 0 <= tag["y"] - (box["y"] + box["height"]) < 6
        screenshot(page, "image-persons")
        page.locator(f'a.face-tag[data-person-id="{hopper}"]').click()
        page.wait_for_url("**/?q=person*")
        assert page.input_value("#q") == f"person:{hopper}"
