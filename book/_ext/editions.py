"""The book's two editions, English and Chinese, built from the same notebooks.

``tools/zh.py build`` writes the Chinese sources (``zh/``) and a ``_config.yml`` that sets
``book_edition: zh``; ``make book`` builds them into ``_build/html/zh/``, inside the English
book. This extension

1. puts a language switch at the top of every page, linking to the same page in the other
   edition (``/notebooks/03_masks.html`` and ``/zh/notebooks/03_masks.html``);
2. renders the ``{glossary-table}`` directive: the glossary (``book/zh/terms.yml``) as a
   table of English, Chinese and a definition, in both editions.

The switch is added to the page's HTML, not its document tree, so it is not in the search
index.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

TERMS = Path(__file__).resolve().parents[1] / "zh" / "terms.yml"
CHINESE = "zh"  # the Chinese edition's folder inside the English HTML output
SWITCH = {
    # edition: (the other edition's name, as a reader of the other language reads it,
    #            its lang attribute, a tooltip)
    "en": ("中文", "zh-CN", "阅读本页的中文版"),
    "zh": ("English", "en", "Read this page in English"),
}


class GlossaryTable(SphinxDirective):
    """The glossary as a table: English (a term's first form), 中文, 释义 (definition)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(TERMS))
        terms = yaml.safe_load(TERMS.read_text(encoding="utf-8"))
        terms = sorted(terms, key=lambda term: term["en"][0].lower())
        table = nodes.table(classes=["glossary-table"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (30, 20, 50):
            group += nodes.colspec(colwidth=width)
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body
        head += self.row(["English", "中文", "释义"])
        for term in terms:
            body += self.row([term["en"][0], term["zh"], term["def"]])
        return [table]

    @staticmethod
    def row(cells: list[str]) -> nodes.row:
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=text)
            row += entry
        return row


def counterpart(edition: str, pagename: str) -> str:
    """The same page in the other edition, relative to this page."""
    up = "../" * pagename.count("/")
    if edition == "en":
        return f"{up}{CHINESE}/{pagename}.html"
    return f"{up}../{pagename}.html"


def language_switch(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    body = context.get("body")
    if not body or doctree is None:
        return
    edition = app.config.book_edition
    name, lang, tooltip = SWITCH[edition]
    context["body"] = (
        f'<p class="language-switch"><a href="{counterpart(edition, pagename)}" '
        f'hreflang="{lang}" lang="{lang}" title="{tooltip}">{name}</a></p>'
        + body
    )


def setup(app: Sphinx) -> dict:
    app.add_config_value("book_edition", "en", "env")
    app.add_css_file("editions.css")  # in page_fixes' static folder
    app.add_directive("glossary-table", GlossaryTable)
    app.connect("html-page-context", language_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
