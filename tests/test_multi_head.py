"""Chapter 4: MultiHeadAttention — fused and written-out paths agree, parity with
nn.MultiheadAttention through from_torch, costs, dropout, and clear errors."""

import pytest
import torch
from torch import nn

from transformer_lite import MultiHeadAttention, causal_mask, padding_mask
from transformer_lite.helpers import seeded_randn

D, H = 32, 4


@pytest.fixture
def inputs():
    src = seeded_randn(3, 7, D, seed=0)
    tgt = seeded_randn(3, 5, D, seed=1)
    tokens = torch.tensor(
        [[4, 5, 6, 7, 8, 9, 3], [4, 5, 6, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0, 0]]
    )
    return src, tgt, padding_mask(tokens, 0)


def masks(pad):
    return {
        "none": None,
        "padding": pad,
        "causal": causal_mask(7),
        "both": causal_mask(7) & pad,
    }


@pytest.mark.parametrize("kind", ["none", "padding", "causal", "both"])
def test_fast_and_written_out_paths_agree(inputs, kind):
    src, _, pad = inputs
    torch.manual_seed(0)
    mha = MultiHeadAttention(D, H).eval()
    mask = masks(pad)[kind]
    fast = mha(src, src, src, mask=mask)
    slow, weights = mha(src, src, src, mask=mask, need_weights=True)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert weights.shape == (3, H, 7, 7)


def test_gradients_of_both_paths_agree(inputs):
    src, _, pad = inputs
    torch.manual_seed(0)
    mha = MultiHeadAttention(D, H).eval()
    mha(src, src, src, mask=pad).square().sum().backward()
    fast = [p.grad.clone() for p in mha.parameters()]
    mha.zero_grad()
    mha(src, src, src, mask=pad, need_weights=True)[
        0
    ].square().sum().backward()
    for a, p in zip(fast, mha.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, atol=1e-4, rtol=1e-4)


def torch_masks(our_mask, pad):
    """nn.MultiheadAttention's bool masks mean True = blocked."""
    if our_mask is None:
        return {}
    if our_mask is pad:
        return {"key_padding_mask": ~pad[:, 0, 0]}
    return {"attn_mask": ~our_mask}


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("cross", "kind"),
    [
        (False, "none"),
        (False, "padding"),
        (False, "causal"),
        (True, "none"),
        (True, "padding"),
    ],
)
def test_parity_with_nn_multihead_attention(
    inputs, batch_first, bias, cross, kind
):
    src, tgt, pad = inputs
    torch.manual_seed(1)
    theirs = nn.MultiheadAttention(
        D, H, bias=bias, batch_first=batch_first
    ).eval()
    ours = MultiHeadAttention.from_torch(theirs).eval()
    query = tgt if cross else src
    our_mask = masks(pad)[kind]
    q, kv = (
        (query, src)
        if batch_first
        else (query.transpose(0, 1), src.transpose(0, 1))
    )
    expected, expected_w = theirs(
        q, kv, kv, average_attn_weights=False, **torch_masks(our_mask, pad)
    )
    if not batch_first:
        expected = expected.transpose(0, 1)
    out, weights = ours(query, src, src, mask=our_mask, need_weights=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_w, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        ours(query, src, src, mask=our_mask), expected, atol=1e-5, rtol=1e-5
    )


def test_from_torch_copies_and_does_not_share(inputs):
    theirs = nn.MultiheadAttention(D, H, dropout=0.2, batch_first=True)
    ours = MultiHeadAttention.from_torch(theirs)
    assert ours.dropout == 0.2 and ours.training
    with torch.no_grad():
        theirs.in_proj_weight.zero_()
    assert ours.w_q.weight.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"add_bias_kv": True}, "add_bias_kv and add_zero_attn"),
        ({"add_zero_attn": True}, "add_bias_kv and add_zero_attn"),
        (
            {"kdim": 16, "vdim": 16},
            "kdim=16 and vdim=16 must equal embed_dim=32",
        ),
    ],
)
def test_from_torch_refuses_what_it_cannot_copy(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(D, H, **kwargs))


def test_from_torch_wants_the_right_module():
    with pytest.raises(
        TypeError, match="expected nn.MultiheadAttention, got Linear"
    ):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))


def test_heads_cost_the_same_as_one():
    one, eight = MultiHeadAttention(64, 1), MultiHeadAttention(64, 8)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(one) == count(eight) == 4 * 64 * 64 + 4 * 64


def test_split_and_merge_are_inverse():
    mha = MultiHeadAttention(12, 3)
    x = seeded_randn(2, 5, 12, seed=3)
    heads = mha.split_heads(x)
    assert heads.shape == (2, 3, 5, 4)
    torch.testing.assert_close(heads[:, 1], x[..., 4:8])
    assert torch.equal(mha.merge_heads(heads), x)


def test_dropout_only_in_training(inputs):
    src, _, _ = inputs
    torch.manual_seed(0)
    mha = MultiHeadAttention(D, H, dropout=0.5)
    mha.eval()
    torch.testing.assert_close(mha(src, src, src), mha(src, src, src))
    _, weights = mha(src, src, src, need_weights=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, H, 7))
    mha.train()
    _, dropped = mha(src, src, src, need_weights=True)
    assert (dropped == 0).float().mean() > 0.3
    assert not torch.allclose(mha(src, src, src), mha(src, src, src))


def test_reset_parameters_zero_biases_xavier_weights():
    mha = MultiHeadAttention(256, 4)
    assert all(
        lin.bias.abs().sum() == 0
        for lin in (mha.w_q, mha.w_k, mha.w_v, mha.w_o)
    )
    bound = (6 / (256 + 256)) ** 0.5
    assert mha.w_q.weight.abs().max() <= bound


@pytest.mark.parametrize(
    ("d_model", "n_heads", "message"),
    [
        (510, 8, "d_model=510 is not divisible by n_heads=8"),
        (0, 1, "d_model must be a positive int, got 0"),
        (8, 0, "n_heads must be a positive int, got 0"),
        (8.0, 2, "d_model must be a positive int, got 8.0"),
    ],
)
def test_bad_config(d_model, n_heads, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(d_model, n_heads)


def test_bad_dropout():
    with pytest.raises(
        ValueError,
        match=r"dropout must be a probability in \[0, 1\), got 1.0",
    ):
        MultiHeadAttention(8, 2, dropout=1.0)


def test_bad_inputs(inputs):
    src, tgt, _ = inputs
    mha = MultiHeadAttention(D, H)
    with pytest.raises(
        ValueError, match="query has 30 features but d_model=32"
    ):
        mha(seeded_randn(3, 5, 30, seed=4), src, src)
    with pytest.raises(
        ValueError, match="value has 16 features but d_model=32"
    ):
        mha(src, src, src[..., :16])
    with pytest.raises(ValueError, match="same batch size, got 3, 2 and 2"):
        mha(src, src[:2], src[:2])
    with pytest.raises(
        ValueError,
        match="key and value must have the same length, got 7 and 5",
    ):
        mha(src, src, tgt)
    with pytest.raises(
        ValueError, match=r"key must have shape \(batch, length, d_model\)"
    ):
        mha(src, src[0], src)
    with pytest.raises(
        ValueError, match=r"mask of shape \(7, 6\) does not broadcast"
    ):
        mha(src, src, src, mask=torch.ones(7, 6, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        mha(src, src, src, mask=torch.ones(7, 7))
