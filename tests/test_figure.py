"""Figure 1 is read off the model: change the model and the drawing changes."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from transformer_lite import make_model  # noqa: E402
from transformer_lite.figure import (  # noqa: E402
    CHAPTER_PARTS,
    draw_architecture,
    you_are_here,
)


def boxes_of(stack, **settings):
    with torch.device("meta"):
        model = make_model(20, 20, n_layers=3, **settings)
    boxes = draw_architecture(model)
    plt.close("all")
    return [b.label for b in boxes if b.stack == stack]


def test_norm_first_moves_the_norm_boxes():
    post, pre = boxes_of("encoder"), boxes_of("encoder", norm_first=True)
    assert post[2:] == [
        "Multi-Head Attention",
        "Add & Norm",
        "Feed Forward",
        "Add & Norm",
    ]
    assert pre[2:] == [
        "Norm",
        "Multi-Head Attention",
        "Add",
        "Norm",
        "Feed Forward",
        "Add",
        "Norm (end of stack)",
    ]
    decoder = boxes_of("decoder", norm_first=True)
    assert decoder.count("Norm") == 3 and "Norm (end of stack)" in decoder


def test_the_decoder_reads_the_encoder_and_ties_on_request():
    tied = boxes_of("decoder", tie_embeddings=True)
    untied = boxes_of("decoder")
    assert "Multi-Head Attention (over the encoder)" in tied
    assert "Masked Multi-Head Attention" in tied
    assert any("tied" in label for label in tied)
    assert not any("tied" in label for label in untied)


def test_layers_are_counted_from_the_model():
    with torch.device("meta"):
        model = make_model(20, 20, n_layers=4)
    _, ax = plt.subplots()
    draw_architecture(model, ax=ax)
    texts = [t.get_text() for t in ax.texts]
    plt.close("all")
    assert texts.count("4×") == 2  # both stacks
    assert "N = 4" in ax.get_title()


def test_you_are_here_colours_only_the_chapters_parts():
    boxes = you_are_here(3)
    plt.close("all")
    lit = {b.label for b in boxes if b.highlighted}
    assert lit == {"Masked Multi-Head Attention"}
    assert set(CHAPTER_PARTS) >= set(range(1, 8))


def test_an_unknown_part_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown parts \\['attn'\\]"):
        draw_architecture(highlight=("attn",))
