"""The built book is self-contained: no page loads a script, stylesheet or font from another host.

The tests marked ``book`` need ``make book`` first.  The browser test (``test_book_browser.py``)
checks what pages request at run time; this one reads the HTML and CSS files themselves.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from book_site import built_book

CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""")
LOADED_LINKS = {"stylesheet", "preload", "modulepreload", "icon", "manifest"}


class _Loads(HTMLParser):
    """Collects the URLs a page loads as scripts, stylesheets, fonts and inline-CSS resources."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "script" and attr.get("src"):
            self.urls.append(attr["src"])
        elif tag == "link" and LOADED_LINKS & set(attr.get("rel", "").lower().split()):
            self.urls.append(attr.get("href", ""))
        elif tag == "style":
            self._in_style = True
        if "style" in attr:
            self.urls += CSS_URL.findall(attr["style"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += CSS_URL.findall(data)


def is_remote(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.netloc) or parts.scheme not in ("", "data", "blob")


def local_target(base: Path, url: str) -> Path:
    return (base.parent / unquote(urlsplit(url).path)).resolve()


def page_loads(page: Path) -> list[str]:
    parser = _Loads()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.urls


def html_pages() -> list[Path]:
    """The book's pages (not the theme's template fragments that Sphinx copies to _static)."""
    book = built_book()
    return sorted(p for p in book.rglob("*.html") if p.relative_to(book).parts[0] != "_static")


def css_files() -> list[Path]:
    return sorted((built_book() / "_static").rglob("*.css"))


@pytest.mark.book
def test_the_book_has_its_pages() -> None:
    names = {p.relative_to(built_book()).as_posix() for p in html_pages()}
    assert {"index.html", "chapters/fine-tuning.html", "chapters/exercises.html"} <= names


@pytest.mark.book
def test_no_page_loads_anything_from_another_host() -> None:
    remote = {
        f"{page.relative_to(built_book())}: {url}"
        for page in html_pages()
        for url in page_loads(page)
        if is_remote(url)
    }
    assert not remote, "pages load from other hosts:\n" + "\n".join(sorted(remote))


@pytest.mark.book
def test_no_stylesheet_imports_or_fonts_from_another_host() -> None:
    remote = {
        f"{css.relative_to(built_book())}: {url}"
        for css in css_files()
        for url in CSS_URL.findall(css.read_text(encoding="utf-8", errors="replace"))
        if is_remote(url)
    }
    assert not remote, "stylesheets load from other hosts:\n" + "\n".join(sorted(remote))


@pytest.mark.book
def test_every_local_script_and_stylesheet_exists() -> None:
    missing = {
        f"{page.relative_to(built_book())}: {url}"
        for page in html_pages()
        for url in page_loads(page)
        if not is_remote(url) and not url.startswith("data:")
        if not local_target(page, url).is_file()
    }
    assert not missing, "pages load files the build lacks:\n" + "\n".join(sorted(missing))


@pytest.mark.book
@pytest.mark.parametrize(
    ("page", "asset"),
    [
        ("chapters/fine-tuning.html", "_static/mathjax/tex-mml-chtml.js"),
        ("chapters/exercises.html", "_static/requirejs/require.js"),
        ("chapters/exercises.html", "_static/@jupyter-widgets/html-manager/dist/embed-amd.js"),
    ],
)
def test_pages_load_the_vendored_assets(page: str, asset: str) -> None:
    path = built_book() / page
    assert built_book() / asset in {local_target(path, url) for url in page_loads(path)}


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.org/x.js",
        "//cdn.example.org/x.css",
        "http://127.0.0.1:8000/x.js",
        "ftp://x/y.css",
    ],
)
def test_remote_urls_are_recognised(url: str) -> None:
    assert is_remote(url)


@pytest.mark.parametrize(
    "url", ["_static/x.js", "../_static/x.css?v=1", "data:font/woff2;base64,AA"]
)
def test_local_urls_are_recognised(url: str) -> None:
    assert not is_remote(url)


def test_the_parser_finds_scripts_stylesheets_and_inline_css() -> None:
    page = (
        '<html><head><script src="https://a/x.js"></script>'
        '<link rel="stylesheet" href="https://b/y.css"><link rel="canonical" href="https://c/">'
        "<style>@font-face { src: url('https://d/f.woff2') }</style></head>"
        '<body><div style="background: url(https://e/i.png)"></div></body></html>'
    )
    parser = _Loads()
    parser.feed(page)
    assert parser.urls == [
        "https://a/x.js",
        "https://b/y.css",
        "https://d/f.woff2",
        "https://e/i.png",
    ]
