"""The web viewer in a real browser (Playwright + Debian's Chromium) against a live uvicorn server.

Checks what a user sees: typing a query shows a result card whose drawn box sits on the word's true
position (PyMuPDF's word box scaled to the thumbnail), the page view draws it too, the heatmap toggle shows
an overlay that is hottest on the word, keyboard shortcuts work. Saves a screenshot to
``test-artifacts/viewer.png`` (gitignored); ``TOKENSEARCH_UPDATE_DOCS_SCREENSHOT=1`` also writes it to
``docs/viewer.png`` (the README's picture), on purpose only: a test run leaves tracked files alone.

The browser: ``TOKENSEARCH_TEST_CHROMIUM`` (default ``/usr/bin/chromium``; ``apt-get install -y chromium``);
``TOKENSEARCH_TEST_CHROMIUM=off`` skips this module explicitly. Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.api_fixtures import LiveServer, build_settings, iou, make_docs
from tests.builders import text_boxes, word_boxes, write_pdf
from tests.cjk_docs import CJK_PAGES
from tests.tokenocr_factory import make_tiny_checkpoint
from tokensearch.api.app import create_app
from tokensearch.engine import Engine

# integration: the viewer in a real browser against a live server
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TOKENSEARCH_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]

if CHROMIUM.lower() == "off":
    pytest.skip("browser tests switched off (TOKENSEARCH_TEST_CHROMIUM=off)", allow_module_level=True)

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def live(tmp_path_factory, mini_encoder):
    tmp = tmp_path_factory.mktemp("viewer")
    settings = build_settings(tmp)
    root = make_docs(settings.roots[0])
    write_pdf(
        root / "harbour-report.pdf",
        [
            [
                "Harbour authority annual report",
                "Cargo volumes rose by twelve percent",
                "The new harbour crane",
                "entered service in May",
            ],
            ["Appendix: harbour tariffs", "Berth fees per metre", "Pilotage and towage"],
        ],
    )
    engine = Engine(settings, encoder=mini_encoder)
    assert not engine.index(root).failed
    with LiveServer(create_app(settings, engine=engine)) as server:
        yield server, root
    engine.close()


@pytest.fixture(scope="module")
def live_with_key(live, tmp_path_factory):
    """A second server on the same index, requiring an API key."""
    server, root = live
    engine = server.server.config.app.state.api.engine
    settings = build_settings(
        tmp_path_factory.mktemp("keyed"), home=engine.settings.home, roots=[root], api_key="viewer-test-key"
    )
    with LiveServer(create_app(settings, engine=engine)) as keyed:
        yield keyed, root


@pytest.fixture(scope="module")
def live_zh(tmp_path_factory):
    """A server on a Chinese born-digital PDF indexed with a tiny bilingual official-layout checkpoint."""
    tmp = tmp_path_factory.mktemp("viewer-zh")
    ckpt = make_tiny_checkpoint(tmp / "TokenOCR", bilingual=True)
    settings = build_settings(tmp, model=f"tokenocr:{ckpt}")
    pdf = write_pdf(settings.roots[0] / "fapiao.pdf", CJK_PAGES)
    engine = Engine(settings)
    assert not engine.index(settings.roots[0]).failed
    with LiveServer(create_app(settings, engine=engine)) as server:
        yield server, pdf
    engine.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set TOKENSEARCH_TEST_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    pg = ctx.new_page()
    # a CI machine busy with other work (training on both cores) answered a first search after 30 s
    pg.set_default_timeout(90_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    expected = "Failed to load resource: the server responded with a status of 4"  # error states under test
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(expected) else None)
    yield pg
    ctx.close()
    assert not errors, errors


def _px_box(img_bb: dict, b) -> tuple[float, float, float, float]:
    return (
        img_bb["x"] + b[0] * img_bb["width"],
        img_bb["y"] + b[1] * img_bb["height"],
        img_bb["x"] + b[2] * img_bb["width"],
        img_bb["y"] + b[3] * img_bb["height"],
    )


def _norm_box(img_bb: dict, bb: dict) -> tuple[float, float, float, float]:
    return (
        (bb["x"] - img_bb["x"]) / img_bb["width"],
        (bb["y"] - img_bb["y"]) / img_bb["height"],
        (bb["x"] + bb["width"] - img_bb["x"]) / img_bb["width"],
        (bb["y"] + bb["height"] - img_bb["y"]) / img_bb["height"],
    )


def _wait_image(pg, selector: str) -> None:
    pg.wait_for_function(
        "(s) => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
        arg=selector,
        timeout=20_000,
    )


def test_search_boxes_viewer_and_heatmap(live, page):
    server, root = live
    pg = page
    pg.goto(server.url + "/")
    pg.wait_for_selector("#welcome:not([hidden])")
    # the welcome screen lists the indexed documents
    pg.wait_for_function("() => document.querySelectorAll('#recent .card').length >= 4")
    assert "harbour-report.pdf" in pg.locator("#recent").inner_text()
    assert pg.evaluate("document.activeElement.id") == "q"  # the search box starts focused
    pg.keyboard.press("Escape")  # leave it ...
    assert pg.evaluate("document.activeElement.id") != "q"
    pg.keyboard.press("/")  # ... and come back with the shortcut
    assert pg.evaluate("document.activeElement.id") == "q"
    pg.keyboard.type("crane")
    pg.keyboard.press("Enter")

    # the query is in the URL (shareable) and the result card shows up
    pg.wait_for_selector("#results .card")
    assert pg.url.endswith("/?q=crane")
    first = pg.locator("#results .card").first
    assert first.locator(".name").inner_text() in ("minutes.pdf", "harbour-report.pdf")
    name = first.locator(".name").inner_text()
    page_no = int(first.locator(".line span").first.inner_text().split()[-1])
    assert "score" in first.inner_text()
    _wait_image(pg, "#results .card .thumb img")

    # the drawn box sits where PyMuPDF says the word is, scaled to the thumbnail
    img_bb = first.locator(".thumb img").bounding_box()
    box_bb = first.locator(".box").first.bounding_box()
    truth = word_boxes(root / name, page_no, "crane")
    assert truth
    tx0, ty0, tx1, ty1 = _px_box(img_bb, truth[0])
    tol = max(4.0, 0.02 * img_bb["width"])
    assert abs(box_bb["x"] - tx0) <= tol and abs(box_bb["x"] + box_bb["width"] - tx1) <= tol, (box_bb, (tx0, tx1))
    assert abs(box_bb["y"] - ty0) <= tol and abs(box_bb["y"] + box_bb["height"] - ty1) <= tol, (box_bb, (ty0, ty1))
    assert iou(_norm_box(img_bb, box_bb), truth[0]) >= 0.5
    # the close-up strip under the thumbnail is centred on the same box, magnified
    strip = first.locator(".snippet").bounding_box()
    sbox = first.locator(".snippet .box").first.bounding_box()
    assert abs(sbox["x"] + sbox["width"] / 2 - (strip["x"] + strip["width"] / 2)) < 3
    assert abs(sbox["y"] + sbox["height"] / 2 - (strip["y"] + strip["height"] / 2)) < 3
    assert sbox["width"] > 2 * box_bb["width"]
    _wait_image(pg, ".snippet img")
    pg.screenshot(path=str(_artifact("viewer-results.png")))

    # open the page: large view, same box over the word
    first.click()
    pg.wait_for_selector("#viewer:not([hidden])")
    _wait_image(pg, "#page-img")
    pg.wait_for_function("() => document.querySelectorAll('#v-boxes .box').length > 0")
    assert "doc=" in pg.url and f"page={page_no}" in pg.url
    assert pg.locator("#v-name").inner_text() == name
    pg.wait_for_timeout(300)  # let the pulse animation settle before measuring
    vimg = pg.locator("#page-img").bounding_box()
    vbox = pg.locator("#v-boxes .box").first.bounding_box()
    assert iou(_norm_box(vimg, vbox), truth[0]) >= 0.5, (_norm_box(vimg, vbox), truth[0])

    # heatmap toggle: an overlay canvas appears, hottest on the word
    assert pg.locator("#heat").is_hidden()
    pg.keyboard.press("h")
    pg.wait_for_selector("#heat:not([hidden])")
    pg.wait_for_selector("#heat-tokens button")
    assert pg.locator("#heat-toggle").get_attribute("aria-pressed") == "true"
    chips = pg.locator("#heat-tokens button").all_inner_texts()
    assert chips[0] == "whole query" and len(chips) >= 2
    hot = pg.evaluate("""() => {
        const c = document.getElementById('heat'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let best = -1, at = 0, visible = 0;
        for (let i = 3; i < d.length; i += 4) {
            if (d[i] > 0) visible++;
            if (d[i] > best) { best = d[i]; at = (i - 3) / 4; }
        }
        return {w: c.width, h: c.height, x: at % c.width, y: Math.floor(at / c.width), best, visible};
    }""")
    assert hot["best"] > 100 and hot["visible"] > 0
    hx, hy = (hot["x"] + 0.5) / hot["w"], (hot["y"] + 0.5) / hot["h"]
    t = truth[0]
    assert t[0] - 0.03 <= hx <= t[2] + 0.03 and t[1] - 0.03 <= hy <= t[3] + 0.03, ((hx, hy), t)
    heat_bb = pg.locator("#heat").bounding_box()
    assert abs(heat_bb["width"] - vimg["width"]) < 2 and abs(heat_bb["height"] - vimg["height"]) < 2
    pg.locator("#heat-tokens button").nth(2).click()  # a single token's map
    assert pg.locator("#heat-tokens button").nth(2).get_attribute("aria-pressed") == "true"
    vb = pg.locator("#v-boxes .box").first.bounding_box()
    pg.mouse.dblclick(vb["x"] + vb["width"] / 2, vb["y"] + vb["height"] / 2)  # zoom in on the hit
    pg.wait_for_timeout(200)
    zoomed = pg.locator("#v-boxes .box").first.bounding_box()
    assert zoomed["width"] > 1.8 * vb["width"]
    assert abs(zoomed["x"] + zoomed["width"] / 2 - (vb["x"] + vb["width"] / 2)) < 3  # around the cursor
    shot = pg.screenshot()
    targets = [_artifact("viewer.png")]
    if os.environ.get("TOKENSEARCH_UPDATE_DOCS_SCREENSHOT") == "1":
        targets.append(REPO / "docs" / "viewer.png")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shot)

    # next hit with j, previous with k; Esc back to the results
    total = pg.evaluate("() => state.total")
    if total > 1:
        pg.keyboard.press("j")
        pg.wait_for_function("() => document.getElementById('hit-pos').textContent.startsWith('2 /')")
        pg.keyboard.press("k")
        pg.wait_for_function("() => document.getElementById('hit-pos').textContent.startsWith('1 /')")
    pg.keyboard.press("Escape")
    pg.wait_for_selector("#viewer", state="hidden")
    assert pg.url.endswith("/?q=crane")


def _type_while_healthz_is_held(pg, url: str, query: str) -> list:
    """Open the app with its /healthz requests held (returned: the routes to let through) and type ``query``."""
    held: list = []
    pg.route("**/healthz", lambda route: held.append(route))
    pg.goto(url + "/")
    pg.wait_for_function("() => document.readyState === 'complete'")
    pg.locator("#q").fill(query)
    return held


def test_a_query_typed_before_the_app_has_started_is_searched(live, page):
    """Enter pressed while the app still waits for /healthz (held here): the app's search answers it, with
    the query in the URL, rather than the form's native submit reloading the page."""
    server, _ = live
    pg = page
    held = _type_while_healthz_is_held(pg, server.url, "crane")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#results .card", timeout=30_000)
    assert pg.url.endswith("/?q=crane") and held
    for route in held:
        route.continue_()
    pg.wait_for_timeout(500)
    assert pg.locator("#results .card").count() >= 1 and pg.url.endswith("/?q=crane")  # start-up kept the answer


def test_a_query_typed_while_the_app_starts_stays_in_the_box_for_its_enter(live, page):
    """Typed while /healthz is on its way (held here), Enter pressed after the start-up has shown the welcome
    screen: the typed query is still in the box and is what gets searched (the start-up used to empty the box,
    so that Enter searched nothing)."""
    server, _ = live
    pg = page
    held = _type_while_healthz_is_held(pg, server.url, "crane")
    for _ in range(200):  # the route handler runs while playwright waits
        if held:
            break
        pg.wait_for_timeout(50)
    assert held
    held.pop().continue_()
    pg.wait_for_selector("#welcome", state="visible")
    assert pg.locator("#q").input_value() == "crane"
    pg.unroute("**/healthz")  # lets the welcome screen's own /healthz through
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#results .card", timeout=30_000)
    assert pg.url.endswith("/?q=crane")


def test_page_navigation_zoom_and_shared_urls(live, page):
    server, root = live
    pg = page
    pg.goto(server.url + "/?q=tariffs")
    pg.wait_for_selector("#results .card")
    pg.locator("#results .card").first.click()
    _wait_image(pg, "#page-img")
    assert pg.locator("#v-page").inner_text() == "page 2 of 2"
    assert pg.locator("#next-page").is_disabled()
    src2 = pg.locator("#page-img").get_attribute("src")
    pg.keyboard.press("[")
    pg.wait_for_function("() => document.getElementById('v-page').textContent === 'page 1 of 2'")
    pg.wait_for_function(
        "(s) => document.getElementById('page-img').src !== s && document.getElementById('page-img').complete", arg=src2
    )
    assert pg.locator("#v-boxes .box").count() == 0  # no hit on page 1 for this query
    assert "page=1" in pg.url
    before = pg.locator("#page-img").bounding_box()["width"]
    pg.keyboard.press("+")
    assert pg.locator("#page-img").bounding_box()["width"] > before * 1.2
    pg.keyboard.press("0")
    fit = pg.locator("#page-img").bounding_box()
    stage = pg.locator("#stage").bounding_box()
    assert fit["height"] <= stage["height"] + 1 and fit["width"] <= stage["width"] + 1
    # the URL is shareable: opening it in a fresh page restores the same view
    url = pg.url
    pg.goto("about:blank")
    pg.goto(url)
    _wait_image(pg, "#page-img")
    assert pg.locator("#v-page").inner_text() == "page 1 of 2"
    assert pg.locator("#q").input_value() == "tariffs"
    pg.keyboard.press("/")  # a new search from the page view: back to the results, in the search box
    pg.wait_for_selector("#viewer", state="hidden")
    assert pg.evaluate("document.activeElement.id") == "q"


def test_empty_and_error_states(live, page):
    server, _ = live
    pg = page
    pg.goto(server.url + "/?q=zzzqqqxxyy")
    pg.wait_for_selector("#empty:not([hidden])")
    assert "zzzqqqxxyy" in pg.locator("#empty").inner_text()
    assert pg.locator("#results .card").count() == 0
    pg.goto(server.url + "/?q=" + "x" * 300)  # longer than the server's limit: a clear message
    pg.wait_for_selector("#banner:not([hidden])")
    assert "256" in pg.locator("#banner").inner_text()


def test_keyboard_selection_in_the_results(live, page):
    server, _ = live
    pg = page
    pg.goto(server.url + "/?q=harbour")
    pg.wait_for_function("() => document.querySelectorAll('#results .card').length >= 2")
    pg.keyboard.press("j")
    assert pg.locator("#results .card.selected").get_attribute("data-index") == "0"
    pg.keyboard.press("j")
    assert pg.locator("#results .card.selected").get_attribute("data-index") == "1"
    pg.keyboard.press("k")
    assert pg.locator("#results .card.selected").get_attribute("data-index") == "0"
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#viewer:not([hidden])")


def test_filters_narrow_the_results_and_stay_in_the_url(live, page):
    """Type a query, set a filter: only matching documents remain, the same ones the API gives for the same
    filter; the filter is in the URL, a shared URL restores it; cards show what was read, the date, the page
    count and a link to the original file at that page."""
    server, root = live
    pg = page
    pg.goto(server.url + "/")
    pg.locator("#q").fill("harbour")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#results .card")
    names = set(pg.locator("#results .card .name").all_inner_texts())
    assert "harbour-report.pdf" in names and len(names) >= 2, names

    pg.locator("#f-path").fill("harbour*")
    pg.keyboard.press("Enter")
    pg.wait_for_function(
        "() => { const n = [...document.querySelectorAll('#results .card .name')]; "
        "return n.length > 0 && n.every(e => e.textContent === 'harbour-report.pdf'); }"
    )
    assert "path=harbour*" in unquote(pg.url) and "q=harbour" in pg.url
    api = pg.request.get(server.url + "/api/v1/search?q=harbour&k=24&path=harbour*").json()
    shown_pages = [int(t.split()[-1]) for t in pg.locator("#results .card .line span:first-child").all_inner_texts()]
    assert [(h["name"], h["page"]) for h in api["hits"]] == [("harbour-report.pdf", p) for p in shown_pages]

    first = pg.locator("#results .card").first
    assert first.locator(".read").inner_text().lower() == "harbour"
    assert first.locator(".pages").inner_text() == "2 pages"
    assert first.locator(".modified").inner_text() == api["hits"][0]["modified"][:10]
    href = first.locator("a.file").get_attribute("href")
    assert href == f"/api/v1/documents/{api['hits'][0]['doc_id']}/file#page={shown_pages[0]}"
    original = pg.request.get(server.url + href.split("#")[0])
    assert original.ok and original.body() == (root / "harbour-report.pdf").read_bytes()

    pg.select_option("#f-type", "image")  # applies at once: no image holds the word
    pg.wait_for_selector("#empty:not([hidden])")
    assert "type=image" in pg.url and pg.locator("#results .card").count() == 0
    pg.select_option("#f-type", "pdf")
    pg.wait_for_selector("#results .card")
    shared = pg.url
    pg.goto(shared)  # a shared URL restores the query and the filters
    pg.wait_for_selector("#results .card")
    assert pg.locator("#f-path").input_value() == "harbour*" and pg.locator("#f-type").input_value() == "pdf"
    assert set(pg.locator("#results .card .name").all_inner_texts()) == {"harbour-report.pdf"}
    pg.locator("#results .card").first.click()  # the page view links to the original file too
    pg.wait_for_selector("#v-file:not([hidden])")
    assert pg.locator("#v-file").get_attribute("href").startswith(href.split("#")[0])
    pg.keyboard.press("Escape")
    pg.locator("#f-clear").click()
    pg.wait_for_function(
        "() => new Set([...document.querySelectorAll('#results .card .name')].map(n => n.textContent)).size >= 2"
    )
    assert "path=" not in pg.url


def test_viewer_asks_for_the_api_key_and_sends_it(live_with_key, page):
    server, _ = live_with_key
    pg = page
    pg.goto(server.url + "/?q=crane")
    pg.wait_for_selector("#key-dialog[open]")
    pg.fill("#key-input", "viewer-test-key")
    pg.locator("#key-dialog button[value=ok]").click()
    pg.wait_for_selector("#results .card")
    _wait_image(pg, "#results .card .thumb img")  # images fetched with the key header (blob URLs)
    assert pg.locator("#results .card .thumb img").first.get_attribute("src").startswith("blob:")
    assert pg.evaluate("localStorage.getItem('tokensearch.key')") == "viewer-test-key"
    assert pg.locator("#key-button").is_visible()


def test_upload_from_the_viewer(live, page, tmp_path):
    server, _ = live
    pg = page
    pdf = write_pdf(tmp_path / "upload-me.pdf", [["Quokka census results", "Rottnest Island survey"]])
    pg.goto(server.url + "/?q=Quokka")
    pg.wait_for_selector("#empty:not([hidden])")
    pg.set_input_files("#upload", str(pdf))
    pg.wait_for_function("() => document.getElementById('toast').textContent.startsWith('Indexed')", timeout=60_000)
    pg.wait_for_selector("#results .card")  # the results refresh by themselves
    assert pg.locator("#results .card .name").first.inner_text() == "upload-me.pdf"


def test_chinese_query_boxes_and_labels(live_zh, page):
    """Typed, shared in the URL, boxed on the thumbnail and the page, its heatmap chips labelled in Chinese.
    Debian's chromium has no CJK font unless one is installed (fonts-noto-cjk): the DOM text is checked,
    which is what a browser with the font draws; the page images are rendered by PyMuPDF, with the
    PDF's own font."""
    server, pdf = live_zh
    pg = page
    pg.goto(server.url + "/")
    pg.locator("#q").fill("总金额")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#results .card")
    assert unquote(pg.url).endswith("/?q=总金额") and pg.title().startswith("总金额")
    first = pg.locator("#results .card").first
    assert first.locator(".name").inner_text() == "fapiao.pdf"
    _wait_image(pg, "#results .card .thumb img")
    truth = text_boxes(pdf, 1, "总金额")
    img_bb = first.locator(".thumb img").bounding_box()
    assert iou(_norm_box(img_bb, first.locator(".box").first.bounding_box()), truth[0]) >= 0.5

    first.click()
    _wait_image(pg, "#page-img")
    pg.wait_for_function("() => document.querySelectorAll('#v-boxes .box').length > 0")
    pg.wait_for_timeout(300)  # let the pulse animation settle before measuring
    vbox = _norm_box(pg.locator("#page-img").bounding_box(), pg.locator("#v-boxes .box").first.bounding_box())
    assert iou(vbox, truth[0]) >= 0.5, (vbox, truth[0])
    pg.keyboard.press("h")
    pg.wait_for_selector("#heat-tokens button")
    chips = pg.locator("#heat-tokens button").all_inner_texts()
    assert chips[0] == "whole query" and [c.replace("\u2423", "") for c in chips[1:]] == ["总", "金", "额"], chips
    pg.screenshot(path=str(_artifact("viewer-zh.png")))

    pg.goto(server.url + "/?q=合同")  # written nowhere: the empty state names the query
    pg.wait_for_selector("#empty:not([hidden])")
    assert "合同" in pg.locator("#empty").inner_text()


def _artifact(name: str) -> Path:
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    return out / name


def test_chromium_binary_is_usable():
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists()
