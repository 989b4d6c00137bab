"""The rendered book in a real browser: Debian's Chromium driven by Playwright, offline.

Needs ``make book`` first (marker ``book``).  The book is served on 127.0.0.1; every request to
another host is aborted and counted as a failure, so the pages are checked as a reader without
network access sees them.  A full-page screenshot of each page goes to ``_build/screenshots``.

The browser is ``$CHROMIUM`` if set, else ``chromium`` on the PATH (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from book_site import ROOT, book_config, built_book
from http_server import serve_folder
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.book


SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # root in containers and CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
]
# What a widget looks like when only its text fallback shows, e.g. "VBox(children=(...))".
WIDGET_REPR = re.compile(
    r"\b(?:VBox|HBox|Box|Button|FloatLogSlider|IntSlider|IntProgress|FloatProgress|Image|HTML|Checkbox|SelectMultiple)\("
)
# A tqdm bar printed as text: "40%|████      | 2/5 [00:01<00:01, 1.9it/s]".
TQDM_TEXT = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+")
WAIT_MS = 60_000
MATHJAX_STARTED = "() => !window.MathJax?.version || MathJax.startup?.promise !== undefined"


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "No Chromium found: run `make browser-deps` as root (apt-get install chromium), "
            "or point $CHROMIUM at a Chromium or Chrome binary."
        )
    return path


@dataclass
class PageVisit:
    """What happened while one page loaded."""

    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_folder(built_book()) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def visit(browser: object, site: str, path: str) -> tuple[object, PageVisit]:
    """Open ``path``; abort and record requests to other hosts; wait for math and widgets."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    log = PageVisit()
    local = urlsplit(site).netloc

    def route(route: object) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            log.failed.append(f"other host: {route.request.url}")
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and log.console_errors.append(m.text))
    page.on("pageerror", lambda e: log.console_errors.append(str(e)))
    page.on("requestfailed", lambda r: log.failed.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and log.failed.append(f"{r.url}: {r.status}"))
    page.goto(site + path, wait_until="networkidle", timeout=WAIT_MS)
    # Wait for MathJax's typesetting where MathJax itself loaded (MathJax.version; a page with
    # widgets but no math has only the widget manager's MathJax settings): startup.promise
    # appears a moment after startup, then settles. Polled on a timer: a headless page need not
    # paint again, so animation frames cannot drive the polling.
    page.wait_for_function(MATHJAX_STARTED, timeout=WAIT_MS, polling=100)
    page.evaluate("() => window.MathJax?.startup?.promise?.then(() => true) ?? true")
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle", timeout=WAIT_MS)
    return page, log


CHAPTERS = ("fine-tuning", "exercises", "techniques", "engineering")
TRAINING_PAGES = CHAPTERS[:3]
PAGES = [
    "index.html",
    "chapters/fine-tuning.html",
    "chapters/exercises.html",
    "chapters/techniques.html",
    "chapters/engineering.html",
]


@pytest.fixture(scope="module")
def visits(browser: object, site: str) -> Iterator[dict[str, tuple[object, PageVisit]]]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    opened = {path: visit(browser, site, path) for path in PAGES}
    for path, (page, _) in opened.items():
        name = path.replace("/", "_").removesuffix(".html")
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    yield opened
    for page, _ in opened.values():
        page.context.close()


def outputs_text(page: object) -> str:
    """The text of every cell output on the page (code cells' sources left out)."""
    return "\n".join(page.locator(".cell_output").all_inner_texts())


@pytest.mark.parametrize("path", PAGES)
def test_no_console_errors_and_no_failed_requests(visits: dict, path: str) -> None:
    _, log = visits[path]
    assert not log.console_errors, "console errors:\n" + "\n".join(log.console_errors)
    assert not log.failed, "failed requests:\n" + "\n".join(log.failed)


@pytest.mark.parametrize("path", PAGES)
def test_every_visible_image_loaded(visits: dict, path: str) -> None:
    page, _ = visits[path]
    images = page.eval_on_selector_all(
        "img",
        "els => els.filter(e => e.checkVisibility())"
        ".map(e => [e.currentSrc.slice(0, 80), e.naturalWidth])",
    )
    broken = [src for src, width in images if width == 0]
    assert not broken, f"images that did not load: {broken}"


@pytest.mark.parametrize(
    ("path", "at_least"),
    [
        ("chapters/fine-tuning.html", 5),
        ("chapters/exercises.html", 2),
        ("chapters/techniques.html", 3),
    ],
)
def test_the_lessons_show_their_figures(visits: dict, path: str, at_least: int) -> None:
    page, _ = visits[path]
    figures = page.eval_on_selector_all(
        ".cell_output img", "els => els.filter(e => e.naturalWidth > 0).length"
    )
    assert figures >= at_least


@pytest.mark.parametrize("path", [f"chapters/{name}.html" for name in TRAINING_PAGES])
def test_math_is_typeset(visits: dict, path: str) -> None:
    page, _ = visits[path]
    math = page.eval_on_selector_all(
        ".math", "els => els.map(e => e.querySelector('mjx-container') !== null)"
    )
    assert math, "no math on the page"
    assert all(math), f"{math.count(False)} of {len(math)} formulas were not typeset"
    text = page.inner_text("main")
    assert "\\(" not in text and "\\[" not in text and "$$" not in text


def test_the_sweep_panel_renders_as_real_controls(visits: dict) -> None:
    page, _ = visits["chapters/exercises.html"]
    page.wait_for_selector(".jupyter-widgets .widget-slider", timeout=WAIT_MS)
    buttons = page.eval_on_selector_all(
        ".jupyter-widgets button", "els => els.map(e => e.innerText.trim())"
    )
    assert {"运行", "停止", "清除"} <= set(buttons), buttons  # the panel's Run, Stop, Clear
    assert page.locator(".jupyter-widgets .widget-slider").count() >= 2
    assert page.locator(".jupyter-widgets select[multiple]").count() >= 1
    assert page.locator(".jupyter-widgets input[type=checkbox]").count() >= 2


@pytest.mark.parametrize("path", PAGES)
def test_widget_outputs_render_and_no_text_stands_in_for_them(visits: dict, path: str) -> None:
    page, _ = visits[path]
    views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    rendered = page.locator(".jupyter-widgets.widget-container, .jupyter-widgets-view").count()
    assert rendered >= min(views, 1)
    text = outputs_text(page)
    assert not WIDGET_REPR.findall(text), WIDGET_REPR.findall(text)[:5]


@pytest.mark.parametrize("path", PAGES)
def test_progress_bars_are_never_raw_text(visits: dict, path: str) -> None:
    page, _ = visits[path]
    text = outputs_text(page)
    assert not TQDM_TEXT.findall(text), TQDM_TEXT.findall(text)[:3]


@pytest.mark.parametrize(
    "notebook",
    [f"chapters/{name}.ipynb" for name in CHAPTERS],
)
def test_the_colab_launch_link_opens_this_notebook_on_main(visits: dict, notebook: str) -> None:
    page, _ = visits[notebook.replace(".ipynb", ".html")]
    repo = urlsplit(book_config()["repository"]["url"]).path.strip("/")
    hrefs = page.eval_on_selector_all(
        "a[href*='colab.research.google.com']", "els => els.map(e => e.href)"
    )
    assert hrefs, "no Colab link on the page"
    expected = f"https://colab.research.google.com/github/{repo}/blob/main/{notebook}"
    assert all(href == expected for href in hrefs), hrefs


@pytest.mark.parametrize("path", PAGES)
def test_no_page_shows_a_traceback(visits: dict, path: str) -> None:
    page, _ = visits[path]
    assert "Traceback (most recent call last)" not in page.inner_text("body")
    assert page.locator(".output.traceback, .output.error").count() == 0


def test_the_photo_panel_shows_its_example_photo_and_verdict(visits: dict) -> None:
    page, _ = visits["chapters/fine-tuning.html"]
    page.wait_for_selector(".jupyter-widgets.widget-upload", timeout=WAIT_MS)
    buttons = page.eval_on_selector_all(
        ".jupyter-widgets button", "els => els.map(e => e.innerText.trim())"
    )
    assert "识别" in buttons, buttons
    photos = page.eval_on_selector_all(
        ".jupyter-widgets img", "els => els.filter(e => e.naturalWidth > 0).length"
    )
    assert photos >= 1
    verdict = " ".join(page.locator(".jupyter-widgets").all_inner_texts())
    assert re.search(r"(热狗|非热狗)[^0-9]{0,12}\d+(\.\d+)?\s*%", verdict), verdict[:300]


@pytest.mark.parametrize("path", [f"chapters/{name}.html" for name in CHAPTERS])
def test_code_and_tables_fit_the_text_column(visits: dict, path: str) -> None:
    """No shown code cell or results table needs a horizontal scroll bar."""
    page, _ = visits[path]
    wide = page.eval_on_selector_all(
        ".cell_input pre, .cell_output pre, main table",
        """els => els.filter(e => e.checkVisibility()).filter(e => {
            const column = e.closest("article") || e.closest("main");
            const scrolls = e.tagName === "PRE" && e.scrollWidth > e.clientWidth + 1;
            const right = e.getBoundingClientRect().right;
            return scrolls || right > column.getBoundingClientRect().right + 1;
        }).map(e => e.tagName + ": " + e.innerText.slice(0, 60))""",
    )
    assert not wide, wide


@pytest.mark.parametrize("path", [f"chapters/{name}.html" for name in CHAPTERS])
def test_hidden_code_toggles_are_labelled_in_chinese(visits: dict, path: str) -> None:
    page, _ = visits[path]
    toggles = page.locator("details.hide summary").all_inner_texts()
    assert toggles, "no hidden code cell on the page"
    assert all("显示代码" in text for text in toggles), toggles[:3]
    assert "Show code cell" not in page.inner_text("main")


def test_screenshots_were_saved(visits: dict) -> None:
    for path in PAGES:
        shot = SCREENSHOTS / (path.replace("/", "_").removesuffix(".html") + ".png")
        assert shot.stat().st_size > 10_000, shot
