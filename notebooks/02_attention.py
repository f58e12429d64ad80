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
# # 2. Scaling by √dₖ
#
# Chapter 1 built attention as $\mathrm{softmax}(QK^\top)V$. The paper's version has one more factor:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right)V$$
#
# where $d_k$ is the width of the queries and keys (64 per head in the base model). This chapter answers the
# question *what does dividing by $\sqrt{d_k}$ do, and why does it keep gradients stable?*, with four experiments:
#
# 1. how big $q \cdot k$ gets as $d_k$ grows;
# 2. what that does to the softmax;
# 3. what *that* does to the gradient, the signal training learns from, at the scores and at the query;
# 4. what $\sqrt{d_k}$ is, precisely, and what it is not.
#
# Then we export `scaled_dot_product_attention` and prove it equal to PyTorch's own
# `F.scaled_dot_product_attention`.

# %%
import math

import matplotlib.pyplot as plt
import torch

from transformer_lite import dot_product_attention, softmax
from transformer_lite.helpers import get_device, seeded_randn

device = get_device()
plt.rcParams["figure.figsize"] = (5, 3.5)
d_ks = [4, 8, 16, 32, 64, 128, 256, 512, 1024]

# %% [markdown]
# (ch2-variance)=
# ## 1. The dot product grows with $d_k$
#
# Take a query and a key whose entries are independent, with mean 0 and variance 1, the usual state of vectors
# at initialisation. Then $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$ is a sum of $d_k$ independent terms, each with mean 0
# and variance $\mathrm{E}[q_i^2]\,\mathrm{E}[k_i^2] = 1$. Variances of independent terms add, so
#
# $$\mathrm{Var}(q \cdot k) = d_k, \qquad \mathrm{Var}\!\left(\frac{q \cdot k}{\sqrt{d_k}}\right) = 1 .$$
#
# (The paper gives this argument in its footnote 4.) Here it is measured, on 20,000 random pairs per width:

# %%
n_pairs = 20_000
variance, variance_scaled = [], []
for i, d_k in enumerate(d_ks):
    q = seeded_randn(n_pairs, d_k, seed=100 + i, device=device)  # (N, Dk)
    k = seeded_randn(n_pairs, d_k, seed=200 + i, device=device)  # (N, Dk)
    dots = (q * k).sum(-1)  # (N,): one dot product per pair
    variance.append(dots.var().item())
    variance_scaled.append((dots / math.sqrt(d_k)).var().item())
    print(
        f"d_k={d_k:5d}   Var(q·k) = {variance[-1]:7.1f}"
        f" = {variance[-1] / d_k:.2f} × d_k"
        f"   Var(q·k/√d_k) = {variance_scaled[-1]:.2f}"
    )
assert all(0.9 < v / d < 1.1 for v, d in zip(variance, d_ks, strict=True))
assert all(0.9 < v < 1.1 for v in variance_scaled)

# %%
fig, ax = plt.subplots()
ax.loglog(d_ks, variance, "o", label="measured Var(q·k)")
ax.loglog(d_ks, d_ks, "-", color="gray", label="the line Var = d_k")
ax.loglog(d_ks, variance_scaled, "s", label="measured Var(q·k / √d_k)")
ax.set_xlabel("d_k")
ax.set_ylabel("variance of the score")
ax.set_title("Scores grow with d_k; scaled scores do not")
ax.legend()
plt.show()

# %% [markdown]
# The measured points sit on the line $\mathrm{Var} = d_k$. At $d_k = 64$ the raw scores have a standard deviation of
# 8, at $d_k = 1024$ of 32. After dividing by $\sqrt{d_k}$ the variance is 1 at every width.
#
# ## 2. Large scores saturate the softmax
#
# Why would a standard deviation of 32 be a problem? Because the softmax exponentiates: a score 10 higher than the
# next gets $e^{10} \approx 22{,}000$ times the weight. With spread-out scores the softmax puts almost all the weight
# on one key, like the hard attention of chapter 1. Two numbers describe how peaked a row of weights is: its
# largest weight, and its **entropy** $-\sum_j w_j \log w_j$, which is $\log L$ for uniform weights over $L$ keys and
# 0 for a one-hot row. Each query below attends to 16 random keys.

# %%
n_queries, n_keys = 2_000, 16


def peakedness(weights: torch.Tensor) -> tuple[float, float]:
    """Mean largest weight and mean entropy (nats) of rows of weights."""
    entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)
    return weights.amax(-1).mean().item(), entropy.mean().item()


largest, entropy = {"raw": [], "scaled": []}, {"raw": [], "scaled": []}
for i, d_k in enumerate(d_ks):
    q = seeded_randn(
        n_queries, 1, d_k, seed=300 + i, device=device
    )  # (N, 1, Dk)
    k = seeded_randn(
        n_queries, n_keys, d_k, seed=400 + i, device=device
    )  # (N, L, Dk)
    scores = (q @ k.transpose(-2, -1)).squeeze(1)  # (N, L)
    for name, s in [("raw", scores), ("scaled", scores / math.sqrt(d_k))]:
        top, h = peakedness(softmax(s))
        largest[name].append(top)
        entropy[name].append(h)
print(
    f"entropy of uniform weights over {n_keys} keys: {math.log(n_keys):.2f}"
)
print("        largest weight    entropy (nats)")
print("  d_k    raw   scaled       raw   scaled")
for i, d_k in enumerate(d_ks):
    print(
        f"{d_k:5d}   {largest['raw'][i]:.2f}     {largest['scaled'][i]:.2f}"
        f"      {entropy['raw'][i]:.2f}     {entropy['scaled'][i]:.2f}"
    )

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
for name, style in [("raw", "o-"), ("scaled", "s-")]:
    label = "softmax(q·k)" if name == "raw" else "softmax(q·k / √d_k)"
    left.semilogx(d_ks, largest[name], style, base=2, label=label)
    right.semilogx(d_ks, entropy[name], style, base=2, label=label)
right.axhline(
    math.log(n_keys),
    color="gray",
    linestyle=":",
    label="uniform over 16 keys",
)
left.set(xlabel="d_k", ylabel="mean largest weight", title="Largest weight")
right.set(
    xlabel="d_k", ylabel="mean entropy (nats)", title="Entropy of the weights"
)
left.legend()
right.legend()
fig.tight_layout()
plt.show()
assert largest["raw"][-1] > 0.9 and entropy["raw"][-1] < 0.3
assert max(largest["scaled"]) - min(largest["scaled"]) < 0.05

# %% [markdown]
# Without scaling, the largest weight climbs towards 1 and the entropy falls towards 0 as $d_k$ grows: by
# $d_k = 1024$ each query looks at essentially one key. With scaling, both stay where they were at $d_k = 4$,
# whatever the width. The scaling does not make attention uniform; it makes the *starting* sharpness independent of
# $d_k$, and leaves training free to sharpen it where that helps.
#
# (ch2-gradient)=
# ## 3. What saturation does to the gradient
#
# Training changes $W_Q$ and $W_K$ through the gradient that reaches the
# scores. For weights $w = \mathrm{softmax}(s)$ and a loss $\mathcal{L}$,
#
# $$\frac{\partial \mathcal{L}}{\partial s_j}
#   = w_j \left(u_j - \textstyle\sum_i w_i u_i\right),
#   \qquad u_j = \frac{\partial \mathcal{L}}{\partial w_j} .$$
#
# Each key's share of the signal is proportional to its own weight $w_j$: a key
# with weight 0.001 gets a thousandth of the push. If one weight is 1 and the
# rest are 0, every $\partial \mathcal{L} / \partial s_j$ is 0. This is the
# "extremely small gradients" the paper gives as its reason for the factor
# (§3.2.1).
#
# The scores are not what training changes, though. The query is
# $q = x W_Q$, and the chain rule multiplies the gradient at the scores by the
# keys on the way back:
# $\partial \mathcal{L} / \partial q = c \sum_j (\partial \mathcal{L} /
# \partial s_j)\, k_j$, with $c = 1$ unscaled and $c = 1/\sqrt{d_k}$ scaled.
# The keys have length about $\sqrt{d_k}$, so the unscaled version gets back a
# factor $\sqrt{d_k}$ that the scaled one divides away. Which effect wins?
# We measure three things, for the raw and the scaled version: the gradient at
# the scores, the gradient at the query, and how many of the 16 keys still get
# at least 1% of the signal (weight $w_j \ge 0.01$).

# %%
grad_s = {"raw": [], "scaled": []}  # median |∂L/∂scores|
grad_q = {"raw": [], "scaled": []}  # median |∂L/∂q|
keys_with_signal = {"raw": [], "scaled": []}  # keys with weight >= 0.01
for i, d_k in enumerate(d_ks):
    q0 = seeded_randn(n_queries, 1, d_k, seed=300 + i, device=device)
    k = seeded_randn(n_queries, n_keys, d_k, seed=400 + i, device=device)
    # a random upstream gradient ∂L/∂w, the same for both versions
    upstream = seeded_randn(n_queries, n_keys, seed=500 + i, device=device)
    for name, c in [("raw", 1.0), ("scaled", 1 / math.sqrt(d_k))]:
        q = q0.clone().requires_grad_()  # (N, 1, Dk)
        scores = (q @ k.transpose(-2, -1)).squeeze(1) * c  # (N, L)
        scores.retain_grad()
        weights = softmax(scores)
        (weights * upstream).sum().backward()
        grad_s[name].append(scores.grad.norm(dim=-1).median().item())
        grad_q[name].append(q.grad.squeeze(1).norm(dim=-1).median().item())
        signal = (weights >= 0.01).sum(-1).float().mean().item()
        keys_with_signal[name].append(signal)

print("         |∂L/∂scores|     |∂L/∂q|       keys with signal")
print("  d_k    raw     scaled   raw     scaled   raw  scaled")
for i, d_k in enumerate(d_ks):
    print(
        f"{d_k:5d}  {grad_s['raw'][i]:.1e}  {grad_s['scaled'][i]:.1e}"
        f"  {grad_q['raw'][i]:.1e}  {grad_q['scaled'][i]:.1e}"
        f"  {keys_with_signal['raw'][i]:4.1f}  "
        f"{keys_with_signal['scaled'][i]:4.1f}"
    )

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
for name, style in [("raw", "o-"), ("scaled", "s-")]:
    label = "softmax(q·k)" if name == "raw" else "softmax(q·k / √d_k)"
    left.plot(d_ks, grad_s[name], style, label=label)
    right.plot(d_ks, grad_q[name], style, label=label)
for ax, where in [(left, "the scores"), (right, "the query")]:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="d_k", ylabel="median gradient norm")
    ax.set_title(f"Gradient at {where}")
right.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the table column by column.
#
# - **At the scores** the raw gradient falls from $d_k = 16$ on and is about
#   $10^{-5}$ at $d_k = 1024$; the scaled one stays near 0.27 at every width.
# - **At the query**, where $W_Q$ learns, the factor $|k| \approx \sqrt{d_k}$
#   hides the loss for a while: up to $d_k = 64$, the paper's width, the raw
#   gradient is *larger* than the scaled one (0.49 against 0.27). It drops
#   below from $d_k = 128$, is about 4 times smaller at 256, 50 times at 512
#   and over 1,000 times at 1024. So "the gradient vanishes at the paper's
#   width" would be false: unscaled, the gradient's *size* breaks down only
#   for heads four or more times wider than the paper's.
# - **What saturation costs already at $d_k = 64$** is the third column: about
#   2.4 of the 16 keys get 1% of the signal or more, against 14–15 scaled. The
#   gradient still has a size, but it says how to move the one or two keys that
#   already win; the others get no signal at all. An optimiser like Adam divides
#   each gradient by its running size, so it can restore the *size* of a small
#   gradient, but not its *direction*: it cannot invent the push towards a key
#   whose weight is 0.
#
# The cell below holds these statements to the numbers.

# %%
at = {d_k: i for i, d_k in enumerate(d_ks)}
# at the scores: the raw gradient collapses, the scaled one does not
assert grad_s["raw"][at[1024]] < 1e-3 * grad_s["scaled"][at[1024]]
assert max(grad_s["scaled"]) < 1.2 * min(grad_s["scaled"])
# at the query: raw is larger up to d_k = 64, smaller from 128, tiny at 1024
assert all(grad_q["raw"][at[d]] > grad_q["scaled"][at[d]] for d in d_ks[:5])
assert all(grad_q["raw"][at[d]] < grad_q["scaled"][at[d]] for d in d_ks[5:])
assert grad_q["raw"][at[256]] < 0.3 * grad_q["scaled"][at[256]]
assert grad_q["raw"][at[512]] < 0.05 * grad_q["scaled"][at[512]]
assert grad_q["raw"][at[1024]] < 1e-3 * grad_q["scaled"][at[1024]]
# who gets a signal: a few keys raw at d_k = 64, nearly all of them scaled
assert keys_with_signal["raw"][at[64]] < 3
assert min(keys_with_signal["scaled"]) > 14

# %% [markdown]
# With the factor, all three columns stay the same at every width. That is
# what "keeps gradients stable" means here: neither the size nor the spread of
# the learning signal depends on how wide the heads are.
#
# (ch2-what-sqrt-dk-is)=
# ## 4. What √d_k is, and what it is not
#
# A tempting reading is "$\sqrt{d_k}$ is the length of the vector, so dividing by it normalises $q$". It is close to
# a true fact, but it is not the reason, and taking it literally gives the wrong operation.
#
# - **What it is:** $\sqrt{d_k}$ is the *standard deviation of the dot product* $q \cdot k$ when the entries have
#   unit variance (section 1). Dividing by it sets the scores' variance to 1.
# - **A coincidence that makes the two look alike:** with unit-variance entries, $\mathrm{E}|q|^2 = d_k$, so a
#   typical length $|q|$ is also about $\sqrt{d_k}$.
# - **Why "normalise by the length" is wrong:** normalising both vectors by their lengths gives the cosine,
#   $q \cdot k / (|q|\,|k|)$, a division by about $d_k$, not $\sqrt{d_k}$. Its variance is $1/d_k$: the scores
#   shrink towards 0 as $d_k$ grows and the softmax goes flat, the opposite failure.

# %%
print("  d_k  √d_k  mean |q|  std(q·k)  Var(q·k/√d_k)  Var(cosine)×d_k")
for i, d_k in enumerate([16, 64, 256, 1024]):
    q = seeded_randn(n_pairs, d_k, seed=600 + i, device=device)
    k = seeded_randn(n_pairs, d_k, seed=700 + i, device=device)
    dots = (q * k).sum(-1)
    length = q.norm(dim=-1).mean().item()
    cosine = dots / (q.norm(dim=-1) * k.norm(dim=-1))
    print(
        f"{d_k:5d}  {math.sqrt(d_k):4.0f}  {length:8.1f}  "
        f"{dots.std().item():8.1f}  {(dots / d_k**0.5).var().item():13.2f}"
        f"  {cosine.var().item() * d_k:15.2f}"
    )

# %% [markdown]
# The standard deviation of $q \cdot k$ matches $\sqrt{d_k}$, and so, nearly, does the mean length $|q|$ (a little
# below it, since the mean of a square root is below the square root of the mean). The cosine's variance is
# $1/d_k$ (the last column is 1). The paper divides by the *one* number that brings the scores back to variance 1.
#
# Note also what the argument assumes: unit-variance entries. That holds at initialisation for unit-variance inputs,
# because chapter 4 initialises the projections $W^Q$, $W^K$ so that $q$ and $k$ keep the variance of their input
# (and checks it). Once training starts, $q$ and $k$ change, and the model is free to learn sharper or flatter
# attention. The factor sets a good starting point; it does not fix the scale forever.
#
# ## The exported function
#
# Here is attention as the paper writes it, spelled out step by step, with the two extras every later chapter needs:
#
# - **`mask`**: a bool tensor, **True = may attend**, the same rule as `F.scaled_dot_product_attention`. It must
#   broadcast to the scores' shape $(\ldots, L_q, L_k)$. Blocked scores become $-\infty$, so they get weight 0.
#   Chapter 3 builds the masks and explains them. Beware: `nn.MultiheadAttention`'s bool masks mean the opposite
#   (True = blocked).
# - **`dropout`**: the probability of zeroing a weight (the paper applies dropout to the attention weights during
#   training). Pass 0 or `None` in evaluation.
#
# Two choices here are about speed, not meaning. The factor multiplies the queries before the product rather than
# the scores after it: the same function (equal up to rounding), but $L_q \times d_k$ multiplications instead of
# $L_q \times L_k$, and one fewer $(L_q, L_k)$ tensor. And the softmax is PyTorch's `torch.softmax` instead of
# chapter 1's: the same function (checked below against chapter 1's), computed in one pass over the scores, where
# ours makes five (maximum, subtract, exponentiate, sum, divide) and keeps three $(L_q, L_k)$ tensors alive for the
# backward pass. The benchmark in the {ref}`Performance appendix <perf-attention>` measured what that was worth:
# from $L = 512$ on, about a third of the time or less, and about half the memory or less, of the version built on
# chapter 1's softmax.
#
# `torch.softmax` of a row that is $-\infty$ everywhere computes $0/0$ = NaN. So a query that may attend to nothing
# keeps its (finite) scores through the softmax, and its weights are set to zero afterwards: chapter 1's rule, with
# no NaN anywhere, not even inside the backward pass.

# %% tags=["export", "hide-input"]
import torch
import torch.nn.functional as F
from torch import Tensor

from transformer_lite.dot_product import check_qkv


def check_mask(
    mask: Tensor, scores_shape: torch.Size | tuple[int, ...]
) -> None:
    """Raise a clear error unless ``mask`` is a bool tensor that broadcasts to
    the scores.

    The rule, as in ``F.scaled_dot_product_attention``: True = may attend.
    (Bool masks of ``nn.MultiheadAttention`` mean the opposite: True =
    blocked.)

    Shape:
        mask: broadcastable to ``scores_shape`` = (..., Lq, Lk).
    """
    if not isinstance(mask, Tensor):
        raise TypeError(
            f"mask must be a bool tensor, got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(
            "mask must be a bool tensor with True = may attend, "
            f"got dtype {mask.dtype}; "
            "convert it, e.g. mask.bool() if 1 means 'may attend'"
        )
    try:
        shape = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        shape = None
    if shape != torch.Size(scores_shape):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the "
            f"attention scores' shape (..., Lq, Lk) = {tuple(scores_shape)}"
        )


# %% [markdown]
# The folded cell above holds `check_mask`, the argument check that turns a
# wrong mask into an error that says what is wrong. The function itself:

# %% tags=["export"]
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None = None,
    dropout: float | None = None,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """softmax(Q Kᵀ / √d_k) V, written out: scale, matmul, mask, softmax,
    dropout, matmul.

    Args:
        mask: bool, True = may attend (the rule of
            ``F.scaled_dot_product_attention``; ``nn.MultiheadAttention`` uses
            the opposite). A query row that may attend to nothing gets
            all-zero weights and a zero output, not NaN.
        dropout: probability of zeroing each attention weight (training only:
            pass 0 or None in evaluation). The returned weights are the ones
            that mixed the values, after dropout.
        scale: the factor on the scores; 1/√d_k when None.

    Shape:
        query (..., Lq, Dk), key (..., Lk, Dk), value (..., Lk, Dv), mask
        broadcastable to (..., Lq, Lk). Returns output (..., Lq, Dv) and
        weights (..., Lq, Lk).
    """
    check_qkv(query, key, value)
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"dropout must be a probability in [0, 1), got {dropout}"
        )
    scale = query.size(-1) ** -0.5 if scale is None else scale
    scores = (query * scale) @ key.transpose(-2, -1)  # (..., Lq, Lk)
    if mask is not None:
        check_mask(mask, scores.shape)
        # a query that may attend to nothing keeps its finite scores here, and
        # gets zero weights below: a row of -inf would make the softmax
        # compute 0/0 = NaN
        empty = ~mask.any(dim=-1, keepdim=True)
        scores = scores.masked_fill(
            ~mask & ~empty, float("-inf")
        )  # blocked: weight 0
    weights = torch.softmax(scores, dim=-1)  # (..., Lq, Lk)
    if mask is not None:
        weights = weights.masked_fill(empty, 0.0)
    if dropout:
        weights = F.dropout(weights, p=dropout)
    return weights @ value, weights  # (..., Lq, Dv)


# %% [markdown]
# ## Proof: the same as PyTorch's own
#
# `torch.nn.functional.scaled_dot_product_attention` computes the same thing (through fused kernels when it can).
# We compare outputs on batched, multi-head shapes with $L_q \neq L_k$: without a mask, with a random mask, and with
# a mask that leaves one query nothing to attend to.

# %%
B, H, Lq, Lk, Dk, Dv = 2, 3, 5, 7, 16, 8
q = seeded_randn(B, H, Lq, Dk, seed=1, device=device)
k = seeded_randn(B, H, Lk, Dk, seed=2, device=device)
v = seeded_randn(B, H, Lk, Dv, seed=3, device=device)
random_mask = (
    seeded_randn(B, 1, Lq, Lk, seed=4, device=device) > 0
)  # broadcasts over heads
random_mask[..., 0] = True  # every query may see key 0
empty_row = random_mask.clone()
empty_row[0, 0, 2] = False  # query 2 of batch 0 may attend to nothing

for name, mask in [
    ("no mask", None),
    ("random mask", random_mask),
    ("empty row", empty_row),
]:
    ours, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    assert not ours.isnan().any()
    print(f"{name:12}: equal to F.scaled_dot_product_attention (≤ 1e-6)")

torch.testing.assert_close(
    weights[0, :, 2], torch.zeros(H, Lk, device=device)
)
assert (weights.masked_select(~empty_row.expand_as(weights)) == 0).all()

# %% [markdown]
# The written-out version and PyTorch's agree within $10^{-6}$ in all three cases. Blocked keys get weight exactly
# 0, and the query with nothing to attend to gets zero weights and a zero output, as in PyTorch, rather than the NaN
# a plain softmax over a row of $-\infty$ would give. With `scale=1.0` it is chapter 1's unscaled attention, and
# its weights are exactly what chapter 1's `softmax` makes of the masked, scaled scores:

# %%
torch.testing.assert_close(
    scaled_dot_product_attention(q, k, v, scale=1.0)[0],
    dot_product_attention(q, k, v)[0],
)
_, weights = scaled_dot_product_attention(q, k, v, mask=empty_row)
scores = (q @ k.transpose(-2, -1) / Dk**0.5).masked_fill(
    ~empty_row, float("-inf")
)
torch.testing.assert_close(
    weights, softmax(scores)
)  # chapter 1's softmax, empty row too

# %% [markdown]
# And inputs that cannot work are refused with a message that says why:

# %%
for bad in [
    lambda: scaled_dot_product_attention(q, k[..., :8], v),
    lambda: scaled_dot_product_attention(q, k, v, mask=random_mask.float()),
    lambda: scaled_dot_product_attention(q, k, v, mask=random_mask[..., :3]),
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
# | `scaled_dot_product_attention(query, key, value, mask=None, dropout=None)` | softmax(QKᵀ/√d_k)V written out, with a bool mask and attention dropout; returns output and weights |
# | `check_mask(mask, scores_shape)` | a bool mask (True = may attend) that broadcasts to the scores, or a clear error |
#
# The factor $1/\sqrt{d_k}$ divides each score by its own standard deviation at initialisation, so the softmax starts
# equally soft at every width: every key keeps a share of the gradient, and its size does not depend on the
# width of the heads (without it, the gradient at the query collapses from $d_k \approx 256$). Next, chapter 3 builds the masks:
# padding, and the causal mask that keeps the decoder from reading the future.
