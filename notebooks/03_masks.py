# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Masking
#
# The decoder block in the paper's Figure 1 starts with a box labelled **Masked Multi-Head Attention**. This
# chapter answers *what exactly is masked there, and how?* A mask (掩码) is the one tool that narrows attention:
# chapter 1 showed that every query scores every key; a mask removes some keys from some queries. We need it for two
# jobs:
#
# - **padding**: sentences in a batch have different lengths, so short ones are filled up with a pad token that no
#   query should read;
# - **causality**: when the decoder is trained on a whole target sentence at once, the position that predicts word
#   $t+1$ must not read word $t+1$.
#
# Along the way we settle a detail that is easy to get wrong: under the causal mask, the query at position $t$ sees
# keys $1 \ldots t$, **itself included**, not $1 \ldots t-1$.

# %% tags=["hide-input"]
from transformer_lite.figure import you_are_here

_ = you_are_here(3)  # Figure 1, this chapter's parts in colour

# %%
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from transformer_lite import scaled_dot_product_attention
from transformer_lite.exercises import EXERCISES, check, exercise, solution
from transformer_lite.helpers import get_device, plot_attention, seeded_randn

device = get_device()
plt.rcParams["figure.figsize"] = (5, 3.5)


def rounded(t: torch.Tensor, digits: int = 3) -> list:
    """A tensor as nested lists of rounded floats, alike on any device."""
    return torch.round(t.detach().cpu().double(), decimals=digits).tolist()


# %% [markdown]
# ## Masking happens inside the softmax
#
# The rule in this book, the same as in PyTorch's `F.scaled_dot_product_attention`: a mask is a bool tensor and
# **True means "may attend"**. (`nn.MultiheadAttention` uses the opposite convention for its bool masks: True means
# *blocked*. We will meet that again in chapter 4.)
#
# A blocked score is replaced by $-\infty$ *before* the softmax. Since $e^{-\infty} = 0$, a blocked key gets weight
# exactly 0, and the remaining weights still sum to 1. Compare that with the tempting shortcut of zeroing weights
# *after* the softmax:

# %%
scores = torch.tensor([2.0, 1.0, 0.5, 3.0])
may_attend = torch.tensor(
    [True, True, True, False]
)  # the last key is blocked

inside = torch.softmax(scores.masked_fill(~may_attend, float("-inf")), dim=-1)
after = torch.softmax(scores, dim=-1) * may_attend
print(
    "mask inside the softmax:",
    rounded(inside),
    " sum",
    round(inside.sum().item(), 4),
)
print(
    "zeroed after softmax:   ",
    rounded(after),
    " sum",
    round(after.sum().item(), 4),
)

# %% [markdown]
# Masking inside gives a proper distribution over the allowed keys; zeroing afterwards leaves weights that sum to
# less than 1, and the output shrinks by however much weight the blocked key happened to take. (Some code uses a
# large negative number such as $-10^9$ instead of $-\infty$; for a row with at least one allowed key that gives
# the same weights, since $e^{-10^9}$ is exactly 0 in floating point. The two differ only for a row with *no*
# allowed key, at the end of this chapter.)
#
# ## Padding: every sentence in the batch has its own length
#
# A batch is a rectangle of token ids. Shorter sentences are filled with a pad id (here 0), and no query may attend
# to a pad position. The mask depends only on the keys, so it has shape $(B, 1, 1, S)$: one row per sentence,
# broadcast over heads ($H$) and over query positions.

# %% tags=["export"]
import torch
from torch import Tensor


def padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """True at real tokens, False at padding: which keys each sentence may
    attend to.

    The mask depends on the keys only, so it broadcasts over heads and
    queries. True = may attend, the rule of ``F.scaled_dot_product_attention``
    (``nn.MultiheadAttention``'s ``key_padding_mask`` means the opposite: True
    = padding).

    Shape:
        tokens: (B, S) integer token ids.
        Returns a bool mask of shape (B, 1, 1, S).
    """
    if (
        not isinstance(tokens, Tensor)
        or tokens.is_floating_point()
        or tokens.dtype == torch.bool
    ):
        got = (
            tokens.dtype
            if isinstance(tokens, Tensor)
            else type(tokens).__name__
        )
        raise TypeError(
            f"tokens must be a tensor of integer token ids, got {got}"
        )
    if tokens.dim() != 2:
        raise ValueError(
            "tokens must have shape (batch, length), "
            f"got {tuple(tokens.shape)}"
        )
    return (tokens != pad_id)[:, None, None, :]  # (B, 1, 1, S)


def causal_mask(
    size: int, device: torch.device | str | None = None
) -> Tensor:
    """True on and below the diagonal: query t may attend to keys 0..t, itself
    included.

    Combine with a padding mask by ``&``: ``causal_mask(T) & padding_mask(tgt,
    pad_id)`` has shape (B, 1, T, T).

    Shape:
        Returns a bool mask of shape (size, size): rows are queries, columns
        keys.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(
            f"size must be a positive int (the sequence length), got {size!r}"
        )
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


# %%
pad = 0
tokens = torch.tensor(
    [
        [5, 7, 9, 4, 6],  # five real tokens
        [3, 8, 2, 0, 0],  # three, then padding
        [6, 0, 0, 0, 0],  # one
    ],
    device=device,
)
mask = padding_mask(tokens, pad)
print("shape", tuple(mask.shape))
print(mask[:, 0, 0].int().tolist())

# %% [markdown]
# Now attend over a padded sentence. Each token id gets a random vector (a stand-in for the embeddings of
# chapter 5), and random query, key and value projections (scaled by $1/\sqrt{d}$, as chapter 4 initialises
# them) turn it into $q$, $k$ and $v$. Without projections, $q = k$ and every token would mostly attend to
# itself, which says more about the missing projections than about attention. The padded keys get no weight
# from any query:

# %%
d = 8
table = seeded_randn(10, d, seed=0, device=device)  # one vector per token id
w_q, w_k, w_v = (
    seeded_randn(d, d, seed=s, device=device) / d**0.5 for s in (10, 11, 12)
)


def attend(x: torch.Tensor, mask: torch.Tensor | None = None):
    """Self-attention of x (B, 1, S, D) through the random projections."""
    return scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, mask=mask)


x = table[tokens][:, None]  # (B, H, S, D) with a single head, H = 1
out, weights = attend(x, mask)  # weights (B, 1, S, S)
print("weights of sentence 1 (rows: queries, columns: keys):")
for row in rounded(weights[1, 0], 2):
    print(row)
assert (weights[1, 0, :, 3:] == 0).all()

labels = ["3", "8", "2", "<pad>", "<pad>"]
plot_attention(
    weights[1, 0],
    labels,
    labels,
    title="A padded sentence: no weight on <pad>",
)
plt.show()

# %% [markdown]
# The pad columns are zero; the pad *rows* are not special: pad queries still attend to the real tokens, and their
# outputs are simply never used (the loss ignores them, chapter 7).
#
# What matters for correctness is a property: **padding changes nothing for the real tokens**. Add three more pad
# positions to every sentence, and the outputs at real positions must stay the same.

# %%
longer = torch.cat(
    [tokens, torch.full((3, 3), pad, device=device)], dim=1
)  # (B, S + 3)
x_longer = table[longer][:, None]
out_longer, _ = attend(x_longer, padding_mask(longer, pad))
real = tokens != pad  # (B, S)
torch.testing.assert_close(out_longer[:, 0, :5][real], out[:, 0][real])
print("outputs at real positions unchanged by extra padding")

# %% [markdown]
# (ch3-causal)=
# ## The causal mask: the past and the present, not the future
#
# In training, the decoder reads the whole target sentence at once (this is what makes training parallel, as
# chapter 1 showed). Its input is the target shifted right by one: at position $t$ it holds word $t-1$, and its job
# is to predict word $t$. The causal mask lets the query at position $t$ attend to positions $0 \ldots t$: its own
# input (the word it was given) and everything before it. What it must not see is position $t+1$ and later, where
# the word it has to predict sits.
#
# A note on counting: the paper's notation and this prose's $k_1 \ldots k_t$ count from 1, the code counts
# positions from 0. They state the same rule, "the diagonal and everything left of it": the $t$-th query
# (1-based) sees $k_1 \ldots k_t$; query `t` in code (0-based) sees keys `0..t`. And because of the shift by one,
# position $t$ of the decoder's input holds word $t-1$ of the target (position 0 holds `<s>`), which is why
# seeing itself never means seeing the word it must predict.

# %%
words = (
    "<s> the cat sat on the".split()
)  # decoder input: the target, shifted right
causal = causal_mask(len(words), device=device)
for row in causal.int().tolist():
    print(row)
plot_attention(
    causal.float(),
    words,
    words,
    title="causal_mask(6): True = may attend",
    cmap="Greys",
)
plt.show()

# %% [markdown]
# Row $t$ has $t+1$ allowed keys, the diagonal included. A common reading of the paper is "the query at time $t$ can
# see $k_1 \ldots k_{t-1}$". That is off by one: it sees $k_1 \ldots k_t$. If it could not see itself, position 0
# (which holds only the start token `<s>`) would have nothing at all to attend to.

# %%
for t in range(len(words)):
    allowed = causal[t].nonzero().flatten().tolist()
    print(f"query {t} ({words[t]:>3}) may attend to keys {allowed}")
assert causal.diagonal().all()  # every position sees itself
assert not causal.triu(diagonal=1).any()  # and nothing after itself

# %% [markdown]
# ### Proof of causality
#
# The claim we rely on: *with the causal mask, changing the inputs after position $t$ leaves every output at positions
# $\le t$ exactly unchanged.* Not approximately: exactly, because the blocked keys get weight 0 and $0 \cdot v = 0$.
# Without the mask the same change leaks backwards into every position.

# %%
T = 6
x = seeded_randn(2, 1, T, d, seed=1, device=device)  # (B, 1, T, D)
t = 2
changed = x.clone()
changed[:, :, t + 1 :] = seeded_randn(
    2, 1, T - t - 1, d, seed=2, device=device
)  # new future

masked_before, _ = attend(x, causal_mask(T, device))
masked_after, _ = attend(changed, causal_mask(T, device))
plain_before, _ = attend(x)
plain_after, _ = attend(changed)

assert torch.equal(
    masked_before[..., : t + 1, :], masked_after[..., : t + 1, :]
)  # bit for bit
assert not torch.allclose(
    plain_before[..., : t + 1, :], plain_after[..., : t + 1, :]
)
print(
    f"with the mask:    outputs 0..{t} identical after changing "
    f"positions {t + 1}..{T - 1}"
)
print(f"without the mask: outputs 0..{t} changed")

# %% [markdown]
# ## Padding and causality together
#
# The decoder needs both: no future, and no padding. Masks combine with `&`, and broadcasting does the bookkeeping:
# `causal_mask(T)` is $(T, T)$ and `padding_mask` is $(B, 1, 1, T)$, so the result is $(B, 1, T, T)$: one
# $T \times T$ pattern per sentence, shared by all heads.

# %%
target = torch.tensor(
    [[1, 5, 7, 2, 0, 0], [1, 6, 3, 8, 4, 2]], device=device
)  # 1 = <s>, 2 = </s>
both = causal_mask(6, device) & padding_mask(target, pad)
print("shape", tuple(both.shape))
labels = ["<s>", "5", "7", "</s>", "<pad>", "<pad>"]
plot_attention(
    both[0, 0].float(), labels, labels, title="causal & padding", cmap="Greys"
)
plt.show()

# %% [markdown]
# ## A query with nothing to attend to
#
# Can a row of the mask be all False? Yes: a sentence made only of padding (an empty input), or left-padded text
# under a causal mask, where the first positions are pads that may only look at themselves. A plain softmax over a
# row of $-\infty$ computes $0/0$: NaN, and one NaN spreads through the whole network in the next layer.
#
# We decided what such a row returns: **all-zero weights and a zero output**, the same as PyTorch's
# `F.scaled_dot_product_attention` does today. That is recent and undocumented: PyTorch's math kernel returns
# zeros for such rows since version 2.5 (an internal `_safe_softmax`); earlier versions return NaN. So this
# book does not rely on it: chapter 1's softmax guards for it, and chapter 2's attention sets such rows to
# zero after its softmax. Here are the three behaviours you will meet in the wild, on a batch whose second sentence
# is all padding:

# %%
tokens = torch.tensor(
    [[4, 7, 3], [0, 0, 0]], device=device
)  # the second sentence is empty
x = table[tokens][:, None].requires_grad_()  # (B, 1, S, D)
mask = padding_mask(tokens, pad)

ours, weights = scaled_dot_product_attention(x, x, x, mask=mask)
torch_sdpa = F.scaled_dot_product_attention(x, x, x, attn_mask=mask)
large_negative = torch.softmax(
    (x @ x.transpose(-2, -1) / d**0.5).masked_fill(~mask, -1e9), dim=-1
)
torch.manual_seed(0)
mha = nn.MultiheadAttention(d, 1, batch_first=True).to(device)
x1 = x[
    :, 0
]  # (B, S, D): nn.MultiheadAttention has no head dimension in its input
mha_out, _ = mha(
    x1, x1, x1, key_padding_mask=~mask[:, 0, 0]
)  # True = padding

print(
    "ours, empty sentence:        output",
    rounded(ours[1, 0, 0, :4]),
    "weights",
    rounded(weights[1, 0, 0]),
)
print("F.scaled_dot_product_attention:   ", rounded(torch_sdpa[1, 0, 0, :4]))
print("-1e9 instead of -inf, weights:    ", rounded(large_negative[1, 0, 0]))
print("nn.MultiheadAttention, output:    ", rounded(mha_out[1, 0, :4]))

ours.sum().backward()
assert not ours.isnan().any() and not x.grad.isnan().any()
torch.testing.assert_close(ours, torch_sdpa)
assert mha_out[1].isnan().all()

# %% [markdown]
# - **Ours** and `F.scaled_dot_product_attention` (PyTorch ≥ 2.5): zero output, zero weights, and the gradient
#   has no NaN either.
# - **$-10^9$ instead of $-\infty$**: finite. The empty row gets *uniform* weights over the pad positions, so its
#   output is an average of pad vectors instead of zeros.
# - **`nn.MultiheadAttention`**: NaN (in this version of PyTorch).
#
# Which of these matter? Zeros and averages of pad vectors both sit at pad positions, which no real query reads
# (they are masked as keys) and the loss ignores: either is harmless. NaN is different, because masking
# multiplies by zero and $0 \cdot \mathrm{NaN} = \mathrm{NaN}$. Two runs show it. First, the gradient: a loss
# on the *real* sentence alone still gives `nn.MultiheadAttention`'s weights a NaN gradient, because the empty
# sentence's NaN rows are multiplied by their zero upstream gradient. Second, two layers on a left-padded sentence
# under the causal mask, whose first two positions (pads) have nothing to attend to: with a plain softmax over
# $-\infty$ they come out NaN, and in the next layer the real tokens give them weight 0, and $0 \cdot
# \mathrm{NaN}$ turns every output NaN.

# %%
mha_out[0].sum().backward()  # a loss on the real sentence only
print(
    "nn.MultiheadAttention, NaN in the weights' gradient:",
    mha.in_proj_weight.grad.isnan().any().item(),
)
assert mha.in_proj_weight.grad.isnan().any()


def attend_plain(x, mask, blocked=float("-inf")):
    """Attention with a plain softmax over blocked scores (-inf or -1e9)."""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = (q @ k.transpose(-2, -1) / d**0.5).masked_fill(~mask, blocked)
    return torch.softmax(scores, dim=-1) @ v


left_padded = torch.tensor([[0, 0, 4, 7, 3]], device=device)  # pads first
mask = causal_mask(5, device) & padding_mask(left_padded, pad)
x = table[left_padded][:, None]  # (1, 1, 5, D)
two_layers = {
    "ours": attend(attend(x, mask)[0], mask)[0],
    "-1e9": attend_plain(attend_plain(x, mask, -1e9), mask, -1e9),
    "-inf, plain": attend_plain(attend_plain(x, mask), mask),
}
for name, h in two_layers.items():
    print(f"{name:12}: after two layers, NaN at positions", end=" ")
    print(h[0, 0].isnan().any(-1).nonzero().flatten().tolist())
real_ours, real_large = two_layers["ours"][..., 2:, :], two_layers["-1e9"]
torch.testing.assert_close(real_large[..., 2:, :], real_ours)
assert two_layers["-inf, plain"].isnan().all()

# %% [markdown]
# Zeros and $-10^9$ give the real tokens the same outputs; the plain softmax over $-\infty$ poisons all of them
# in one layer. Only NaN is harmful. We return zeros because "there was nothing to look at" then reads as
# nothing, and because it matches `F.scaled_dot_product_attention`, which the model calls on its fast path.
#
# (ch3-masked-mha)=
# ## So what is "masked multi-head attention"?
#
# It is the decoder's first sublayer: multi-head self-attention (chapter 4) over the decoder's own positions, with
# the causal mask (and the target's padding mask) applied inside every head's softmax. The mask is what lets the
# decoder train on a whole sentence in one parallel pass while each position still behaves as if the future did not
# exist yet. The encoder's self-attention and the decoder's attention over the encoder (cross-attention) use only
# padding masks: the source sentence is fully known, so there is no future to hide.
#
# ## What we built
#
# | name | the idea in one line |
# |---|---|
# | `padding_mask(tokens, pad_id)` | (B, 1, 1, S) bool: True at real tokens, so no query reads padding |
# | `causal_mask(size, device=None)` | (size, size) bool lower triangle: query t sees keys 0..t, itself included |
#
# Both follow one rule, True = may attend, and combine with `&`. Next, chapter 4 runs several attentions side by side:
# multi-head attention.

# %% [markdown]
# ## Exercises
#
# Two exercises on this chapter's question, what the causal mask hides. Write your answer in the cell below each
# question and run it: `check` says whether it is right and, when it is not, what the mistake looks like. A reference
# solution is folded after each one (click to open it).

# %% [markdown]
# (ex-ch3-causal)=
# ### Exercise 3.1: write the causal mask
#
# Write your own `causal_mask(size)`, without calling the chapter's: it returns a `(size, size)` bool tensor, rows
# queries and columns keys, with this book's rule, **True = may attend**, such that each query of the decoder sees
# what it may and nothing later. Answer with the function itself (not a mask) and check it with `"ch3.causal"`; the
# checker calls it at several sizes.


# %% tags=["export:exercises", "hide-input"]
import torch


@exercise(
    "ch3.causal",
    "causal_mask(size): a (size, size) bool tensor, True = may attend",
    wrong=[
        (lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), "itself"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "future"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(1), "blocked"),
        (lambda n: torch.ones(n, n).tril(), "bool"),
    ],
)
def _grade_causal(answer: Any) -> str | None:
    if not callable(answer):
        return "Answer with a function, e.g. def causal_mask(size): ..."
    for size in (5, 1, 2, 8):  # 5 first: at size 1 some mistakes look right
        mask = answer(size)
        if not isinstance(mask, torch.Tensor):
            return f"causal_mask({size}) gave a {type(mask).__name__}."
        if tuple(mask.shape) != (size, size):
            return (
                f"causal_mask({size}) has shape {tuple(mask.shape)}; give "
                f"one row per query and one column per key: ({size}, {size})."
            )
        if mask.dtype != torch.bool:
            return (
                f"Your mask has dtype {mask.dtype}; the book's rule is a "
                "bool mask, True = may attend. "
                "F.scaled_dot_product_attention adds a float mask to the "
                "scores, so 0 and 1 block nothing."
            )
        mask = mask.cpu()
        right = torch.ones(size, size, dtype=torch.bool).tril()
        if torch.equal(mask, right):
            continue
        if torch.equal(mask, right.tril(-1)):
            return (
                "Your mask hides the diagonal: query t sees k_1 ... k_{t-1}. "
                "It may see k_1 ... k_t, itself included: its own position "
                "holds the word it was given (the target shifted right), "
                "not the one it must predict. With the diagonal hidden, the "
                "first row is all False: <s> has nothing to attend to."
            )
        if torch.equal(mask, ~right):
            return (
                "Your mask is True where a key is blocked: that is "
                "nn.MultiheadAttention's convention. This book's rule, as in "
                "F.scaled_dot_product_attention, is True = may attend."
            )
        if torch.equal(mask, right.T):
            return (
                "Your mask is the upper triangle: query t sees keys t and "
                "after, the future the decoder must not read. Rows are "
                "queries, columns keys: keep the diagonal and its left."
            )
        t, j = (mask != right).nonzero()[0].tolist()
        if j > t:
            return f"Query {t} may attend to key {j}: that is its future."
        return f"Query {t} is blocked from key {j}, which is not its future."
    return None


# %%
def causal_mask_mine(
    size: int,
) -> (
    torch.Tensor
): ...  # your code: a (size, size) bool tensor, True = may attend


answer = ...  # your function, causal_mask_mine, once it returns a mask
check("ch3.causal", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch3.causal")
def _solve_causal() -> Any:
    import torch

    def causal_mask(size: int) -> torch.Tensor:
        # query t (a row) may attend to keys 0..t (columns): the diagonal,
        # itself, and everything left of it. tril() keeps exactly that;
        # tril(-1) would also hide the diagonal, and triu() the past.
        return torch.ones(size, size, dtype=torch.bool).tril()

    return causal_mask


# %%
check("ch3.causal", EXERCISES["ch3.causal"].solve())

# %% [markdown]
# (ex-ch3-leak)=
# ### Exercise 3.2: break it yourself, the mask upside down
#
# A mask written as `causal_mask(T).T` is just as triangular as the right one. Run the {ref}`proof of causality
# <ch3-causal>` again, changing only the vector at position 3 of a sequence of 6 (the cell below does it). Which
# output positions change (counted from 0, as in the code) with the causal mask, and which with the transposed
# mask (the marked line)? Answer with a pair of sets of positions, `(with_causal, with_transposed)`, e.g.
# `({0}, {0})`, and check it with `"ch3.leak"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch3.leak",
    "position 3 changed: which outputs change, causal and transposed mask",
    wrong=[
        (({3, 4, 5}, {0, 1, 2, 3, 4, 5}), "backwards"),
        (({4, 5}, {0, 1, 2}), "itself"),
        (({0, 1, 2, 3}, {3, 4, 5}), "swapped"),
    ],
)
def _grade_leak(answer: Any) -> str | None:
    causal, transposed = ({int(p) for p in part} for part in answer)
    if (causal, transposed) == ({0, 1, 2, 3}, {3, 4, 5}):
        return (
            "Those are swapped: with the causal mask the change reaches "
            "position 3 and later ones; with the transposed one, earlier "
            "ones."
        )
    for name, got in [("causal", causal), ("transposed", transposed)]:
        if 3 not in got:
            return (
                f"With the {name} mask output 3 changes too: its query is "
                "the new vector, and each query may attend to itself."
            )
    if causal != {3, 4, 5}:
        return (
            "With the causal mask, query t reads keys 0..t: the new key 3 "
            "reaches queries 3, 4 and 5, never 0, 1 or 2."
        )
    if transposed == {0, 1, 2, 3, 4, 5}:
        return (
            "With the transposed mask, query t reads keys t..5: queries 4 "
            "and 5 never see key 3. The leak goes backwards, into 0, 1 and "
            "2, which now read a future token."
        )
    if transposed != {0, 1, 2, 3}:
        return "With the transposed mask, query t reads keys t..5."
    return None


# %%
x = seeded_randn(1, 1, 6, d, seed=1, device=device)  # (1, 1, T, D), T = 6
changed = x.clone()
changed[..., 3, :] = seeded_randn(d, seed=2, device=device)  # a new vector
mask = causal_mask(6, device)  # break it: causal_mask(6, device).T
before, _ = attend(x, mask)
after, _ = attend(changed, mask)
# your code: which rows of the output differ, e.g. through
# (before != after).any(-1)
answer = ...  # a pair of sets of positions, e.g. ({0}, {0})
check("ch3.leak", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch3.leak")
def _solve_leak() -> tuple[set[int], set[int]]:
    from transformer_lite.attention import scaled_dot_product_attention
    from transformer_lite.helpers import seeded_randn
    from transformer_lite.masks import causal_mask

    d = 8
    w_q, w_k, w_v = (
        seeded_randn(d, d, seed=s) / d**0.5 for s in (10, 11, 12)
    )
    x = seeded_randn(1, 1, 6, d, seed=1)
    changed = x.clone()
    changed[..., 3, :] = seeded_randn(d, seed=2)

    def moved(mask: torch.Tensor) -> set[int]:
        """The positions whose output changes with the vector at 3."""
        before, after = (
            scaled_dot_product_attention(h @ w_q, h @ w_k, h @ w_v, mask)[0]
            for h in (x, changed)
        )
        return set(
            (before != after).any(-1).flatten().nonzero().flatten().tolist()
        )

    # causal: query t reads keys 0..t, so key 3 reaches 3, 4 and 5.
    # transposed: query t reads keys t..5, so key 3 reaches 0, 1, 2 and 3;
    # 4 and 5 stay put, and 0..2 now read the future.
    return moved(causal_mask(6)), moved(causal_mask(6).T)


# %%
check("ch3.leak", EXERCISES["ch3.leak"].solve())
