"""Make the built book self-sufficient: the package and the notebooks, offered for download.

A reader of the online book has no clone of the repository. This extension

1. builds the package's wheel (``pip wheel --no-deps --no-build-isolation``, offline, from a
   copy of the project so the checkout gets no ``build/`` folder) and a zip of the chapters'
   notebooks when the build starts, and copies both into ``downloads/`` of the HTML output
   when it finishes;
2. renders the ``{book-downloads}`` directive (the front page) as a list of those two files;
3. puts a "Run this chapter yourself" box on every chapter page (``notebooks/*``): download
   the wheel, ``pip install "<wheel>[plot]"``, download this chapter's ``.ipynb`` (the copy
   Sphinx keeps under ``_sources/``), open it in Jupyter.

The box is added to the page's HTML, not to its document tree, so it is not in the search
index (every chapter would match "install"); ``page_fixes`` keeps it out of search snippets.
The wheel's name (hence the version) is a config value, so a new version rewrites every page.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

DOWNLOADS = "downloads"  # folder of the HTML output
CHAPTERS = "notebooks/"  # docnames of the chapter pages start with this
PACKAGE = "transformer_lite"
PLACEHOLDER = "<!-- book-downloads -->"
# a chapter whose code imports these needs the package's [train] extra as well
TRAIN_IMPORTS = re.compile(
    r"^\s*(from|import)\s+(babel|tqdm)\b", re.MULTILINE
)
# the folders of the project a wheel needs (every top-level file is copied as well:
# pyproject.toml, README.md, a LICENSE, ...)
PACKAGE_DIRS = [PACKAGE]

_built: dict[str, Path] = {}


def build_wheel(project: Path, into: Path) -> Path:
    """The package's wheel, built offline from a copy of the project."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "project"
        copy.mkdir()
        for item in project.iterdir():
            if item.is_file():
                shutil.copy2(item, copy / item.name)
        for name in PACKAGE_DIRS:
            shutil.copytree(
                project / name,
                copy / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--wheel-dir",
                str(into),
                str(copy),
            ],
            capture_output=True,
            text=True,
        )
    wheels = sorted(into.glob(f"{PACKAGE}-*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise ExtensionError(
            f"building the {PACKAGE} wheel failed (pip wheel, exit {done.returncode}):\n"
            + done.stdout[-2000:]
            + done.stderr[-2000:]
        )
    return wheels[0]


def zip_notebooks(
    source: Path, version: str, into: Path, edition: str = "en"
) -> Path:
    """Every chapter's notebook (outputs included) in one zip, in a folder of its own."""
    notebooks = sorted((source / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    folder = f"{PACKAGE}-{version}-notebooks" + (
        "" if edition == "en" else f"-{edition}"
    )
    path = into / f"{folder}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for notebook in notebooks:
            # a fixed date, so the same notebooks give the same zip
            info = zipfile.ZipInfo(
                f"{folder}/{notebook.name}", (2026, 1, 1, 0, 0, 0)
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, notebook.read_bytes())
    return path


def prepare(app: Sphinx, config: Config) -> None:
    """Build the wheel and the zip before any page is read: the pages name them."""
    source = Path(app.confdir)
    # the Chinese edition's sources (zh/) sit in the project; the package is the same
    project = (source / config.book_project).resolve()
    into = Path(tempfile.mkdtemp(prefix="book-downloads-"))
    wheel = build_wheel(project, into)
    version = wheel.name.split("-")[1]
    notebooks = zip_notebooks(source, version, into, config.book_edition)
    _built.update(wheel=wheel, zip=notebooks, dir=into)
    config.book_wheel = wheel.name
    config.book_version = version


def copy_downloads(app: Sphinx, exception: Exception | None) -> None:
    into = _built.get("dir")
    if into is None:
        return
    try:
        if exception is None and app.builder.format == "html":
            target = Path(app.outdir) / DOWNLOADS
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for key in ("wheel", "zip"):
                shutil.copy2(_built[key], target / _built[key].name)
    finally:
        shutil.rmtree(into, ignore_errors=True)


class BookDownloads(SphinxDirective):
    """``{book-downloads}``: where the page's list of the two downloads goes."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        wheel = self.config.book_wheel
        zip_name = _built["zip"].name if "zip" in _built else "notebooks.zip"
        commands = "\n".join(
            [
                f'pip install "{wheel}[plot,train]"',
                f"unzip {zip_name}",
                "pip install jupyterlab",
                f"jupyter lab {zip_name.removesuffix('.zip')}",
            ]
        )
        block = nodes.literal_block(commands, commands, language="bash")
        return [nodes.raw("", PLACEHOLDER, format="html"), block]


def code(text: str) -> str:
    return f'<code class="docutils literal notranslate">{html.escape(text)}</code>'


def link(href: str, text: str, *, as_code: bool = True) -> str:
    label = code(text) if as_code else html.escape(text)
    return f'<a class="reference download" href="{html.escape(href)}" download>{label}</a>'


# the words of the list and the box, per edition (book_edition)
WORDS = {
    "en": {
        "package": "the package: {wheel} (version {version}, pure Python, needs PyTorch)",
        "notebooks": "the chapters as notebooks, outputs included: {zip}",
        "title": "Run this chapter yourself",
        "needs": "You need Python 3.10 or newer; nothing else from this book's repository.",
        "step1": "Download the package, {wheel}, and install it with the extras this "
        "chapter uses: {install}",
        "step2": "Download this chapter's notebook, {notebook} (or every chapter: {zip}).",
        "step3": "Open it in Jupyter ({jupyter}, then {open}) and run the cells in order: "
        "the package holds what the earlier chapters built.",
        "launch": "Once the book's repository is published, this page also gets buttons to "
        "open it in Colab or Binder.",
    },
    "zh": {
        "package": "程序包：{wheel}（版本 {version}，纯 Python，需要 PyTorch）",
        "notebooks": "各章的 notebook（含输出）：{zip}",
        "title": "自己运行这一章",
        "needs": "只需要 Python 3.10 或更新版本，不需要本书仓库里的其他东西。",
        "step1": "下载程序包 {wheel}，并连同本章用到的附加依赖一起安装：{install}",
        "step2": "下载本章的 notebook {notebook}（或全部章节：{zip}）。",
        "step3": "在 Jupyter 中打开它（{jupyter}，然后 {open}），按顺序运行各个单元："
        "前面各章构建的内容都在程序包里。",
        "launch": "本书仓库公开后，这一页还会有在 Colab 或 Binder 中打开的按钮。",
    },
}


def downloads_list(app: Sphinx, pathto) -> str:
    wheel, version = app.config.book_wheel, app.config.book_version
    notebooks = _built["zip"].name if "zip" in _built else ""
    words = WORDS[app.config.book_edition]
    package = words["package"].format(
        wheel=link(pathto(f"{DOWNLOADS}/{wheel}", 1), wheel),
        version=html.escape(version),
    )
    chapters = words["notebooks"].format(
        zip=link(pathto(f"{DOWNLOADS}/{notebooks}", 1), notebooks)
    )
    return (
        '<ul class="simple book-downloads">'
        f"<li>{package}</li><li>{chapters}</li></ul>"
    )


def needs_train_extra(app: Sphinx, docname: str) -> bool:
    source = Path(app.env.doc2path(docname))
    if source.suffix != ".ipynb":
        return bool(TRAIN_IMPORTS.search(source.read_text(encoding="utf-8")))
    cells = json.loads(source.read_text(encoding="utf-8")).get("cells", [])
    code_text = "\n".join(
        "".join(cell.get("source", ""))
        for cell in cells
        if cell.get("cell_type") == "code"
    )
    return bool(TRAIN_IMPORTS.search(code_text))


def run_yourself_box(app: Sphinx, pagename: str, context: dict) -> str:
    pathto = context["pathto"]
    wheel = app.config.book_wheel
    words = WORDS[app.config.book_edition]
    extras = "plot,train" if needs_train_extra(app, pagename) else "plot"
    notebook = Path(context.get("sourcename") or f"{pagename}.ipynb").name
    notebook_href = pathto(
        f"_sources/{context.get('sourcename', pagename + '.ipynb')}", 1
    )
    zip_name = _built["zip"].name if "zip" in _built else ""
    zip_link = link(pathto(f"{DOWNLOADS}/{zip_name}", 1), zip_name)
    published = app.config.html_theme_options.get("launch_buttons", {}).get(
        "colab_url"
    )
    launch = "" if published else f"<p>{words['launch']}</p>"
    steps = [
        words["step1"].format(
            wheel=link(pathto(f"{DOWNLOADS}/{wheel}", 1), wheel),
            install=code(f'pip install "{wheel}[{extras}]"'),
        ),
        words["step2"].format(
            notebook=link(notebook_href, notebook), zip=zip_link
        ),
        words["step3"].format(
            jupyter=code("pip install jupyterlab"),
            open=code(f"jupyter lab {notebook}"),
        ),
    ]
    items = "".join(f"<li>{step}</li>" for step in steps)
    return (
        '<div class="admonition tip run-yourself" id="run-this-chapter-yourself">'
        f'<p class="admonition-title">{words["title"]}</p>'
        f"<p>{words['needs']}</p><ol>{items}</ol>{launch}</div>"
    )


INTRO_END = re.compile(r'<div class="cell|<section')
TITLE_END = re.compile(r"</h1>")


def insert_boxes(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    body = context.get("body")
    if not body or not app.config.book_wheel:
        return
    if PLACEHOLDER in body:
        body = body.replace(
            PLACEHOLDER, downloads_list(app, context["pathto"])
        )
    if pagename.startswith(CHAPTERS) and doctree is not None:
        # after the chapter's opening prose (its question), before its first cell or section
        title = TITLE_END.search(body)
        start = title.end() if title else 0
        found = INTRO_END.search(body, start)
        at = found.start() if found else len(body)
        body = (
            body[:at] + run_yourself_box(app, pagename, context) + body[at:]
        )
    context["body"] = body


def setup(app: Sphinx) -> dict:
    # "env": a new version re-reads every page, so none names the old wheel
    app.add_config_value("book_wheel", "", "env")
    app.add_config_value("book_version", "", "env")
    # where the package is, relative to the book's sources ("" for the English book)
    app.add_config_value("book_project", "", "env")
    app.add_directive("book-downloads", BookDownloads)
    app.connect("config-inited", prepare)
    app.connect("html-page-context", insert_boxes)
    app.connect("build-finished", copy_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
