"""Chapter 2: scaled_dot_product_attention, written out, equals PyTorch's fused function,
handles masks (True = may attend) and rows with nothing to attend to, and refuses bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from transformer_lite import (
    causal_mask,
    check_mask,
    dot_product_attention,
    scaled_dot_product_attention,
    softmax,
)
from transformer_lite.helpers import seeded_randn


def qkv(*batch, lq=5, lk=7, dk=16, dv=8, seed=0):
    return (
        seeded_randn(*batch, lq, dk, seed=seed),
        seeded_randn(*batch, lk, dk, seed=seed + 1),
        seeded_randn(*batch, lk, dv, seed=seed + 2),
    )


@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (2, 2, 3)])
def test_matches_torch_without_mask(batch):
    q, k, v = qkv(*batch)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5
    )
    assert weights.shape == (*batch, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch, 5))


@pytest.mark.parametrize(
    "mask_shape", [(2, 3, 5, 7), (2, 1, 5, 7), (2, 1, 1, 7), (5, 7), (7,)]
)
def test_matches_torch_with_broadcast_masks(mask_shape):
    q, k, v = qkv(2, 3)
    mask = seeded_randn(*mask_shape, seed=9) > -0.3
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    torch_mask = (
        mask.expand(5, 7) if mask.dim() == 1 else mask
    )  # F's mask needs 2+ dims
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=torch_mask)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


def test_causal_mask_matches_is_causal():
    q, k, v = qkv(2, 3, lq=6, lk=6)
    out, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(6))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_row_with_nothing_to_attend_is_zero_not_nan():
    q, k, v = qkv(2, lq=4, lk=5)
    q.requires_grad_()
    mask = torch.ones(2, 4, 5, dtype=torch.bool)
    mask[1, 2] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.equal(out[1, 2], torch.zeros(8)) and torch.equal(
        weights[1, 2], torch.zeros(5)
    )
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    )
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    assert torch.equal(q.grad[1, 2], torch.zeros(16))


def test_softmax_of_all_minus_inf_row_is_zero():
    scores = torch.tensor(
        [[1.0, float("-inf")], [float("-inf"), float("-inf")]]
    )
    torch.testing.assert_close(
        softmax(scores), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    )


def test_scale_defaults_to_inverse_sqrt_dk_and_can_be_set():
    q, k, v = qkv(2)
    default, _ = scaled_dot_product_attention(q, k, v)
    explicit, _ = scaled_dot_product_attention(
        q, k, v, scale=1 / math.sqrt(16)
    )
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, scale=1.0)[0],
        dot_product_attention(q, k, v)[0],
    )
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, scale=0.3)[0],
        F.scaled_dot_product_attention(q, k, v, scale=0.3),
    )


def test_gradients_match_torch():
    q1, k1, v1 = (t.requires_grad_() for t in qkv(2, 3))
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q1, k1, v1))
    mask = seeded_randn(2, 1, 5, 7, seed=4) > 0
    mask[..., 0] = True
    upstream = seeded_randn(2, 3, 5, 8, seed=5)
    (
        scaled_dot_product_attention(q1, k1, v1, mask=mask)[0] * upstream
    ).sum().backward()
    (
        F.scaled_dot_product_attention(q2, k2, v2, attn_mask=mask) * upstream
    ).sum().backward()
    for ours, theirs in [(q1, q2), (k1, k2), (v1, v2)]:
        torch.testing.assert_close(
            ours.grad, theirs.grad, atol=1e-5, rtol=1e-4
        )


def test_dropout_zeroes_weights_and_keeps_expectation():
    torch.manual_seed(0)
    q, k, v = qkv(64, 8, lq=16, lk=16)
    _, plain = scaled_dot_product_attention(q, k, v)
    out, dropped = scaled_dot_product_attention(q, k, v, dropout=0.25)
    zero_share = (dropped == 0).float().mean().item()
    assert 0.22 < zero_share < 0.28
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], plain[kept] / 0.75)
    torch.testing.assert_close(out, dropped @ v)
    assert torch.equal(
        scaled_dot_product_attention(q, k, v, dropout=0.0)[1], plain
    )


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_dropout(p):
    with pytest.raises(
        ValueError,
        match=f"dropout must be a probability in \\[0, 1\\), got {p}",
    ):
        scaled_dot_product_attention(*qkv(2), dropout=p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.uint8])
def test_non_bool_mask_is_refused(dtype):
    q, k, v = qkv(2)
    with pytest.raises(
        TypeError, match=f"mask must be a bool tensor .* got dtype {dtype}"
    ):
        scaled_dot_product_attention(
            q, k, v, mask=torch.ones(5, 7, dtype=dtype)
        )


def test_mask_that_does_not_broadcast_is_refused():
    q, k, v = qkv(2, 3)
    with pytest.raises(
        ValueError,
        match=r"mask of shape \(2, 1, 5, 3\) does not broadcast .* \(2, 3, 5, 7\)",
    ):
        scaled_dot_product_attention(
            q, k, v, mask=torch.ones(2, 1, 5, 3, dtype=torch.bool)
        )
    # a mask with more dimensions than the scores would silently grow the output: refused too
    with pytest.raises(ValueError, match="does not broadcast"):
        check_mask(torch.ones(4, 2, 3, 5, 7, dtype=torch.bool), (2, 3, 5, 7))


def test_mask_must_be_a_tensor():
    with pytest.raises(
        TypeError, match="mask must be a bool tensor, got list"
    ):
        check_mask([[True]], (1, 1))


def test_query_with_nothing_to_attend_to_makes_no_nan_even_inside_autograd():
    q, k, v = (
        seeded_randn(2, 3, 4, 8, seed=s).requires_grad_() for s in (1, 2, 3)
    )
    mask = seeded_randn(2, 1, 4, 4, seed=4) > 0
    mask[0, 0, 1] = (
        False  # query 1 of the first sequence may attend to nothing
    )
    mask[1, 0, :, 0] = True
    mask[0, 0, [0, 2, 3], 0] = True
    # anomaly mode raises if any backward function returns NaN, even one masked out later
    with torch.autograd.detect_anomaly():
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
        out.sum().backward()
    assert (weights[0, :, 1] == 0).all() and (out[0, :, 1] == 0).all()
    assert all(t.grad.isfinite().all() for t in (q, k, v))
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    )
