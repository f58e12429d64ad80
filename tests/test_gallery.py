"""The attention gallery: every map of a model, drawn in a font that has its characters.

Chapter 7 draws encoder self-attention, masked decoder self-attention and cross-attention
for dates in five languages, Chinese and Japanese among them. The font the grid selects
must have a glyph for every character it draws (checked here with fontTools, reading the
font file matplotlib resolves), and no "Glyph ... missing" warning may be raised: on a
machine without a CJK font the characters become "?" instead.
"""

import functools
import warnings
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from fontTools.ttLib import TTFont  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from transformer_lite import make_model  # noqa: E402
from transformer_lite.helpers import (  # noqa: E402
    font_covering,
    plot_attention_grid,
)
from transformer_lite.train import (  # noqa: E402
    attention_maps,
    cross_attention_maps,
)

# the font `make test` installs (Makefile: CJK_FONT)
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CHINESE, JAPANESE = "2026年11月27日星期五", "2026年11月27日金曜日"


def draw(rows_tokens, title=""):
    """A one-column grid, drawn; returns the figure and the warnings raised."""
    rows = [
        (torch.full((1, len(t), len(t)), 1 / len(t)), list(t), list(t))
        for t in rows_tokens
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plot_attention_grid(rows, rows_tokens, ["head 1"], title=title)
        fig.canvas.draw()
    return fig, [str(w.message) for w in caught]


@functools.cache
def cmap_of(path: str) -> frozenset[int]:
    with TTFont(path, fontNumber=0, lazy=True) as font:
        return frozenset(font.getBestCmap())


def drawn_texts(fig):
    """Every non-empty text of the figure: tick labels, titles, labels."""
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    return [t for t in texts if t.get_visible()]


def test_every_character_drawn_has_a_glyph_in_its_font():
    if not CJK_FONT.exists():
        pytest.skip(f"no CJK font at {CJK_FONT} (make test installs one)")
    fig, caught = draw([CHINESE, JAPANESE, "Friday, November 27"], CHINESE)
    assert not [m for m in caught if "missing from" in m], caught
    drawn = "".join(t.get_text() for t in drawn_texts(fig))
    assert "年" in drawn and "曜" in drawn and "?" not in drawn
    for text in drawn_texts(fig):
        path = font_manager.findfont(
            text.get_fontproperties(), fallback_to_default=False
        )
        missing = {c for c in text.get_text() if ord(c) not in cmap_of(path)}
        assert not missing - {" "}, (text.get_text(), path, missing)
    plt.close(fig)


def test_without_a_font_for_them_characters_become_question_marks():
    unassigned = "\u0378\u0379"  # no font has glyphs for these
    assert font_covering(unassigned) is None
    fig, caught = draw(["ab" + unassigned], title=unassigned)
    assert not [m for m in caught if "missing from" in m], caught
    labels = [t.get_text() for t in drawn_texts(fig)]
    assert "?" in labels and not any(unassigned[0] in t for t in labels)
    plt.close(fig)


def test_the_control_default_font_warns_about_cjk_glyphs():
    # what the grid avoids: CJK drawn in matplotlib's default font
    fig, ax = plt.subplots()
    ax.set_title(JAPANESE, fontfamily="DejaVu Sans")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    assert any("missing from" in str(w.message) for w in caught)
    plt.close(fig)


def test_latin_text_keeps_the_default_font():
    assert font_covering("Friday, November 27, 2026") == "DejaVu Sans"


def test_attention_maps_every_kind_and_layer():
    torch.manual_seed(0)
    model = make_model(30, 30, d_model=16, n_heads=2, d_ff=32, n_layers=3)
    model.eval()
    src = torch.randint(4, 30, (2, 7))
    tgt = torch.randint(4, 30, (2, 5))
    maps = attention_maps(model, src, tgt)
    shapes = {k: [tuple(m.shape) for m in v] for k, v in maps.items()}
    assert shapes == {
        "encoder": [(2, 2, 7, 7)] * 3,
        "decoder": [(2, 2, 5, 5)] * 3,
        "cross": [(2, 2, 5, 7)] * 3,
    }
    for layers in maps.values():
        for weights in layers:
            assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
    for weights in maps["decoder"]:  # masked: nothing on a later position
        assert not weights.triu(1).any()
    assert not maps["encoder"][0].triu(1).eq(0).all()  # the control
    for a, b in zip(
        cross_attention_maps(model, src, tgt), maps["cross"], strict=True
    ):
        assert torch.equal(a, b)
    # the hooks are gone: the model's forward is untouched afterwards
    for layer in model.decoder.layers:
        assert not layer.cross_attn._forward_hooks


def test_grid_refuses_maps_that_do_not_fit_their_tokens():
    rows = [(torch.rand(2, 3, 4), list("abc"), list("abcd"))]
    with pytest.raises(ValueError, match="do not fit 3 columns"):
        plot_attention_grid(rows, ["x"], ["h1", "h2", "h3"])
    plt.close("all")
