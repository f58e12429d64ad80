"""Serve MathJax from the built book itself, so math renders with no network.

Sphinx loads MathJax from a CDN by default: a reader offline sees raw TeX. The pinned
package django-static-mathjax ships MathJax 3 as plain files (it needs no Django). This
extension points ``mathjax_path`` at a copy under ``_static`` and copies the parts of
MathJax that the page loads into the HTML output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

ENTRY = "tex-chtml.js"  # TeX input, HTML output; fonts come from output/chtml/fonts
PARTS = [
    ENTRY,
    "input",
    "output",
    "ui",
    "a11y",
    "adaptors",
]  # what tex-chtml.js may load on demand
TARGET = "mathjax"  # under _static/


def mathjax_source() -> Path:
    try:
        import mathjax  # the django-static-mathjax distribution
    except ImportError as error:
        raise ExtensionError(
            "offline_mathjax needs django-static-mathjax (see requirements.txt)"
        ) from error
    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (source / ENTRY).exists():
        raise ExtensionError(
            f"offline_mathjax: {source / ENTRY} is missing; reinstall django-static-mathjax"
        )
    return source


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_source(), Path(app.outdir) / "_static" / TARGET
    for part in PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)


def setup(app: Sphinx) -> dict:
    mathjax_source()  # fail early, with a clear message, if MathJax is not installed
    app.config.mathjax_path = (
        f"{TARGET}/{ENTRY}"  # relative paths are resolved under _static/
    )
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
