"""Chapter 5: embeddings, positional encoding, feed-forward, encoder layer and stack —
parity with nn.TransformerEncoderLayer / nn.TransformerEncoder in both norm orders."""

import math

import pytest
import torch
from torch import nn

from transformer_lite import (
    Encoder,
    EncoderLayer,
    FeedForward,
    PositionalEncoding,
    TokenEmbedding,
    padding_mask,
)
from transformer_lite.helpers import seeded_randn

D, H, F = 32, 4, 64


@pytest.fixture
def batch():
    tokens = torch.tensor(
        [[4, 5, 6, 7, 8, 9, 3], [4, 5, 6, 0, 0, 0, 0], [4, 5, 0, 0, 0, 0, 0]]
    )
    return seeded_randn(3, 7, D, seed=0), padding_mask(tokens, 0)


def test_embedding_scale_and_lookup():
    torch.manual_seed(0)
    embed = TokenEmbedding(500, 256)
    tokens = torch.tensor([[1, 2, 3], [3, 2, 1]])
    out = embed(tokens)
    assert out.shape == (2, 3, 256)
    torch.testing.assert_close(out[0, 2], embed.table.weight[3] * 16.0)
    all_ids = embed(torch.arange(500)[None])
    assert 0.9 < all_ids.var().item() < 1.1


@pytest.mark.parametrize("bad", [[[0, 10]], [[-1, 2]], [[3, 12, 11]]])
def test_embedding_refuses_ids_outside_vocab(bad):
    with pytest.raises(
        ValueError,
        match=r"token ids must be in \[0, 10\) for vocab_size=10, got",
    ):
        TokenEmbedding(10, 4)(torch.tensor(bad))


def test_embedding_names_the_bad_ids():
    with pytest.raises(ValueError, match=r"got \[-1, 12\]"):
        TokenEmbedding(10, 4)(torch.tensor([[12, 3, -1, 12]]))


def test_embedding_refuses_float_ids():
    with pytest.raises(TypeError, match="tokens must be integer token ids"):
        TokenEmbedding(10, 4)(torch.zeros(1, 2))


def test_positional_table_matches_the_formula():
    pe = PositionalEncoding(16, max_len=50)
    p, i = 7, 3
    angle = p / 10000 ** (2 * i / 16)
    assert math.isclose(
        pe.table[p, 2 * i].item(), math.sin(angle), abs_tol=1e-6
    )
    assert math.isclose(
        pe.table[p, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6
    )
    assert "table" in dict(pe.named_buffers()) and not list(pe.parameters())


def test_positional_dot_product_depends_only_on_offset():
    table = PositionalEncoding(64, max_len=300).table
    k = torch.arange(40)
    base = table[k] @ table[0]
    for p in [13, 100, 250]:
        torch.testing.assert_close(
            table[p + k] @ table[p], base, atol=1e-4, rtol=0
        )


def test_positional_offset_and_too_long():
    pe = PositionalEncoding(8, max_len=10)
    x = torch.zeros(2, 3, 8)
    torch.testing.assert_close(pe(x, offset=4)[0], pe.table[4:7])
    with pytest.raises(
        ValueError, match=r"positions up to 11 do not fit .* \(max_len=10\)"
    ):
        pe(torch.zeros(1, 11, 8))
    with pytest.raises(ValueError, match=r"positions up to 12 do not fit"):
        pe(x, offset=9)
    with pytest.raises(ValueError, match="d_model=7 must be even"):
        PositionalEncoding(7)


def test_feed_forward_is_position_wise():
    torch.manual_seed(0)
    ff = FeedForward(D, F)
    x = seeded_randn(2, 5, D, seed=1)
    torch.testing.assert_close(ff(x)[:, 2], ff(x[:, 2:3])[:, 0])
    expected = ff.w_2(torch.relu(ff.w_1(x)))
    torch.testing.assert_close(ff(x), expected)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_parity(batch, norm_first, bias):
    x, pad = batch
    torch.manual_seed(1)
    theirs = nn.TransformerEncoderLayer(
        D,
        H,
        F,
        dropout=0.1,
        batch_first=True,
        norm_first=norm_first,
        bias=bias,
    ).eval()
    ours = EncoderLayer.from_torch(theirs).eval()
    assert ours.norm_first == norm_first
    expected = theirs(x, src_key_padding_mask=~pad[:, 0, 0])
    torch.testing.assert_close(ours(x, pad), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stack_parity(batch, norm_first):
    x, pad = batch
    torch.manual_seed(2)
    layer = nn.TransformerEncoderLayer(
        D, H, F, batch_first=True, norm_first=norm_first
    )
    norm = nn.LayerNorm(D) if norm_first else None
    theirs = nn.TransformerEncoder(
        layer, 3, norm=norm, enable_nested_tensor=False
    ).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours = Encoder.from_torch(theirs).eval()
    assert (ours.norm is not None) == norm_first
    expected = theirs(x, src_key_padding_mask=~pad[:, 0, 0])
    torch.testing.assert_close(ours(x, pad), expected, atol=1e-5, rtol=1e-5)


def test_from_torch_keeps_the_dtype(batch):
    x, _ = batch
    layer = (
        nn.TransformerEncoderLayer(D, H, F, batch_first=True).double().eval()
    )
    ours = EncoderLayer.from_torch(layer).eval()
    assert {p.dtype for p in ours.parameters()} == {torch.float64}
    stack = Encoder.from_torch(
        nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    )
    assert {p.dtype for p in stack.parameters()} == {torch.float64}
    torch.testing.assert_close(ours(x.double()), layer(x.double()))


def test_stack_from_torch_refuses_mismatched_final_norm():
    layer = nn.TransformerEncoderLayer(
        D, H, F, batch_first=True, norm_first=True
    )
    with pytest.raises(
        ValueError, match="ends with a LayerNorm exactly when norm_first=True"
    ):
        Encoder.from_torch(
            nn.TransformerEncoder(
                layer, 2, norm=None, enable_nested_tensor=False
            )
        )


def test_from_torch_refuses_gelu_and_wrong_types():
    gelu = nn.TransformerEncoderLayer(
        D, H, F, activation="gelu", batch_first=True
    )
    with pytest.raises(
        ValueError, match="only the ReLU activation is supported"
    ):
        EncoderLayer.from_torch(gelu)
    with pytest.raises(
        TypeError, match="expected nn.TransformerEncoderLayer, got Linear"
    ):
        EncoderLayer.from_torch(nn.Linear(2, 2))


def test_post_norm_formula_and_final_norm_only_in_pre_norm():
    torch.manual_seed(0)
    post = EncoderLayer(D, H, F).eval()
    x = seeded_randn(2, 5, D, seed=3)
    h = post.norm1(x + post.self_attn(x, x, x))
    torch.testing.assert_close(post(x), post.norm2(h + post.ff(h)))
    assert Encoder(D, H, F, 2).norm is None
    assert isinstance(Encoder(D, H, F, 2, norm_first=True).norm, nn.LayerNorm)


def test_layers_are_built_fresh():
    torch.manual_seed(0)
    layers = Encoder(D, H, F, n_layers=3).layers
    w = [layer.ff.w_1.weight for layer in layers]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert w[0].data_ptr() != w[1].data_ptr()


def test_padding_invariance(batch):
    x, pad = batch
    torch.manual_seed(0)
    encoder = Encoder(D, H, F, 2).eval()
    out = encoder(x, pad)
    torch.testing.assert_close(
        out[2, :2], encoder(x[2:, :2])[0], atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("n_layers", [0, -1, 2.0])
def test_bad_n_layers(n_layers):
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        Encoder(D, H, F, n_layers)


def _rotation(k: int, d: int) -> torch.Tensor:
    """Block-diagonal R_k: each (sin, cos) pair turned by the angle ω_i·k."""
    speeds = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    cos, sin = torch.cos(k * speeds), torch.sin(k * speeds)
    r = torch.zeros(d, d, dtype=torch.float64)
    r[0::2, 0::2], r[0::2, 1::2] = torch.diag(cos), torch.diag(sin)
    r[1::2, 0::2], r[1::2, 1::2] = torch.diag(-sin), torch.diag(cos)
    return r.float()


@pytest.mark.parametrize("k", [1, 7, 40])
def test_positional_shift_is_a_rotation(k):
    table = PositionalEncoding(64, max_len=120).table
    moved = table[:-k] @ _rotation(k, 64).T
    torch.testing.assert_close(moved, table[k:], atol=1e-5, rtol=0)


def test_rotated_query_attends_exactly_k_back():
    table, k = PositionalEncoding(64, max_len=120).table, 5
    positions = torch.arange(k, 120)
    back = (table @ _rotation(k, 64) @ table.T).argmax(-1)[positions]
    assert torch.equal(back, positions - k)
    # control: the unrotated query attends to itself
    itself = (table @ table.T).argmax(-1)[positions]
    assert torch.equal(itself, positions)


def test_layer_norm_ignores_the_rest_of_the_batch_batch_norm_does_not():
    scale = torch.logspace(-1, 2, D)
    x = 3 + scale * seeded_randn(4, 5, D, seed=1)
    y = torch.cat([x[:1], 3 + scale * seeded_randn(3, 5, D, seed=2)])
    ln = nn.LayerNorm(D)
    bn = nn.BatchNorm1d(D)  # training mode: batch statistics

    def batch_norm(t):
        return bn(t.transpose(1, 2)).transpose(1, 2)

    torch.testing.assert_close(ln(x)[0], ln(y)[0])
    assert (batch_norm(x)[0] - batch_norm(y)[0]).abs().max() > 0.1
