"""The rendered book in a real browser.

Builds the book into a temporary folder, serves it on 127.0.0.1 and drives Debian's
headless Chromium (through Playwright) over every page: it loads, logs no console error,
its math is typeset by MathJax (no raw TeX left), every image has loaded, and every
internal link (fragment included) resolves. A screenshot of each page is saved to
``_build/screenshots/`` so a failure can be looked at.
"""

import functools
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urldefrag, urljoin, urlparse
from urllib.request import urlopen

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "_build" / "screenshots"


def toc_pages() -> list[str]:
    """Every page the table of contents lists, as paths of the built HTML."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [chapter["file"] for chapter in part["chapters"]]
    return [f"{file}.html" for file in files]


PAGES = toc_pages() + ["genindex.html", "search.html"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book built from this checkout, served on an ephemeral port of 127.0.0.1."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run(
        [
            str(jupyter_book),
            "build",
            str(ROOT),
            "--path-output",
            str(out),
            "--builder",
            "html",
            "--warningiserror",
            "--nitpick",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    html = out / "_build" / "html"
    handler = functools.partial(QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser test needs Chromium at {CHROMIUM}: apt-get install chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@functools.cache
def fetch(url: str) -> tuple[int, str]:
    try:
        with urlopen(url) as response:  # only 127.0.0.1: internal links
            return response.status, response.read().decode("utf-8", "replace")
    except HTTPError as error:
        return error.code, ""


TEXT_OUTSIDE_CODE = """() => {
    const copy = document.querySelector('main, .bd-main, body').cloneNode(true);
    const code = 'pre, code, script, style, mjx-container, .highlight';
    copy.querySelectorAll(code).forEach(e => e.remove());
    return copy.innerText;
}"""


@pytest.mark.parametrize("page_path", PAGES)
def test_page_in_chromium(site, browser, page_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            m.type == "error" and problems.append(f"console error: {m.text}")
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "response",
        lambda r: (
            r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}")
        ),
    )
    url = urljoin(site, page_path)
    try:
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, (
            f"{page_path}: HTTP error"
        )

        # math: MathJax (served from the book itself) has typeset every formula
        has_math = page.evaluate("document.querySelectorAll('.math').length")
        if has_math:
            page.wait_for_function(
                "window.MathJax && MathJax.startup && MathJax.startup.promise"
            )
            page.evaluate("MathJax.startup.promise")
            typeset = page.evaluate(
                "document.querySelectorAll('mjx-container').length"
            )
            if typeset < has_math:
                problems.append(
                    f"only {typeset} of {has_math} formulas typeset by MathJax"
                )
        text = page.evaluate(TEXT_OUTSIDE_CODE)
        for raw in ["$$", "\\(", "\\[", "\\frac", "\\sqrt"]:
            if raw in text:
                problems.append(f"raw TeX {raw!r} left in the text")

        # images
        page.wait_for_load_state("networkidle")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.getAttribute('src'))"
        )
        problems += [f"image did not load: {src}" for src in broken]

        # internal links, fragments included
        hrefs = page.evaluate(
            "Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
        )
        for href in sorted(set(hrefs)):
            if urlparse(href).netloc != urlparse(site).netloc:
                continue  # external: not followed (no network here)
            target, fragment = urldefrag(href)
            status, body = fetch(target)
            if status != 200:
                problems.append(f"link to {target} gives HTTP {status}")
            elif fragment and not re.search(
                rf'id="{re.escape(fragment)}"', body
            ):
                problems.append(
                    f"link to {href}: no element with id {fragment!r}"
                )
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = page_path.replace("/", "_").replace(".html", ".png")
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        page.close()
    assert not problems, (
        f"{page_path} (screenshot: _build/screenshots/{name}):\n"
        + "\n".join(problems)
    )
