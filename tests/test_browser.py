"""The rendered book in a real browser.

Builds the book into a temporary folder, serves it on 127.0.0.1 and drives Debian's
headless Chromium (through Playwright) over every page.

At 1280 px each page loads, logs no console error, its math is typeset by MathJax (no raw
TeX left), every image has loaded, every internal link (fragment included) resolves,
nothing overflows its box (no code line, printed output, table or display equation is
wider than the text column), it shows exactly one search box and no empty band above the
page, and its <title> does not repeat itself; each chapter page has its "Run this chapter
yourself" box, whose links (the wheel, the chapter's notebook, the zip) resolve.

At a 390 px phone width no page scrolls sideways and no text runs past the screen, except
inside a box that scrolls on its own (a code block).

The navigation is used, not only looked at: at 390 px and at 1280 px the primary sidebar
(the ☰ button) and the contents (the "On this page" button) open, on screen and on top,
and a link in the sidebar leads to another chapter. The search page's snippets come from
the prose; index.html at the root has a title and a link; the downloads the front page
offers (the package's wheel, the notebooks' zip) are served and hold what they should.

A screenshot of each page is saved to ``_build/screenshots/`` (``*-390.png`` at the phone
width) so a failure can be looked at.
"""

import functools
import html
import http.server
import io
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urldefrag, urljoin, urlparse
from urllib.request import urlopen
from zipfile import ZipFile

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
CHAPTERS = [page for page in PAGES if page.startswith("notebooks/")]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


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
def fetch_bytes(url: str) -> tuple[int, bytes]:
    try:
        with urlopen(url) as response:  # only 127.0.0.1: internal links
            return response.status, response.read()
    except HTTPError as error:
        return error.code, b""


def fetch(url: str) -> tuple[int, str]:
    status, body = fetch_bytes(url)
    return status, body.decode("utf-8", "replace")


def wait_for_math(page) -> None:
    """MathJax has typeset the page's formulas (their width is known only then)."""
    if page.evaluate("document.querySelectorAll('.math').length"):
        page.wait_for_function(
            "window.MathJax && MathJax.startup && MathJax.startup.promise"
        )
        page.evaluate("MathJax.startup.promise")


def screenshot(page, page_path: str, suffix: str = "", full_page=True) -> str:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = page_path.replace("/", "_").replace(".html", f"{suffix}.png")
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)
    return name


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


# Search boxes a reader can see: the sidebar's "Search Ctrl+K" button, a search field.
VISIBLE_SEARCH_BOXES = """() => Array.from(document.querySelectorAll(
        'input[type="search"], input[name="q"], .search-button-field'))
    .filter(el => el.getClientRects().length > 0
        && getComputedStyle(el).visibility !== 'hidden'
        && el.getBoundingClientRect().width > 0)
    .map(el => el.outerHTML.slice(0, 80))"""

# What runs past the right edge of a phone's screen: an element of the page (text, code,
# a heading) whose right edge is beyond the window, unless a box that scrolls on its own
# (overflow-x auto or scroll: a code block, a wide table's wrapper) holds it. A box with
# overflow hidden does not count as holding it: there the text is cut off, which is worse.
PAST_THE_EDGE = """() => {
    const width = document.documentElement.clientWidth;
    const found = [];
    const scrolls = (el) => {
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
            const overflow = getComputedStyle(a).overflowX;
            if (overflow === 'auto' || overflow === 'scroll') return true;
        }
        return false;
    };
    for (const el of document.querySelectorAll('.bd-main *')) {
        if (el.getClientRects().length === 0 || el.closest('details:not([open])')
            || getComputedStyle(el).visibility === 'hidden'  // a closed drawer
            || el.closest('mjx-assistive-mml')) continue;  // MathML for screen readers
        const box = el.getBoundingClientRect();
        if (box.width === 0 || box.right <= width + 1 || scrolls(el)) continue;
        found.push(`${el.tagName.toLowerCase()}.${el.className} reaches ` +
                   `${Math.round(box.right)}px: ` +
                   (el.innerText || el.textContent || '').trim().slice(0, 60));
    }
    return found.slice(0, 8);
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
    page = browser.new_page(viewport=DESKTOP)
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

        # one search box; nothing empty above the page (the article's own header,
        # with the menu buttons, is at the top of the window)
        boxes = page.evaluate(VISIBLE_SEARCH_BOXES)
        if len(boxes) != 1:
            problems.append(f"{len(boxes)} search boxes, not 1: {boxes}")
        top = page.evaluate(
            "(document.querySelector('.bd-header-article') || document.body)"
            ".getBoundingClientRect().top"
        )
        if top > 1:
            problems.append(f"an empty band of {top:.0f}px above the page")
        # the title names the page, then the book, once
        title = page.title()
        halves = title.split(" \u2014 ")
        if not title or len(halves) != len(set(halves)):
            problems.append(f"the page's title is {title!r}")
        if page_path in CHAPTERS:
            problems += run_yourself_problems(page, page_path)

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
        name = screenshot(page, page_path)
        page.close()
    assert not problems, (
        f"{page_path} (screenshot: _build/screenshots/{name}):\n"
        + "\n".join(problems)
    )


def run_yourself_problems(page, page_path: str) -> list[str]:
    """A chapter's "Run this chapter yourself" box: there, visible, saying how."""
    box = page.query_selector(".run-yourself")
    if box is None or not box.is_visible():
        return ["no visible 'Run this chapter yourself' box"]
    problems = []
    text = box.inner_text()
    if "Run this chapter yourself" not in text:
        problems.append("the box has no title")
    if not re.search(
        r'pip install "transformer_lite-[^"]+-py3-none-any\.whl\[plot', text
    ):
        problems.append(
            f"the box does not say how to pip install the wheel: {text!r}"
        )
    hrefs = box.eval_on_selector_all(
        "a[href]", "links => links.map(a => a.href)"
    )
    notebook = Path(page_path).with_suffix(".ipynb").name
    wanted = {
        "the wheel": r"/downloads/transformer_lite-[^/]+\.whl$",
        "the notebooks' zip": r"/downloads/[^/]+\.zip$",
        "this chapter's notebook": rf"/{re.escape(notebook)}$",
    }
    for what, pattern in wanted.items():
        found = [href for href in hrefs if re.search(pattern, href)]
        if not found:
            problems.append(f"the box does not link {what}")
        elif fetch_bytes(found[0])[0] != 200:
            problems.append(
                f"the box's link to {what} ({found[0]}) is broken"
            )
    return problems


@pytest.mark.parametrize("page_path", PAGES)
def test_page_on_a_phone(site, browser, page_path):
    """At 390 px the page does not scroll sideways and no text is cut off."""
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    problems: list[str] = []
    try:
        page.goto(urljoin(site, page_path), wait_until="load")
        wait_for_math(page)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            problems.append(
                f"the page is {width}px wide on a {PHONE['width']}px screen"
            )
        problems += [
            f"past the edge: {p}" for p in page.evaluate(PAST_THE_EDGE)
        ]
    finally:
        name = screenshot(page, page_path, "-390")
        page.close()
    assert not problems, (
        f"{page_path} at {PHONE['width']}px (screenshot: _build/screenshots/{name}):\n"
        + "\n".join(problems)
    )


ON_SCREEN = """(selector) => {
    const el = document.querySelector(selector);
    if (!el) return 'missing';
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none' || box.width < 100)
        return `hidden (${style.visibility}, ${style.display}, ${Math.round(box.width)}px)`;
    if (box.left < -1 || box.right > window.innerWidth + 1)
        return `off screen (${Math.round(box.left)}px to ${Math.round(box.right)}px)`;
    // on top: what is at the middle of its visible part belongs to it (not an overlay)
    const top = Math.max(box.top, 0), bottom = Math.min(box.bottom, window.innerHeight);
    const hit = document.elementFromPoint(
        (box.left + box.right) / 2, (top + bottom) / 2);
    if (!hit || !el.contains(hit)) return `covered by ${hit && hit.outerHTML.slice(0, 60)}`;
    return 'open';
}"""


def open_drawer(page, button: str, drawer: str) -> str:
    """Click a menu button (if the page shows it) and say whether its drawer is open."""
    toggle = page.locator(f"{button}:visible")
    if toggle.count():
        toggle.first.click()
    page.wait_for_timeout(400)  # the drawer slides in
    return page.evaluate(ON_SCREEN, drawer)


@pytest.mark.parametrize(
    "viewport", [PHONE, DESKTOP], ids=["390px", "1280px"]
)
def test_navigation_menus_open(site, browser, viewport):
    """The ☰ button opens the chapters, the contents button this page's sections; a
    chapter link in the sidebar leads to that chapter."""
    page = browser.new_page(viewport=viewport)
    start, target = CHAPTERS[3], CHAPTERS[4]
    try:
        page.goto(urljoin(site, start), wait_until="load")
        page.wait_for_load_state("networkidle")
        primary, secondary = ".bd-sidebar-primary", ".bd-sidebar-secondary"
        toggle = "button.primary-toggle"
        if viewport is DESKTOP:
            # on a wide screen the chapters are shown; the ☰ hides them and shows them again
            assert page.evaluate(ON_SCREEN, primary) == "open"
            page.locator(f"{toggle}:visible").first.click()
            page.wait_for_timeout(400)
            assert page.evaluate(ON_SCREEN, primary) != "open", (
                "the ☰ button does not hide the sidebar"
            )
        else:
            assert page.evaluate(ON_SCREEN, primary) != "open"
            assert page.locator(f"{toggle}:visible").count(), "no ☰ button"
        state = open_drawer(page, toggle, primary)
        assert state == "open", (
            f"the ☰ button does not open the chapters: {state}"
        )
        screenshot(page, start, f"-menu-{viewport['width']}", full_page=False)

        # the contents: on a phone behind its button; at 1280 px shown beside the text
        # (its button is then not shown) or behind its button
        page.reload(wait_until="load")
        state = open_drawer(page, "button.secondary-toggle", secondary)
        assert state == "open", f"the contents do not open: {state}"
        sections = page.locator(f"{secondary} nav a[href^='#']").count()
        assert sections >= 3, f"the contents list {sections} sections"
        screenshot(
            page, start, f"-contents-{viewport['width']}", full_page=False
        )

        # follow a chapter link in the sidebar
        page.reload(wait_until="load")
        if viewport is PHONE:
            open_drawer(page, toggle, primary)
        link = page.locator(f"{primary} a[href$='{Path(target).name}']").first
        link.click()
        page.wait_for_url(f"**/{target}")
        assert page.url == urljoin(site, target)
        assert page.evaluate("document.querySelector('h1').innerText")
    finally:
        page.close()


def test_search_snippets_come_from_the_prose(site, browser):
    """Chapter 3's snippet for "mask" is text of the chapter, not its title and table of
    contents ("...f 3. Masking Contents...") nor the run-yourself box."""
    page = browser.new_page(viewport=DESKTOP)
    try:
        page.goto(urljoin(site, "search.html?q=mask"), wait_until="load")
        chapter = "#search-results li:has(a[href*='03_masks']) p.context"
        page.wait_for_selector(chapter, timeout=30_000)
        snippet = page.locator(chapter).first.inner_text()
        assert "Contents" not in snippet, snippet
        assert "Run this chapter yourself" not in snippet, snippet
        assert "mask" in snippet.lower(), snippet
        assert len(page.evaluate(VISIBLE_SEARCH_BOXES)) == 1
    finally:
        page.close()


def test_root_index_has_a_title_and_a_link(site, browser):
    status, body = fetch(urljoin(site, "index.html"))
    assert status == 200
    title = re.search(r"<title>([^<]+)</title>", body)
    assert title and title.group(1).strip(), body
    root = toc_pages()[0]
    assert re.search(rf'<a href="{re.escape(root)}"', body), body
    assert re.search(
        rf'http-equiv="Refresh" content="0; url={re.escape(root)}"', body
    )
    page = browser.new_page(viewport=DESKTOP)
    try:
        page.goto(site, wait_until="load")
        page.wait_for_url(f"**/{root}")
        # the front page's title is the book's title, as index.html's is
        assert page.title() == title.group(1).strip()
    finally:
        page.close()


def test_front_page_offers_the_package_and_the_notebooks(site):
    """The wheel and the zip the front page links are served and hold the package and
    every chapter's notebook; the wheel's version is the one the pages name."""
    root = toc_pages()[0]
    status, body = fetch(urljoin(site, root))
    assert status == 200
    links = dict.fromkeys(re.findall(r'href="([^"]*downloads/[^"]+)"', body))
    wheels = [link for link in links if link.endswith(".whl")]
    zips = [link for link in links if link.endswith(".zip")]
    assert len(wheels) == 1 and len(zips) == 1, links
    wheel_name = Path(wheels[0]).name
    version = wheel_name.split("-")[1]
    assert re.fullmatch(
        r"transformer_lite-[^-]+-py3-none-any\.whl", wheel_name
    )
    text = html.unescape(re.sub(r"<[^>]+>", "", body))
    assert f'pip install "{wheel_name}[plot' in text

    status, data = fetch_bytes(urljoin(urljoin(site, root), wheels[0]))
    assert status == 200
    with ZipFile(io.BytesIO(data)) as wheel:
        names = wheel.namelist()
        assert "transformer_lite/__init__.py" in names
        metadata = wheel.read(
            f"transformer_lite-{version}.dist-info/METADATA"
        )
        assert f"Version: {version}" in metadata.decode()
        assert "Provides-Extra: plot" in metadata.decode()

    status, data = fetch_bytes(urljoin(urljoin(site, root), zips[0]))
    assert status == 200
    with ZipFile(io.BytesIO(data)) as archive:
        held = sorted(Path(name).name for name in archive.namelist())
    chapters = sorted(
        Path(page).with_suffix(".ipynb").name for page in CHAPTERS
    )
    assert held == chapters
