# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
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
# # Introduction: why attention replaced recurrence
#
# Before 2017, the best translation systems read a sentence with a recurrent network (RNN): a state vector $h_t$
# updated word by word, $h_t = f(h_{t-1}, x_t)$. The Transformer drops recurrence entirely and reads a sentence with
# attention alone. The first question a reader of the paper asks is the right one:
#
# > *Why does the Transformer parallelise so much better than an RNN?*
#
# Because the RNN's state at step $t$ needs the state at step $t-1$. This page makes that sentence concrete with the
# paper's Table 1 and three measurements on this machine. (The later chapters build the Transformer itself; nothing
# here depends on them except chapter 1's timer and chapter 2's attention function.)
#
# (intro-table1)=
# ## The paper's Table 1
#
# Vaswani et al. (2017, Table 1) compare layer types that map a sequence of $n$ vectors of width $d$ to another such
# sequence; $k$ is a convolution's kernel width and $r$ the neighbourhood of restricted self-attention:
#
# | layer type | complexity per layer | sequential operations | maximum path length |
# |---|---|---|---|
# | self-attention | $O(n^2 \cdot d)$ | $O(1)$ | $O(1)$ |
# | recurrent | $O(n \cdot d^2)$ | $O(n)$ | $O(n)$ |
# | convolutional | $O(k \cdot n \cdot d^2)$ | $O(1)$ | $O(\log_k n)$ |
# | self-attention (restricted) | $O(r \cdot n \cdot d)$ | $O(1)$ | $O(n/r)$ |
#
# - **Complexity per layer** counts multiply-adds. Self-attention compares every pair of positions ($n^2$ pairs,
#   $d$ each); a recurrent layer multiplies a $d \times d$ matrix once per position.
# - **Sequential operations** is the number of steps that must run one after another, however many processors you
#   have. This is the column that decides training speed on parallel hardware.
# - **Maximum path length** is how many steps a signal must travel between two positions: it decides how hard
#   long-range dependencies are to learn.
#
# The three measurements below back the last two columns, and the trade-off in the first.

# %%
import statistics

import matplotlib.pyplot as plt
import torch
from torch.overrides import TorchFunctionMode

from transformer_lite import (
    get_device,
    scaled_dot_product_attention,
    seeded_randn,
    time_calls,
)

device = get_device()
plt.rcParams["figure.figsize"] = (5, 3.5)
d = 64
W = (
    seeded_randn(d, d, seed=1, device=device) / d**0.5
)  # input weights of the RNN
U = seeded_randn(d, d, seed=2, device=device) / d**0.5  # recurrent weights


def rnn(x: torch.Tensor, W: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """A plain tanh RNN, written out: h_t = tanh(x_t W + h_(t-1) U). x (B, L, d)."""
    h = torch.zeros(x.size(0), U.size(0), device=x.device)
    states = []
    for t in range(
        x.size(1)
    ):  # step t cannot start before step t - 1 is done
        h = torch.tanh(x[:, t] @ W + h @ U)
        states.append(h)
    return torch.stack(states, dim=1)  # (B, L, d)


def self_attention(x: torch.Tensor) -> torch.Tensor:
    """Self-attention over the whole sequence at once (chapter 2's function). x (B, L, d)."""
    return scaled_dot_product_attention(x, x, x)[0]


# %% [markdown]
# ## 1. Sequential operations, counted
#
# Count the matrix products each layer asks for, as the sequence grows. We intercept every PyTorch call with a
# `TorchFunctionMode` and count the matrix multiplications.


# %%
class CountMatmuls(TorchFunctionMode):
    """Counts the matrix products issued while it is active."""

    names = {"matmul", "__matmul__", "mm", "bmm", "addmm", "linear"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") in self.names
        return func(*args, **(kwargs or {}))


for length in [8, 32, 128, 512]:
    x = seeded_randn(2, length, d, seed=length, device=device)
    counts = {}
    for name, layer in [
        ("RNN", lambda x: rnn(x, W, U)),
        ("self-attention", self_attention),
    ]:
        with CountMatmuls() as counter:
            layer(x)
        counts[name] = counter.count
    print(
        f"n={length:4d}: RNN {counts['RNN']:5d} matrix products, "
        f"self-attention {counts['self-attention']}"
    )
    assert counts["RNN"] == 2 * length and counts["self-attention"] == 2

# %% [markdown]
# The RNN issues two small products per position, and the recurrent half, $h_{t-1}U$, forms a chain: each one needs
# the result of the one before. That is $O(n)$ sequential operations. Self-attention issues two large products,
# $QK^\top$ and the weighted sum with $V$, whatever $n$ is: $O(1)$ sequential operations, each made of many
# independent multiply-adds that parallel hardware can spread over its cores.
#
# ## 2. What that costs in time
#
# Now the clock, at width $d = 256$ and for sequences up to that length ($n \le d$, where Table 1's first column says
# self-attention also does less arithmetic: $n^2 d$ against $n d^2$). The recurrent layer's steps are small and must
# run one after another; self-attention's work is one batched operation. Both are timed in turns with chapter 1's
# `time_calls`. On this page's machine (your numbers will differ; the printed timings are not checked by the tests):

# %% tags=["nbval-ignore-output"]
width = 256
W_wide = seeded_randn(width, width, seed=4, device=device) / width**0.5
U_wide = seeded_randn(width, width, seed=5, device=device) / width**0.5
lengths = [16, 32, 64, 128, 256]
rnn_ms, attention_ms = [], []
with torch.no_grad():
    for length in lengths:
        x = seeded_randn(16, length, width, seed=length, device=device)
        rnn_times, attention_times = time_calls(
            lambda: rnn(x, W_wide, U_wide), lambda: self_attention(x)
        )
        rnn_ms.append(1e3 * statistics.median(rnn_times))
        attention_ms.append(1e3 * statistics.median(attention_times))
for length, r, a in zip(lengths, rnn_ms, attention_ms, strict=True):
    print(f"n={length:4d}: RNN {r:7.2f} ms   self-attention {a:6.2f} ms")

# %%
fig, ax = plt.subplots()
ax.loglog(lengths, rnn_ms, "o-", label="RNN, step by step")
ax.loglog(
    lengths, attention_ms, "s-", label="self-attention, one batched product"
)
ax.set_xticks(lengths, [str(n) for n in lengths])
ax.minorticks_off()
ax.set_xlabel("sequence length n")
ax.set_ylabel("forward time (ms), batch 16, d = 256")
ax.set_title("Sequential steps cost time")
ax.legend()
plt.show()

# %% [markdown]
# The RNN's time grows in proportion to $n$, one step after another. Self-attention's stays below it over this
# range, because its work is batched and, for $n \le d$, smaller. For sequences much longer than $d$ the $n^2$ term
# wins, which is the price in the first column of Table 1: chapter 1 measures where the two curves meet at the
# paper's width.
#
# ## 3. Maximum path length: how far a signal has to travel
#
# How much does the output at position $n$ depend on the first input $x_0$? In the RNN the signal from $x_0$ must pass
# through $n$ applications of the recurrence, each a matrix product and a tanh; in self-attention it reaches every
# position in one step. We measure the size of the gradient $\partial y_n / \partial x_0$ for growing $n$.

# %%
L = 64
x = seeded_randn(1, L, d, seed=3, device=device).requires_grad_()
sensitivity = {}
for name, layer in [
    ("RNN", lambda x: rnn(x, W, U)),
    ("self-attention", self_attention),
]:
    out = layer(x)  # (1, L, d)
    norms = []
    for n in range(L):
        (grad,) = torch.autograd.grad(out[0, n].sum(), x, retain_graph=True)
        norms.append(grad[0, 0].norm().item())  # how much y_n moves with x_0
    sensitivity[name] = norms

fig, ax = plt.subplots()
for name, norms in sensitivity.items():
    ax.semilogy(range(L), norms, label=name)
ax.set_xlabel("distance n from the first position")
ax.set_ylabel("|∂y_n / ∂x_0|")
ax.set_title("How much position n still depends on position 0")
ax.legend()
plt.show()
rnn_decay = sensitivity["RNN"][-1] / sensitivity["RNN"][1]
attention_decay = (
    sensitivity["self-attention"][-1] / sensitivity["self-attention"][1]
)
assert rnn_decay < 1e-3 and attention_decay > 1e-2
shrinks_rnn = "more than 1,000" if rnn_decay < 1e-3 else "less than 1,000"
shrinks_attention = (
    "less than 100" if attention_decay > 1e-2 else "more than 100"
)
print(f"from n=1 to n={L - 1}, the dependence on x_0 shrinks by a factor of")
print(f"{shrinks_rnn} in the RNN, {shrinks_attention} in self-attention")

# %% [markdown]
# In the RNN, the influence of the first word fades exponentially with distance: the signal is multiplied by the
# recurrent matrix and squashed by tanh at every step (this is the vanishing gradient that made long sentences hard
# for RNNs). In self-attention it does not fade with distance at all: position $n$ reads $x_0$ directly, and how much
# it depends on it is set by the weight it gives position 0. With these random vectors that weight is small and
# varies from position to position; training raises it wherever a distant word matters.
#
# ## The plan of this book
#
# Chapter 1 starts from the dot product, the operation that replaces recurrence; chapters 2 to 4 build attention,
# masking and multiple heads; chapters 5 and 6 assemble the encoder, the decoder and the whole model; chapter 7
# trains it. Each chapter proves its code equal to PyTorch's own layers where PyTorch has one.
