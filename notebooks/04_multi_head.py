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
# # 4. Multi-head attention
#
# The paper does not run one attention of width $d_{model} = 512$. It runs $h = 8$ attentions of width
# $d_k = 512 / 8 = 64$ side by side, each with its own projections, and concatenates their outputs (§3.2.2):
#
# $$\mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \ldots, \mathrm{head}_h)\,W^O,$$
#
# $$\mathrm{head}_i = \mathrm{Attention}(QW_i^Q, KW_i^K, VW_i^V).$$
#
# This chapter asks *why several heads (多头) instead of one big one*, answers it with an experiment, shows that the
# split costs nothing, and builds `MultiHeadAttention`, proven equal to PyTorch's `nn.MultiheadAttention`.

# %% tags=["hide-input"]
from transformer_lite.figure import you_are_here

_ = you_are_here(4)  # Figure 1, this chapter's parts in colour

# %%
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from transformer_lite import (
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from transformer_lite.exercises import EXERCISES, check, exercise, solution
from transformer_lite.helpers import get_device, plot_attention, seeded_randn

device = get_device()
plt.rcParams["figure.figsize"] = (5, 3.5)

# %% [markdown]
# ## One head gives each query one distribution
#
# A head's softmax gives each query *one* set of weights, and its output is *one* weighted average of the values.
# Suppose a word needs two things at once: the word just before it, and the first word of the sentence. One head
# has to split its weight between the two and returns their *average*, and an average has forgotten which value came
# from where. Two heads can each look at one place and return both values, side by side.
#
# We build that situation by hand. Keys are one-hot positions; each value is the vector of the token at that
# position. The query at position 4 looks for position 3 ("previous") and position 0 ("first").

# %%
L = 6
keys = torch.eye(
    L, device=device
)  # (L, L): key j is the one-hot vector of position j
vocab = seeded_randn(
    10, 4, seed=0, device=device
)  # a 4-dim vector per token id
sharp = 20.0  # a large score: attend almost only to the matching position


def attend(tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Position 4's output with one head (for 3 and 0) and with two heads."""
    values = vocab[torch.tensor(tokens, device=device)]  # (L, 4)
    one_query = sharp * (keys[3] + keys[0])  # one head looks for both at once
    two_queries = sharp * torch.stack(
        [keys[3], keys[0]]
    )  # two heads, one place each
    one_head, _ = scaled_dot_product_attention(
        one_query[None], keys, values, scale=1.0
    )
    two_heads, _ = scaled_dot_product_attention(
        two_queries[:, None], keys, values, scale=1.0
    )
    return (
        one_head.flatten(),
        two_heads.flatten(),
    )  # (4,) and (8,): two heads concatenated


one_a, two_a = attend(
    [1, 2, 3, 7, 5, 6]
)  # token 1 first, token 7 just before position 4
one_b, two_b = attend(
    [7, 2, 3, 1, 5, 6]
)  # the same two tokens, places swapped
torch.testing.assert_close(
    one_a, one_b
)  # one head cannot tell the two sentences apart
assert not torch.allclose(two_a, two_b)  # two heads can
print("one head,  sentence A:", [round(x, 3) for x in one_a.tolist()])
print("one head,  sentence B:", [round(x, 3) for x in one_b.tolist()])
print("two heads, sentence A:", [round(x, 3) for x in two_a.tolist()])
print("two heads, sentence B:", [round(x, 3) for x in two_b.tolist()])

# %% [markdown]
# With one head, sentences A and B give the same output: "token 7 before me and token 1 first" and "token 1 before
# me and token 7 first" are averaged into the same vector. With two heads the outputs differ, because each head
# reports one position's value in its own slot of the concatenation. That is the idea behind multi-head attention:
# each head has its own $W^Q_i, W^K_i, W^V_i$, so it can learn its own notion of relevance (one head tracks the
# previous word, another the subject of the verb, ...) and all of them are reported at once. The paper puts it as
# attending "to information from different representation subspaces at different positions" (§3.2.2).
#
# ## What eight heads cost
#
# Splitting $d_{model}$ into $h$ heads of $d_k = d_{model}/h$ changes nothing in the matrix products. The
# projections are the same four $d_{model} \times d_{model}$ matrices, only read as $h$ blocks, so the parameters
# are identical. The score computation $QK^\top$ costs $L^2 d_k$ multiply-adds per head,
# $h \cdot L^2 d_k = L^2 d_{model}$ in total, the same as one head of width $d_{model}$.
#
# One part of the bill does grow with $h$: each head has its own $L \times L$ matrix of scores and weights. The
# softmax, the mask and the dropout run over $h$ times as many numbers, and a written-out attention keeps
# $h$ times as much memory for the backward pass. We count all of it with PyTorch's FLOP counter and the
# tensors' sizes, on the module built below.

# %% [markdown]
# ## Splitting and merging heads
#
# In code, the $h$ heads are not $h$ separate modules. One linear layer computes all heads' queries at once, as a
# $(B, L, D)$ tensor, and a reshape reads its last dimension as $H$ blocks of $D_k$. A transpose then moves the head
# dimension next to the batch, so that each head becomes one more batch entry for attention:

# %%
B, L, D, H = 1, 3, 8, 2
x = torch.arange(B * L * D).reshape(B, L, D)  # (B, L, D)
heads = x.view(B, L, H, D // H).transpose(1, 2)  # (B, H, L, Dk)
print("x[0]:", x[0].tolist())
print(
    "head 0:", heads[0, 0].tolist()
)  # the first D/H features of every position
print("head 1:", heads[0, 1].tolist())  # the next D/H features
merged = heads.transpose(1, 2).reshape(B, L, D)  # back to (B, L, D)
assert torch.equal(merged, x)

# %% [markdown]
# Head 0 owns features 0–3 of every position, head 1 features 4–7. Merging is the inverse: transpose back, and
# `reshape` (not `view`, since the transposed tensor is no longer contiguous in memory) glues the heads' outputs into
# one $D$-wide vector per position, which $W^O$ then mixes.
#
# ## The module
#
# `MultiHeadAttention` has four projections named as in the paper, `w_q`, `w_k`, `w_v`, `w_o`, and two paths:
#
# - **fast** (the default): `F.scaled_dot_product_attention`, PyTorch's fused kernel, which never builds the
#   $L \times L$ weight matrix in memory when it can avoid it;
# - **teaching** (`need_weights=True`): chapter 2's written-out function, which returns the weights too, for plots.
#
# Both take masks by the book's rule, **True = may attend**. Dropout on the attention weights applies only in
# training mode. `forward` is two halves: project and split the heads, then `attend` (attention, merge, `w_o`).
# Chapter 6 calls `attend` directly, with keys and values it projected once and kept.

# %% tags=["export", "hide-input"]
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer_lite.attention import (
    check_mask,
    scaled_dot_product_attention,
)

# Shapes: B batch, Lq / Lk query / key length, D d_model, H heads,
# Dk = d_k = D // H.


def _check_sizes(d_model: int, n_heads: int, dropout: float) -> None:
    """MultiHeadAttention's arguments, or an error that names the problem."""
    for name, number in [("d_model", d_model), ("n_heads", n_heads)]:
        if (
            isinstance(number, bool)
            or not isinstance(number, int)
            or number < 1
        ):
            raise ValueError(f"{name} must be a positive int, got {number!r}")
    if d_model % n_heads != 0:
        raise ValueError(
            f"d_model={d_model} is not divisible by n_heads={n_heads}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"dropout must be a probability in [0, 1), got {dropout}"
        )


def _check_inputs(d_model: int, query: Tensor, key: Tensor, value: Tensor):
    """query, key and value fit a MultiHeadAttention of width d_model."""
    for name, tensor in [("query", query), ("key", key), ("value", value)]:
        if tensor.dim() != 3:
            raise ValueError(
                f"{name} must have shape (batch, length, d_model), "
                f"got {tuple(tensor.shape)}"
            )
        if tensor.size(-1) != d_model:
            raise ValueError(
                f"{name} has {tensor.size(-1)} features but d_model={d_model}"
            )
    if not query.size(0) == key.size(0) == value.size(0):
        raise ValueError(
            "query, key and value must have the same batch size, got "
            f"{query.size(0)}, {key.size(0)} and {value.size(0)}"
        )
    if key.size(1) != value.size(1):
        raise ValueError(
            "key and value must have the same length, "
            f"got {key.size(1)} and {value.size(1)}"
        )


# %% [markdown]
# The folded cell above holds the argument checks. The module comes in two
# cells. First its parameters: the four projections, initialised, and the
# reading of a projection's output as heads.


# %% tags=["export"]
class _HeadProjections(nn.Module):
    """The parameters of MultiHeadAttention and its split into heads."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        _check_sizes(d_model, n_heads, dropout)
        self.d_model, self.n_heads = d_model, n_heads
        self.d_k, self.dropout = d_model // n_heads, dropout
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, zero biases: q, k, v keep the variance."""
        for linear in (self.w_q, self.w_k, self.w_v, self.w_o):
            nn.init.xavier_uniform_(linear.weight)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, H, L, Dk): last dimension as H blocks of Dk."""
        batch, length, _ = x.shape
        heads = x.view(batch, length, self.n_heads, self.d_k)  # (B, L, H, Dk)
        return heads.transpose(1, 2)  # (B, H, L, Dk)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, H, L, Dk) -> (B, L, D): the inverse of ``split_heads``."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.d_model)


# %% [markdown]
# Then the computation: `forward` projects and splits, `attend` runs the
# attention on one of the two paths, merges the heads and applies $W^O$.


# %% tags=["export"]
class MultiHeadAttention(_HeadProjections):
    """Multi-head attention (Vaswani et al., 2017, §3.2.2), batch first:
    ``n_heads`` heads of width ``d_k = d_model // n_heads``. Masks: bool,
    True = may attend (``nn.MultiheadAttention``: the opposite)."""

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Project, split into heads, attend, merge, project with ``w_o``.

        Shape:
            query (B, Lq, D), key and value (B, Lk, D), mask broadcastable
            to (B, H, Lq, Lk). Returns output (B, Lq, D), or
            (output, weights) with weights (B, H, Lq, Lk) when
            ``need_weights=True``.
        """
        _check_inputs(self.d_model, query, key, value)
        q = self.split_heads(self.w_q(query))  # (B, H, Lq, Dk)
        k = self.split_heads(self.w_k(key))  # (B, H, Lk, Dk)
        v = self.split_heads(self.w_v(value))  # (B, H, Lk, Dk)
        return self.attend(q, k, v, mask=mask, need_weights=need_weights)

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The second half of ``forward``, for projected q (B, H, Lq, Dk),
        k and v (B, H, Lk, Dk) that a caller keeps (chapter 6's cache)."""
        dropout = self.dropout if self.training else 0.0
        if need_weights:  # teaching path: written out, weights returned
            out, weights = scaled_dot_product_attention(
                q, k, v, mask=mask, dropout=dropout
            )
        else:  # fast path: PyTorch's fused kernel
            if mask is not None:
                check_mask(mask, (*q.shape[:-1], k.size(-2)))
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout
            )
        out = self.w_o(self.merge_heads(out))  # (B, Lq, D)
        return (out, weights) if need_weights else out

    @classmethod
    def from_torch(
        cls, module: nn.MultiheadAttention
    ) -> "MultiHeadAttention":
        """A MultiHeadAttention with the weights of ``module``: the same
        outputs, with this book's masks (True = may attend) and batch first
        whatever ``module.batch_first`` says."""
        return _from_torch(cls, module)


# %% tags=["export", "hide-input"]
def _from_torch(cls: type, module: nn.MultiheadAttention) -> nn.Module:
    """``MultiHeadAttention.from_torch``: check, then copy the weights."""
    if not isinstance(module, nn.MultiheadAttention):
        raise TypeError(
            f"expected nn.MultiheadAttention, got {type(module).__name__}"
        )
    if module.bias_k is not None or module.add_zero_attn:
        raise ValueError(
            "add_bias_kv and add_zero_attn have no counterpart here"
        )
    if not module._qkv_same_embed_dim:
        raise ValueError(
            f"kdim={module.kdim} and vdim={module.vdim} must equal "
            f"embed_dim={module.embed_dim}"
        )
    bias = module.in_proj_bias is not None
    new = cls(
        module.embed_dim, module.num_heads, dropout=module.dropout, bias=bias
    )
    weight = module.in_proj_weight
    new = new.to(device=weight.device, dtype=weight.dtype)
    projections = (new.w_q, new.w_k, new.w_v)
    with torch.no_grad():
        for linear, w in zip(projections, weight.chunk(3), strict=True):
            linear.weight.copy_(w)
        new.w_o.weight.copy_(module.out_proj.weight)
        if bias:
            biases = module.in_proj_bias.chunk(3)
            for linear, b in zip(projections, biases, strict=True):
                linear.bias.copy_(b)
            new.w_o.bias.copy_(module.out_proj.bias)
    return new.train(module.training)


# %% [markdown]
# ### The bill, counted
#
# Parameters, matrix-product FLOPs and the size of the weights tensor, for one head of width 512 and for eight
# heads of width 64. (We count on the written-out path, `need_weights=True`, whose matrix products the counter
# sees one by one.)

# %%
x = seeded_randn(2, 32, 512, seed=1, device=device)  # (B, L, D)
bill = {}  # heads -> (parameters, matmul FLOPs, weights' numbers)
for n_heads in [1, 8]:
    mha = MultiHeadAttention(512, n_heads).to(device)
    with FlopCounterMode(display=False) as counter:
        mha(x, x, x, need_weights=True)
    attention = counter.get_flop_counts()["Global"].get(
        torch.ops.aten.bmm, 0
    )  # QKᵀ and AV
    projections = counter.get_total_flops() - attention  # w_q, w_k, w_v, w_o
    n_params = sum(p.numel() for p in mha.parameters())
    _, weights = mha(x, x, x, need_weights=True)  # (B, H, L, L)
    bill[n_heads] = (n_params, counter.get_total_flops(), weights.numel())
    print(
        f"{n_heads} head(s) of d_k={512 // n_heads:3d}: "
        f"{n_params:,} parameters"
    )
    print(
        f"    FLOPs: {projections:,} in the projections, "
        f"{attention:,} in attention"
    )
    print(f"    weights tensor {tuple(weights.shape)}: {weights.numel():,}")
assert bill[1][:2] == bill[8][:2]  # same parameters, same matmul FLOPs
assert bill[8][2] == 8 * bill[1][2]  # eight L x L matrices instead of one

# the appendix's size: batch 8, L = 512, float32
for n_heads in [1, 8]:
    mib = 8 * n_heads * 512 * 512 * 4 / 2**20
    print(f"B=8, L=512, {n_heads} head(s): the weights take {mib:.0f} MiB")

# %% [markdown]
# Parameters and matrix products are identical: $4 \cdot 512^2$ weights plus $4 \cdot 512$ biases, and the same
# count of multiply-adds. The heads are a different way of reading the same matrices. The weights tensor is
# not the same: eight times as large, 8 MiB against 64 MiB at the appendix's size, and the softmax runs over
# all of it. At $L = 32$ that is small next to the matrix products; it is why long sequences are costly
# (the Performance appendix measures it), and why PyTorch's fused kernel avoids storing that tensor when it
# can.
#
# ### Initialisation keeps the variance
#
# `reset_parameters` draws each projection from Glorot and Bengio's (2010) "Xavier" uniform distribution, variance
# $2/(d_{in} + d_{out}) = 1/d_{model}$ for a square matrix. A projected entry $\sum_i x_i W_{ij}$ then has variance
# $d_{model} \cdot \mathrm{Var}(x) / d_{model} = \mathrm{Var}(x)$: unit-variance inputs give unit-variance queries
# and keys, which is the assumption behind chapter 2's $\sqrt{d_k}$.

# %%
torch.manual_seed(0)
mha = MultiHeadAttention(512, 8).to(device)
x = seeded_randn(4, 64, 512, seed=5, device=device)  # unit-variance input
with torch.no_grad():
    q, k = mha.w_q(x), mha.w_k(x)
print(f"Var(x) = {x.var().item():.2f}", end="   ")
print(f"Var(q) = {q.var().item():.2f}   Var(k) = {k.var().item():.2f}")
assert 0.9 < q.var().item() < 1.1 and 0.9 < k.var().item() < 1.1

# %% [markdown]
# ## The two paths agree
#
# The fused path and the written-out path must compute the same thing, with and without masks:

# %%
torch.manual_seed(0)
mha = MultiHeadAttention(d_model=32, n_heads=4).to(device).eval()
src = seeded_randn(3, 7, 32, seed=2, device=device)  # (B, S, D)
tgt = seeded_randn(3, 5, 32, seed=3, device=device)  # (B, T, D)
tokens = torch.tensor(
    [[4, 5, 6, 7, 8, 9, 3], [4, 5, 6, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0, 0]]
)
pad = padding_mask(tokens.to(device), pad_id=0)  # (B, 1, 1, S)

cases = {
    "self-attention": (src, src, None),
    "self, padding": (src, src, pad),
    "self, causal": (src, src, causal_mask(7, device)),
    "cross-attention": (tgt, src, pad),
}
for name, (query, memory, mask) in cases.items():
    fast = mha(query, memory, memory, mask=mask)
    slow, weights = mha(query, memory, memory, mask=mask, need_weights=True)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    print(f"{name:16}: fast == written out; weights {tuple(weights.shape)}")

# %% [markdown]
# ### What each head looks at
#
# Even before training, different heads (with different random projections) produce different patterns. Here are
# the four heads of the module above on the first sentence, under the causal mask:

# %%
words = ["the", "cat", "sat", "on", "the", "mat", "."]
_, weights = mha(
    src[:1], src[:1], src[:1], mask=causal_mask(7, device), need_weights=True
)
fig, axes = plt.subplots(2, 2, figsize=(9, 7))
for head, ax in enumerate(axes.flat):
    plot_attention(
        weights[0, head],
        words,
        words,
        title=f"head {head}",
        ax=ax,
        annotate=False,
    )
fig.suptitle("Four heads, one sentence, causal mask (untrained)")
fig.tight_layout()
plt.show()

# %% [markdown]
# These are random projections, so the patterns mean nothing yet; the point here is only that each head has
# its own. Whether training makes them readable is a question for a trained model, not for this chapter.
#
# ## Proof: equal to `nn.MultiheadAttention`
#
# `MultiHeadAttention.from_torch` copies the weights of a PyTorch module. PyTorch keeps the three input projections
# in one stacked matrix `in_proj_weight` of shape $(3D, D)$, in the order q, k, v; we split it into `w_q`, `w_k`,
# `w_v`. Two conventions differ and must be translated when comparing:
#
# - **batch first**: `nn.MultiheadAttention` defaults to $(L, B, D)$ inputs; ours are always $(B, L, D)$;
# - **bool masks are inverted**: theirs mean True = *blocked*. Their `key_padding_mask` is $(B, S)$ with True at pads,
#   their `attn_mask` is $(L_q, L_k)$ with True above the diagonal for causality.

# %%
for batch_first in [True, False]:
    torch.manual_seed(1)
    theirs = (
        nn.MultiheadAttention(32, 4, batch_first=batch_first)
        .to(device)
        .eval()
    )
    ours = MultiHeadAttention.from_torch(theirs).eval()

    def run_theirs(query, memory, **masks):
        if not batch_first:  # (L, B, D) in and out
            query, memory = query.transpose(0, 1), memory.transpose(0, 1)
        out, weights = theirs(
            query, memory, memory, average_attn_weights=False, **masks
        )
        return (out if batch_first else out.transpose(0, 1)), weights

    checks = [
        ("self", src, src, {}, None),
        ("padding", src, src, {"key_padding_mask": ~pad[:, 0, 0]}, pad),
        (
            "causal",
            src,
            src,
            {"attn_mask": ~causal_mask(7, device)},
            causal_mask(7, device),
        ),
        ("cross", tgt, src, {"key_padding_mask": ~pad[:, 0, 0]}, pad),
    ]
    for _name, query, memory, their_masks, our_mask in checks:
        expected, expected_weights = run_theirs(query, memory, **their_masks)
        out, weights = ours(
            query, memory, memory, mask=our_mask, need_weights=True
        )
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            weights, expected_weights, atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            ours(query, memory, memory, mask=our_mask),
            expected,
            atol=1e-5,
            rtol=1e-5,
        )
    print(
        f"batch_first={batch_first!s:5}: outputs and weights equal "
        "for self, padding, causal, cross"
    )

# %% [markdown]
# Outputs and per-head weights agree within $10^{-5}$, for both of PyTorch's layouts, for self- and
# cross-attention, with padding and causal masks.
#
# ## Clear errors
#
# The mistakes that are easy to make get a message that says what is wrong, with the numbers:

# %%
mha = MultiHeadAttention(32, 4)
for bad in [
    lambda: MultiHeadAttention(510, 8),
    lambda: mha(seeded_randn(2, 5, 30, seed=4), src[:2].cpu(), src[:2].cpu()),
    lambda: mha(src.cpu(), src[:2].cpu(), src[:2].cpu()),
    lambda: mha(
        src.cpu(),
        src.cpu(),
        src.cpu(),
        mask=torch.ones(7, 6, dtype=torch.bool),
    ),
]:
    try:
        bad()
    except (ValueError, TypeError) as error:
        print(f"{type(error).__name__}: {error}")
    else:
        raise AssertionError("bad input was accepted")

# %% [markdown]
# ## What we built
#
# | name | the idea in one line |
# |---|---|
# | `MultiHeadAttention(d_model, n_heads, dropout=0.0, bias=True)` | h attentions of width d_model/h side by side, projections `w_q, w_k, w_v, w_o`; fused by default, weights on request |
# | `MultiHeadAttention.from_torch(module)` | the same weights as an `nn.MultiheadAttention`, proven to give the same outputs |
#
# With attention, masks and heads in place, chapter 5 builds the encoder around them: embeddings, positions,
# feed-forward layers, residual connections and layer normalisation.

# %% [markdown]
# ## Exercises
#
# Three exercises: one breaks multi-head attention down to one head, one splits the heads by hand, one counts the
# bill. Write your answer in the cell below each question and run it: `check` says whether it is right and, when it
# is not, what the mistake looks like. A reference solution is folded after each one (click to open it).

# %% [markdown]
# (ex-ch4-heads)=
# ### Exercise 4.1: break it yourself, one head instead of two
#
# Back to the chapter's first situation: the query at position 4 needs the token just before it (position 3) and
# the first token (position 0). The cell below builds it for a `MultiHeadAttention` with $d_{model} = 8$. Key 3 has
# a 1 in feature 0, key 0 a 1 in feature 4; each value holds its token's 4-dim vector twice, in features 0–3 and
# 4–7; the query looks for both features; and all four projections are set to the identity, so they only pass their
# input on. What the query needs is the pair $[v_3, v_0]$: the two tokens' vectors side by side, 8 numbers. Run the
# cell with `n_heads=2`, then break it with `n_heads=1` (the marked line): the same $d_{model}$, the same weights.
# How far is each output from the needed pair, as the norm of the difference, `(out - needed).norm()`? Answer with
# a pair of numbers, `(one_head, two_heads)`, within 0.01, and check it with `"ch4.heads"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch4.heads",
    "distance of the output from the needed pair [v_3, v_0]: 1 and 2 heads",
    wrong=[
        ((0.0, 0.0), "same"),
        ((0.0, 2.3748), "swapped"),
        ((2.3748, 2.3748), "n_heads=2"),
        ((3.3585, 0.0), "average"),
    ],
)
def _grade_heads(answer: Any) -> str | None:
    one, two = (float(n) for n in answer)
    expected = (2.3748, 0.0)  # _solve_heads, rounded
    gap = 3.3585  # |v_3 - v_0|, the two tokens' distance

    def near(got: float, want: float) -> bool:
        return abs(got - want) <= 0.01

    if near(one, expected[1]) and near(two, expected[0]):
        return "Those are swapped: the one head is the one that falls short."
    if near(one, 0.0):
        return (
            "One head does not return the pair. The same d_model and the "
            "same parameters (four 8 x 8 identity matrices either way) are "
            "not the same computation: one head has one softmax, so the "
            "query gets one set of weights, half on key 3 and half on key "
            "0, and returns one average, (v_3 + v_0) / 2, in both halves. "
            "Run the marked line with n_heads=1."
        )
    if not near(two, expected[1]):
        if near(two, one):
            return (
                "Both distances are the same: run the cell once as it is, "
                "with n_heads=2. Then head 0 reads features 0-3 of the "
                "query and keys and finds key 3 alone; head 1 reads "
                "features 4-7 and finds key 0 alone."
            )
        return (
            "With n_heads=2 each head finds one key (head 0 key 3, head 1 "
            "key 0) and reports its value in its own half of the output: "
            "the needed pair, at a distance of about 0."
        )
    if near(one, gap):
        return (
            "That is |v_3 - v_0|. One head returns the average (v_3 + v_0) "
            "/ 2 in both halves, so each half is off by half the "
            "difference: |v_3 - v_0| / √2 in all."
        )
    if not near(one, expected[0]):
        return (
            "Run the cell with n_heads=1 and print (out - needed).norm(): "
            "one head returns (v_3 + v_0) / 2 in both halves."
        )
    return None


# %%
v = seeded_randn(10, 4, seed=0)  # the chapter's token vectors, on the CPU
tokens = [1, 2, 3, 7, 5, 6]  # sentence A: token 1 first, 7 before 4
needed = torch.cat([v[7], v[1]])  # (8,): the previous token, the first
values = torch.cat([v[tokens], v[tokens]], dim=-1)  # (L, 8): twice
keys = torch.zeros(6, 8)
keys[3, 0] = keys[0, 4] = 1.0  # "previous" in feature 0, "first" in 4
query = 40 * (keys[3] + keys[0])  # looks for both
mha = MultiHeadAttention(8, n_heads=2)  # break it: n_heads=1
with torch.no_grad():  # every projection the identity
    for linear in (mha.w_q, mha.w_k, mha.w_v, mha.w_o):
        linear.weight.copy_(torch.eye(8))
        linear.bias.zero_()
out = mha(query[None, None], keys[None], values[None])[0, 0]  # (8,)
# your code: (out - needed).norm(), with n_heads=1 and with n_heads=2
answer = ...  # (one_head, two_heads), e.g. (1.0, 1.0)
check("ch4.heads", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch4.heads")
def _solve_heads() -> tuple[float, float]:
    import torch

    from transformer_lite.helpers import seeded_randn
    from transformer_lite.multi_head import MultiHeadAttention

    v = seeded_randn(10, 4, seed=0)
    tokens = [1, 2, 3, 7, 5, 6]
    needed = torch.cat([v[7], v[1]])  # (8,)
    values = torch.cat([v[tokens], v[tokens]], dim=-1)[None]  # (1, L, 8)
    keys = torch.zeros(1, 6, 8)
    keys[0, 3, 0] = keys[0, 0, 4] = 1.0
    query = 40 * (keys[:, 3:4] + keys[:, 0:1])  # (1, 1, 8)

    def distance(n_heads: int) -> float:
        mha = MultiHeadAttention(8, n_heads)
        with torch.no_grad():
            for linear in (mha.w_q, mha.w_k, mha.w_v, mha.w_o):
                linear.weight.copy_(torch.eye(8))
                linear.bias.zero_()
        out = mha(query, keys, values)[0, 0]  # (8,)
        return (out - needed).norm().item()

    # one head: one softmax over all 8 features; keys 3 and 0 score the
    # same, so each gets weight 1/2 and both halves of the output hold
    # (v_3 + v_0) / 2, off by |v_3 - v_0| / √2 in all (about 2.37).
    # two heads: head 0 sees features 0-3 only, so key 3 alone matches;
    # head 1 sees 4-7, key 0: [v_3, v_0], distance about 0.
    return distance(1), distance(2)


# %%
check("ch4.heads", EXERCISES["ch4.heads"].solve())

# %% [markdown]
# (ex-ch4-split)=
# ### Exercise 4.2: split the heads yourself
#
# Write `split_heads(x, n_heads)` without calling the module's: it takes a $(B, L, D)$ tensor and returns the
# $(B, H, L, D_k)$ tensor, $D_k = D / H$, in which head $i$ holds features $i D_k$ to $(i + 1) D_k - 1$ of every
# position, as the chapter's split does (and as PyTorch lays out the weights that `from_torch` copies). Answer with
# the function itself and check it with `"ch4.split"`; the checker calls it on several shapes.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch4.split",
    "split_heads(x, n_heads): (B, L, D) -> (B, H, L, D // H)",
    wrong=[
        (
            lambda x, h: x.view(x.size(0), h, x.size(1), x.size(2) // h),
            "transpose",
        ),
        (
            lambda x, h: x.reshape(
                x.size(0), x.size(1), x.size(2) // h, h
            ).permute(0, 3, 1, 2),
            "block",
        ),
        (
            lambda x, h: x.view(x.size(0), x.size(1), h, x.size(2) // h),
            "transpose",
        ),
    ],
)
def _grade_split(answer: Any) -> str | None:
    import torch

    if not callable(answer):
        return "Answer with a function, e.g. def split_heads(x, n_heads): ..."
    for b, n, d, h in [(2, 3, 8, 2), (3, 5, 12, 3), (2, 4, 16, 8)]:
        x = torch.arange(b * n * d, dtype=torch.float32).reshape(b, n, d)
        d_k = d // h
        heads = answer(x, h)
        if not isinstance(heads, torch.Tensor):
            return f"split_heads gave a {type(heads).__name__}, not a tensor."
        heads = heads.cpu()
        if tuple(heads.shape) == (b, n, h, d_k):
            return (
                f"Your heads have shape {tuple(heads.shape)}, (B, L, H, Dk): "
                "the head dimension is still after the positions. "
                "transpose(1, 2) moves it next to the batch, so that each "
                "head becomes one more batch entry for attention."
            )
        if tuple(heads.shape) != (b, h, n, d_k):
            return (
                f"For x of shape {(b, n, d)} and n_heads={h}, your heads "
                f"have shape {tuple(heads.shape)}; (B, H, L, D // H) is "
                f"{(b, h, n, d_k)}."
            )
        right = x.view(b, n, h, d_k).transpose(1, 2)  # (B, H, L, Dk)
        if torch.equal(heads, right):
            continue
        if torch.equal(heads, x.view(b, h, n, d_k)):
            return (
                "A plain view(B, H, L, D // H) has the right shape but reads "
                "the numbers in memory order: 'head 0' gets the first L·D/H "
                "numbers of the sentence, whole vectors of its first "
                "positions, so it mixes positions, and row l of a head is "
                "not position l. Split the last dimension first, view(B, L, "
                "H, D // H), then transpose(1, 2)."
            )
        if torch.equal(heads, x.view(b, n, d_k, h).permute(0, 3, 1, 2)):
            return (
                "Your head i takes every H-th feature (i, i + H, i + 2H, "
                "...): a strided split. Head i should own one contiguous "
                "block, features i·Dk to (i + 1)·Dk - 1: merge_heads glues "
                "the heads back in blocks, and nn.MultiheadAttention's "
                "weights are laid out that way, so from_torch would feed "
                "your heads the wrong features."
            )
        i, j, t, _ = (heads != right).nonzero()[0].tolist()
        return (
            f"For x of shape {(b, n, d)} and n_heads={h}, heads[{i}, {j}, "
            f"{t}] should be x[{i}, {t}, {j * d_k}:{(j + 1) * d_k}]: head "
            f"{j}'s block of the features of position {t}."
        )
    return None


# %%
def split_heads(
    x: torch.Tensor, n_heads: int
) -> torch.Tensor: ...  # your code: (B, L, D) -> (B, H, L, D // H)


answer = ...  # your function, split_heads, once it returns the heads
check("ch4.split", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch4.split")
def _solve_split() -> Any:
    import torch

    def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
        batch, length, d_model = x.shape
        # first read the last dimension as H blocks of Dk, (B, L, H, Dk):
        # head i owns features i*Dk .. (i+1)*Dk - 1 of every position
        heads = x.view(batch, length, n_heads, d_model // n_heads)
        # then move the heads next to the batch, (B, H, L, Dk). A plain
        # view(B, H, L, Dk) would cut the sentence into H runs of whole
        # positions instead.
        return heads.transpose(1, 2)

    return split_heads


# %%
check("ch4.split", EXERCISES["ch4.split"].solve())

# %% [markdown]
# (ex-ch4-params)=
# ### Exercise 4.3: the bill for $h$ heads
#
# Write `bill(d_model, n_heads, batch, length)`, which computes, without building a module, two numbers for
# `MultiHeadAttention(d_model, n_heads)` (with its biases): its number of parameters, and the number of entries of
# the attention-weights tensor it returns (with `need_weights=True`) for self-attention on a batch of `batch`
# sentences of `length` tokens. Answer with the function, which returns a pair of ints `(parameters, weights)`, and
# check it with `"ch4.params"`; the checker compares it with real modules, with one head and with several.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch4.params",
    "bill(d_model, n_heads, batch, length): (parameters, weights' entries)",
    wrong=[
        (lambda d, h, b, n: (h * (4 * d * d + 4 * d), b * h * n * n), "same"),
        (lambda d, h, b, n: (4 * d * d + 4 * d, b * n * n), "own"),
        (lambda d, h, b, n: (4 * d * d, b * h * n * n), "bias"),
        (
            lambda d, h, b, n: (4 * d * (d // h) + 4 * d, b * h * n * n),
            "share",
        ),
    ],
)
def _grade_params(answer: Any) -> str | None:
    import torch

    from transformer_lite.helpers import seeded_randn
    from transformer_lite.multi_head import MultiHeadAttention

    if not callable(answer):
        return "Answer with a function, e.g. def bill(d_model, n_heads, ...)."
    for d, h, b, n in [(64, 8, 2, 10), (64, 1, 2, 10), (48, 6, 3, 7)]:
        mha = MultiHeadAttention(d, h)
        parameters = sum(p.numel() for p in mha.parameters())
        x = seeded_randn(b, n, d, seed=0)
        with torch.no_grad():
            weights = mha(x, x, x, need_weights=True)[1].numel()
        got_parameters, got_weights = (int(m) for m in answer(d, h, b, n))
        sizes = f"d_model={d}, n_heads={h}"
        if got_parameters != parameters:
            if h > 1 and got_parameters == h * parameters:
                return (
                    f"You count h = {h} times one head of width d_model. "
                    f"The heads are not {h} full-width attentions: they read "
                    "the same four d_model x d_model projections in blocks "
                    "of d_k = d_model / h, so the parameters are the same "
                    "for any h."
                )
            if got_parameters == 4 * d * d:
                return (
                    "Each of the four projections also has a bias of "
                    "d_model numbers: 4 · d_model more."
                )
            if h > 1 and got_parameters in (
                4 * d * (d // h) + 4 * d,
                4 * d * (d // h) + 4 * (d // h),
                4 * d * (d // h),
            ):
                return (
                    "That is one head's share, d_model x d_k per projection. "
                    "There are h of them side by side: h · d_k = d_model, "
                    "four d_model x d_model matrices in all."
                )
            return (
                f"MultiHeadAttention({sizes}) has {parameters:,} parameters, "
                f"not {got_parameters:,}: count w_q, w_k, w_v and w_o, "
                "weights and biases."
            )
        if got_weights != weights:
            if h > 1 and got_weights == b * n * n:
                return (
                    "Each head has its own softmax, so its own length x "
                    "length matrix of weights, per sentence: the tensor is "
                    "(B, H, L, L)."
                )
            if got_weights == b * n * d:
                return (
                    "That is the size of the heads' outputs, (B, H, L, Dk). "
                    "The weights are (B, H, L, L): one length x length "
                    "matrix per sentence and head."
                )
            return (
                f"With {sizes}, batch={b}, length={n}, the weights tensor "
                f"has {weights:,} entries, not {got_weights:,}."
            )
    return None


# %%
def bill(
    d_model: int, n_heads: int, batch: int, length: int
) -> tuple[int, int]: ...  # your code: (parameters, weights' entries)


answer = ...  # your function, bill, once it returns the pair
check("ch4.params", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch4.params")
def _solve_params() -> Any:
    def bill(
        d_model: int, n_heads: int, batch: int, length: int
    ) -> tuple[int, int]:
        # four d_model x d_model projections (w_q, w_k, w_v, w_o), each
        # with a bias of d_model; the heads only read them in blocks of
        # d_k, so n_heads does not appear
        parameters = 4 * (d_model * d_model + d_model)
        # but each head has its own softmax: one length x length matrix
        # per sentence and per head, (B, H, L, L)
        weights = batch * n_heads * length * length
        return parameters, weights

    return bill


# %%
check("ch4.params", EXERCISES["ch4.params"].solve())
