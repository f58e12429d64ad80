"""Small fixes to the rendered pages (the browser test checks each).

1. sphinx-thebe registers its inline configuration script while documents are read, after
   the HTML builder has collected the scripts, and with Sphinx 7.4 the same script is then
   emitted twice; the second copy fails with "Identifier 'THEBE_JS_URL' has already been
   declared". Each page keeps the first copy of every script.
2. On a first visit (empty localStorage) the theme sets the colour mode to "" and then logs
   "Got invalid theme mode" before falling back to "auto". A tiny head script starts the
   mode at "auto" instead.
3. Printed output wraps at the edge of its box rather than running past it
   (``static/page_fixes.css``); code is formatted to fit the column (ruff, 78 columns).
4. On a phone (390 px) no page scrolls sideways: headings, inline code, links and API
   signatures wrap where they must (``static/page_fixes.css``); code blocks scroll inside
   their own box.
5. The search page shows one search box (its own), not the sidebar's as well; a search
   result's snippet comes from the page's prose, not from the print-only copy of its title
   and table of contents that the theme puts first in the page (``static/search_fixes.js``).
6. The front page's title is the book's title once, not "transformer_lite — transformer_lite".
7. ``index.html`` at the root of the output is a page with a title and a link to the front
   page, as well as the redirect (sphinx-external-toc writes a bare ``<meta>`` redirect).
"""

from __future__ import annotations

import html
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util.osutil import relative_uri

STATIC = Path(__file__).parent / "static"

START_IN_AUTO_MODE = (
    'if (!localStorage.getItem("mode")) { localStorage.setItem("mode", "auto"); }'
    ' document.documentElement.dataset.mode = localStorage.getItem("mode");'
)


def drop_duplicate_scripts(
    app: Sphinx, pagename, templatename, context, doctree
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        body = dict(getattr(script, "attributes", {})).get("body")
        key = (
            ("body", body)
            if body
            else ("file", str(getattr(script, "filename", script)))
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def title_once(app: Sphinx, exception: Exception | None) -> None:
    """The front page's <title>: "transformer_lite", not the page title plus the book's."""
    if exception is not None or app.builder.format != "html":
        return
    title = app.config.html_title or app.config.project
    page = Path(app.outdir) / f"{app.config.root_doc}.html"
    if not title or not page.exists():
        return
    doubled = (
        f"<title>{html.escape(title)} &#8212; {html.escape(title)}</title>"
    )
    text = page.read_text(encoding="utf-8")
    if doubled in text:
        page.write_text(
            text.replace(doubled, f"<title>{html.escape(title)}</title>"),
            encoding="utf-8",
        )


INDEX = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<meta http-equiv="Refresh" content="0; url={url}">
<link rel="icon" href="_static/{favicon}">
</head>
<body>
<p>{title}: <a href="{url}">go to the book's front page</a>.</p>
</body>
</html>
"""


def write_index(app: Sphinx, exception: Exception | None) -> None:
    """A root index.html that a person can read, not only a redirect."""
    if exception is not None or app.builder.format != "html":
        return
    root = app.config.root_doc
    if root == "index":
        return
    url = relative_uri("index.html", f"{root}.html")
    favicon = Path(app.config.html_favicon or "favicon.ico").name
    (Path(app.outdir) / "index.html").write_text(
        INDEX.format(
            lang=html.escape(app.config.language or "en"),
            title=html.escape(app.config.html_title or app.config.project),
            url=html.escape(url),
            favicon=html.escape(favicon),
        ),
        encoding="utf-8",
    )


def add_static_path(app: Sphinx) -> None:
    app.config.html_static_path.append(str(STATIC))


def setup(app: Sphinx) -> dict:
    app.add_js_file(None, body=START_IN_AUTO_MODE, priority=1)
    app.connect("builder-inited", add_static_path)
    app.add_css_file("page_fixes.css")
    app.add_js_file("search_fixes.js")
    # before sphinx-external-toc's build-finished, which writes index.html if it is missing
    app.connect("build-finished", write_index, priority=400)
    app.connect("build-finished", title_once)
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
