"""Chapter 3: padding and causal masks, their shapes and rule (True = may attend),
causality, padding invariance, and clear errors."""

import pytest
import torch

from transformer_lite import (
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from transformer_lite.helpers import seeded_randn


def test_padding_mask_shape_and_values():
    tokens = torch.tensor([[5, 6, 0], [7, 0, 0]])
    mask = padding_mask(tokens, pad_id=0)
    assert mask.shape == (2, 1, 1, 3) and mask.dtype == torch.bool
    assert mask[:, 0, 0].tolist() == [
        [True, True, False],
        [True, False, False],
    ]


def test_padding_mask_uses_the_given_pad_id():
    tokens = torch.tensor([[3, 3, 1]])
    assert padding_mask(tokens, pad_id=3)[0, 0, 0].tolist() == [
        False,
        False,
        True,
    ]


def test_causal_mask_is_lower_triangle_with_diagonal():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    assert torch.equal(mask, torch.ones(4, 4, dtype=torch.bool).tril())
    assert mask.diagonal().all() and not mask.triu(1).any()


def test_masks_combine_with_and():
    tokens = torch.tensor([[1, 5, 0], [1, 6, 7]])
    both = causal_mask(3) & padding_mask(tokens, 0)
    assert both.shape == (2, 1, 3, 3)
    assert both[0, 0].tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, False],
    ]


def test_causality_exact():
    T, t = 7, 3
    x = seeded_randn(2, 4, T, 8, seed=0)
    changed = x.clone()
    changed[..., t + 1 :, :] = seeded_randn(2, 4, T - t - 1, 8, seed=1)
    mask = causal_mask(T)
    before, _ = scaled_dot_product_attention(x, x, x, mask=mask)
    after, _ = scaled_dot_product_attention(
        changed, changed, changed, mask=mask
    )
    assert torch.equal(before[..., : t + 1, :], after[..., : t + 1, :])
    assert not torch.allclose(before[..., t + 1 :, :], after[..., t + 1 :, :])


def test_padding_invariance():
    tokens = torch.tensor([[4, 2, 9, 0], [3, 0, 0, 0]])
    table = seeded_randn(10, 6, seed=2)
    longer = torch.cat([tokens, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    out, _ = scaled_dot_product_attention(
        *(table[tokens][:, None],) * 3, mask=padding_mask(tokens, 0)
    )
    out_l, _ = scaled_dot_product_attention(
        *(table[longer][:, None],) * 3, mask=padding_mask(longer, 0)
    )
    real = tokens != 0
    torch.testing.assert_close(out_l[:, 0, :4][real], out[:, 0][real])


def test_all_padding_sentence_gives_zeros():
    tokens = torch.tensor([[0, 0]])
    x = seeded_randn(1, 1, 2, 4, seed=3)
    out, weights = scaled_dot_product_attention(
        x, x, x, mask=padding_mask(tokens, 0)
    )
    assert torch.equal(out, torch.zeros_like(out)) and torch.equal(
        weights, torch.zeros_like(weights)
    )


def test_causal_mask_device():
    assert causal_mask(2, device="cpu").device.type == "cpu"


@pytest.mark.parametrize("size", [0, -3, 2.0, True, "4"])
def test_causal_mask_bad_size(size):
    with pytest.raises(ValueError, match="size must be a positive int"):
        causal_mask(size)


@pytest.mark.parametrize(
    "tokens",
    [torch.tensor([[0.0, 1.0]]), torch.tensor([[True, False]]), [[1, 2]]],
)
def test_padding_mask_wants_integer_ids(tokens):
    with pytest.raises(
        TypeError, match="tokens must be a tensor of integer token ids"
    ):
        padding_mask(tokens, 0)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_padding_mask_wants_batch_by_length(shape):
    with pytest.raises(
        ValueError, match=r"tokens must have shape \(batch, length\)"
    ):
        padding_mask(torch.zeros(shape, dtype=torch.long), 0)
