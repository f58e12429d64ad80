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
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

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


def add_static_path(app: Sphinx) -> None:
    app.config.html_static_path.append(str(STATIC))


def setup(app: Sphinx) -> dict:
    app.add_js_file(None, body=START_IN_AUTO_MODE, priority=1)
    app.connect("builder-inited", add_static_path)
    app.add_css_file("page_fixes.css")
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
