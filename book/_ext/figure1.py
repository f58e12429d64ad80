"""The front page's Figure 1, drawn when the book is built.

``transformer_lite.figure.draw_architecture`` reads the paper's Figure 1 off a model's
module tree (chapter 6). The front page is a Markdown page, not a notebook, so it has no
stored output to show; this extension draws the base model's figure into
``book/_figures/figure1.png`` of the book's sources (not committed) before the pages are
read, and the page shows it with a ``{figure}`` directive.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

FIGURE = Path("book") / "_figures" / "figure1.png"


def draw(app: Sphinx) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transformer_lite.figure import draw_architecture

    path = Path(app.srcdir) / FIGURE
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_architecture()
    plt.savefig(path, dpi=100, bbox_inches="tight")
    plt.close("all")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", draw)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
