"""The rendered book in a real browser.

Builds the book into a temporary folder, serves it on 127.0.0.1 and drives Debian's
headless Chromium (through Playwright) over every page: it loads, logs no console error,
its math is typeset by MathJax (no raw TeX left), every image has loaded, and every
internal link (fragment included) resolves, and nothing overflows its box at 1280 px: no
code line, printed output, table or display equation is wider than the text column. A screenshot of each page is saved to
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


# What is wider than its box: code and outputs (<pre>) whose content needs a scroll bar,
# display equations wider than their line, tables wider than what holds them. Folded
# (closed <details>) cells are skipped: a hidden box has no width to compare.
OVERFLOW = """() => {
    const found = [];
    const longest = (el) => (el.innerText || el.textContent || '').split('\\n')
        .reduce((a, b) => (b.trim().length > a.length ? b.trim() : a), '')
        .slice(0, 80);
    const hidden = (el) => el.closest('details:not([open])') !== null
        || el.getClientRects().length === 0;
    const boxes = 'article div.highlight pre, article div.cell_output pre';
    for (const el of document.querySelectorAll(boxes)) {
        if (hidden(el) || el.scrollWidth <= el.clientWidth + 1) continue;
        const kind = el.closest('.cell_output') ? 'output' : 'code';
        found.push(`${kind} ${el.scrollWidth}px wide in a ${el.clientWidth}px ` +
                   `box: ${longest(el)}`);
    }
    const equations = 'article mjx-container[display="true"]';
    for (const el of document.querySelectorAll(equations)) {
        const math = el.querySelector('mjx-math');
        const width = math ? Math.round(math.getBoundingClientRect().width) : 0;
        if (hidden(el) || width <= el.clientWidth + 1) continue;
        found.push(`equation ${width}px wide in a ${el.clientWidth}px line: ` +
                   (el.getAttribute('aria-label') || longest(el)).slice(0, 80));
    }
    for (const el of document.querySelectorAll('article table')) {
        const width = Math.round(el.getBoundingClientRect().width);
        const room = el.parentElement.clientWidth;
        if (hidden(el) || width <= room + 1) continue;
        found.push(`table ${width}px wide in a ${room}px box: ${longest(el)}`);
    }
    return found;
}"""


def test_overflow_check_finds_what_is_too_wide(browser):
    """The check above can fail: a too-long code line and a too-wide table are caught,
    and the same content that fits, or wraps, is not."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    long_line = "x = " + "1 + " * 60 + "1"
    page.set_content(
        "<article style='width: 400px'>"
        f"<div class='highlight'><pre>{long_line}</pre></div>"
        "<div class='highlight'><pre>x = 1</pre></div>"
        f"<div class='cell_output'><pre style='white-space: pre-wrap'>{long_line}"
        "</pre></div>"
        "<div><table><tr>"
        + "<td>a_long_unbreakable_cell</td>"
        * 8
        + "</tr></table></div>"
        "</article>"
    )
    found = page.evaluate(OVERFLOW)
    page.close()
    assert len(found) == 2, found
    assert found[0].startswith("code ") and "1 + 1 + 1" in found[0]
    assert found[1].startswith("table ")


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
        problems += [f"overflow: {o}" for o in page.evaluate(OVERFLOW)]
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
