"""`rudolph web` in a real headless browser: Debian's /usr/bin/chromium driven by Playwright
(its client only: no browser is downloaded), against a real `rudolph web` process over moto
and the OpenSearch-compatible server. Screenshots go to .artifacts/web-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.test_web import CAT, PEOPLE, SIGN, Photos, analysed_photos, web_server

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


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
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
    yield page
    context.close()
    assert not elsewhere, f"the page asked for something off this machine: {elsewhere}"
    assert not errors, f"JavaScript errors: {errors}"


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
