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
#   $d$ each); a recurrent layer multiplies a $d \times d$ matrix once per position. (The self-attention row counts
#   only that comparison: a real layer also projects every position with four $d \times d$ matrices, section 2.)
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
from torch.utils.flop_counter import FlopCounterMode

from transformer_lite import scaled_dot_product_attention
from transformer_lite.exercises import EXERCISES, check
from transformer_lite.helpers import get_device, seeded_randn, time_calls

device = get_device()
plt.rcParams["figure.figsize"] = (5, 3.5)


def random_weights(width: int, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` random (width, width) matrices, scaled by 1/√width."""
    return [
        seeded_randn(width, width, seed=seed + i, device=device) / width**0.5
        for i in range(count)
    ]


def rnn(x: torch.Tensor, W: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """A plain tanh RNN: h_t = tanh(x_t W + h_(t-1) U). x (B, L, d)."""
    h = torch.zeros(x.size(0), U.size(0), device=x.device)
    states = []
    for t in range(x.size(1)):  # step t must wait for step t - 1
        h = torch.tanh(x[:, t] @ W + h @ U)
        states.append(h)
    return torch.stack(states, dim=1)  # (B, L, d)


def self_attention(x, W_q, W_k, W_v, W_o) -> torch.Tensor:
    """One self-attention layer over the whole sequence at once: project
    to queries, keys and values, attend (chapter 2's function), project
    back. x (B, L, d)."""
    out, _ = scaled_dot_product_attention(x @ W_q, x @ W_k, x @ W_v)
    return out @ W_o  # (B, L, d)


d = 64
W, U = random_weights(d, 2, seed=1)  # the RNN's input and recurrent weights
projections = random_weights(d, 4, seed=11)  # attention's W_Q, W_K, W_V, W_O

# %% [markdown]
# Both layers are complete: the RNN has its two $d \times d$ matrices, and the attention layer its four projections
# $W_Q, W_K, W_V, W_O$ (chapter 4 builds the same layer with several heads). The weights are random, scaled by
# $1/\sqrt{d}$ so that a vector keeps about its size when multiplied; training would change their values, not the
# shape of the computation, which is what this page is about.
#
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


layers = {
    "RNN": lambda x: rnn(x, W, U),
    "self-attention": lambda x: self_attention(x, *projections),
}
for length in [8, 32, 128, 512]:
    x = seeded_randn(2, length, d, seed=length, device=device)
    counts = {}
    for name, layer in layers.items():
        with CountMatmuls() as counter:
            layer(x)
        counts[name] = counter.count
    print(
        f"n={length:4d}: RNN {counts['RNN']:5d} matrix products, "
        f"self-attention {counts['self-attention']}"
    )
    assert counts["RNN"] == 2 * length and counts["self-attention"] == 6

# %% [markdown]
# The RNN issues two small products per position, and the recurrent half, $h_{t-1}U$, forms a chain: each one needs
# the result of the one before. That is $O(n)$ sequential operations. The attention layer issues six large products
# whatever $n$ is: the three projections (which do not depend on each other), $QK^\top$, the weighted sum with $V$
# and the output projection. That is $O(1)$ sequential operations, each made of many independent multiply-adds that
# parallel hardware can spread over its cores.
#
# ## 2. What that costs in time
#
# Fewer steps is not less arithmetic. Per sequence, the RNN does $2nd^2$ multiply-adds (two $d \times d$ products per
# position). The attention layer does $4nd^2$ in its four projections and $2n^2d$ in $QK^\top$ and the weighted sum:
# $2 + n/d$ times as much as the RNN, at every length. (Table 1's $O(n^2 \cdot d)$ counts only that core; the
# projections are $O(n \cdot d^2)$, like the recurrent layer.) So if the attention layer is faster, it is because
# its work comes in a few large batched products, not because there is less of it.
# PyTorch's `FlopCounterMode` counts the arithmetic of every matrix product (the tanh and the softmax are small
# beside them), at width $d = 256$:

# %%
width = 256
W_wide, U_wide = random_weights(width, 2, seed=4)
projections_wide = random_weights(width, 4, seed=21)
lengths = [16, 32, 64, 128, 256]
wide_layers = {
    "RNN": lambda x: rnn(x, W_wide, U_wide),
    "self-attention": lambda x: self_attention(x, *projections_wide),
}


def multiply_adds(layer, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        layer(x)
    return counter.get_total_flops() // 2  # a multiply-add is 2 FLOPs


for length in lengths:
    x = seeded_randn(1, length, width, seed=length, device=device)
    r, a = (multiply_adds(f, x) for f in wide_layers.values())
    print(
        f"n={length:4d}: RNN {r / 1e6:5.1f}M, attention {a / 1e6:5.1f}M "
        f"multiply-adds, {a / r:.2f}× the RNN's"
    )
    assert r == 2 * length * width**2
    assert a == 4 * length * width**2 + 2 * length**2 * width

# %% [markdown]
# Now the clock, at the same width and lengths. Both layers are timed in turns with chapter 1's `time_calls`. On
# this page's machine (your numbers will differ; the printed timings are not checked by
# the tests):

# %% tags=["nbval-ignore-output"]
rnn_ms, attention_ms = [], []
with torch.no_grad():
    for length in lengths:
        x = seeded_randn(16, length, width, seed=length, device=device)
        rnn_times, attention_times = time_calls(
            lambda: wide_layers["RNN"](x),
            lambda: wide_layers["self-attention"](x),
        )
        rnn_ms.append(1e3 * statistics.median(rnn_times))
        attention_ms.append(1e3 * statistics.median(attention_times))
for length, r, a in zip(lengths, rnn_ms, attention_ms, strict=True):
    print(f"n={length:4d}: RNN {r:7.2f} ms   self-attention {a:6.2f} ms")

# %%
fig, ax = plt.subplots()
ax.loglog(lengths, rnn_ms, "o-", label="RNN: 2n products, in a chain")
ax.loglog(lengths, attention_ms, "s-", label="attention layer: 6 products")
ax.set_xticks(lengths, [str(n) for n in lengths])
ax.minorticks_off()
ax.set_xlabel("sequence length n")
ax.set_ylabel("forward time (ms), batch 16, d = 256")
ax.set_title(f"Time against length, d = {width}")
ax.legend()
plt.show()

# %% [markdown]
# The RNN's time grows in proportion to $n$, one step after another. The attention layer does 2 to 3 times the
# RNN's arithmetic over this range, in six products whatever $n$ is. Which one wins depends on the hardware. On the
# 2 CPU cores that built this page there is little to run in parallel, and the two curves lie close together (on a
# shared machine they also jump from run to run). Where there are many cores to fill, the steps decide: on one H200
# GPU the same cell gave the RNN 1.1 ms at $n = 16$ and 17 ms at $n = 256$, the attention layer 0.27 and 0.42 ms.
# As $n$ grows past $d$, the $n^2 d$ core dominates attention's cost: that is the price in the first column of
# Table 1. Chapter 1 counts and times the same pair, `nn.RNN` against a full attention layer, at the paper's width.
#
# ## 3. Maximum path length: how far a signal has to travel
#
# How much does the output at position $n$ depend on the first input $x_0$? In the RNN the signal from $x_0$ must pass
# through $n$ applications of the recurrence, each a matrix product and a tanh; in self-attention it reaches every
# position in one step. We measure the size of the gradient $\partial y_n / \partial x_0$ for growing $n$, with the
# two layers of section 1.

# %%
L = 64
x = seeded_randn(1, L, d, seed=3, device=device).requires_grad_()


def dependence_on_first(layer) -> list[float]:
    """|∂y_n / ∂x_0| for n = 0 .. L-1: how much y_n moves with x_0."""
    out = layer(x)  # (1, L, d)
    norms = []
    for n in range(L):
        (grad,) = torch.autograd.grad(out[0, n].sum(), x, retain_graph=True)
        norms.append(grad[0, 0].norm().item())
    return norms


sensitivity = {name: dependence_on_first(f) for name, f in layers.items()}

# %% [markdown]
# Plotted on a log scale:

# %%
fig, ax = plt.subplots()
for name, norms in sensitivity.items():
    ax.semilogy(range(1, L), norms[1:], label=name)
ax.set_xlabel("distance n from the first position")
ax.set_ylabel("|∂y_n / ∂x_0|")
ax.set_title("How much position n still depends on position 0")
ax.legend()
plt.show()


def near_and_far(name: str, norms: list[float]) -> tuple[float, float]:
    """Median dependence at distances 1-16 and at the last 16, printed."""
    near, far = statistics.median(norms[1:17]), statistics.median(norms[-16:])
    print(f"{name:14}: {near:.1e} at n = 1-16, {far:.1e} at n = 48-63")
    return near, far


rnn_near, rnn_far = near_and_far("RNN", sensitivity["RNN"])
attention_near, attention_far = near_and_far(
    "self-attention", sensitivity["self-attention"]
)
assert rnn_far / rnn_near < 1e-6  # fades by many orders of magnitude
assert 0.1 < attention_far / attention_near < 10  # about flat

# %% [markdown]
# (Each number is a median over 16 distances, since single positions scatter.) In the RNN, the influence of the
# first word fades exponentially with distance: about ten orders of magnitude between the near and the far
# positions here. The signal is multiplied by the recurrent matrix and squashed by tanh at every step; this is the
# vanishing gradient that made long sentences hard for RNNs. In self-attention the dependence does not fade with
# distance: position $n$ reads $x_0$ directly, through one softmax weight, so the far positions depend on $x_0$
# about as much as the near ones. The curve is jagged because that weight differs from position to position (with
# random projections it is small, one share among 64 positions); training raises it wherever a distant word matters.
#
# The projections matter for the *level* of that curve. Without them ($q = k = v = x$), every query is its own best
# key, since $x \cdot x = |x|^2$ is far larger than $x \cdot y$ for two unrelated random vectors. A control run:

# %%
bare = dependence_on_first(lambda x: scaled_dot_product_attention(x, x, x)[0])
bare_near, bare_far = near_and_far("q = k = v = x", bare)
with torch.no_grad():
    q, k, v = (x.detach() @ w for w in projections[:3])
    _, projected_weights = scaled_dot_product_attention(q, k, v)
    _, bare_weights = scaled_dot_product_attention(x, x, x)
self_projected = projected_weights[0].diagonal().mean().item()
self_bare = bare_weights[0].diagonal().mean().item()
print(
    f"weight a token puts on itself: {self_bare:.2f} with q = k = v = x, "
    f"{self_projected:.2f} with projections"
)
assert self_bare > 0.9 and self_projected < 0.1
assert bare_far < attention_far / 10 and 0.1 < bare_far / bare_near < 10

# %% [markdown]
# Without projections each token keeps almost all of its weight for itself, so every other position's dependence on
# $x_0$ is 25 to 100 times smaller than with them; it is still flat in distance. The direct path is what keeps the
# curve flat;
# learned projections decide how much travels along it.
#
# ## The plan of this book
#
# Chapter 1 starts from the dot product, the operation that replaces recurrence; chapters 2 to 4 build attention,
# masking and multiple heads; chapters 5 and 6 assemble the encoder, the decoder and the whole model; chapter 7
# trains it. Each chapter proves its code equal to PyTorch's own layers where PyTorch has one.

# %% [markdown]
# (intro-figure1)=
# ## The map: the paper's Figure 1
#
# Below is the whole model as the paper's Figure 1 draws it, here drawn by this book's own code from the base
# model's module tree (chapter 6 shows how, and that the drawing changes when the model does). Read it bottom to
# top. On the left, the encoder: token embeddings plus positional encodings, then $N = 6$ identical layers, each a
# multi-head self-attention and a feed-forward network, each wrapped in a residual connection and a LayerNorm
# ("Add & Norm"). On the right, the decoder: the same, with the self-attention masked (chapter 3) and a second
# attention that reads the encoder's output, then a linear layer and a softmax that give each next token's
# probability. Every chapter opens with this map, the parts it builds in colour.

# %% tags=["hide-input"]
from transformer_lite.figure import draw_architecture

_ = draw_architecture()  # the base model: N = 6, h = 8, post-norm

# %% [markdown]
# (exercises)=
# ## Exercises that grade themselves
#
# Each chapter ends with exercises. Some ask for a number you can reason out, some for a small function, and some
# are "break it yourself" ablations: change one thing the paper does, run it, and say what happens. You write your
# answer in the cell below the question and call `check`, which says whether it is right and, when it is not, what
# the mistake looks like. Every exercise has a reference solution in the folded cell after it (click to open),
# which the test suite runs too, together with a record of wrong answers the checker must reject.
#
# The machinery is small: a registry of exercises, each with a grader (it returns `None` for a right answer, or a
# hint), a reference solution, and the wrong answers on record.

# %% tags=["export:exercises", "hide-input"]
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """What `check` says about an answer: right or not, and why."""

    exercise: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = "right" if self.passed else "not yet"
        return f"{self.exercise}: {mark}. {self.message}"


@dataclass(frozen=True)
class Exercise:
    """An exercise: its grader, reference solution and recorded wrong answers.

    ``grade(answer)`` returns ``None`` when the answer is right, else a hint
    that names the mistake. ``wrong`` holds answers the grader must reject,
    each with a word its hint must contain (tests/test_exercises.py).
    """

    name: str
    question: str
    grade: Callable[[Any], str | None]
    solve: Callable[[], Any] | None = None
    wrong: tuple[tuple[Any, str], ...] = ()


EXERCISES: dict[str, Exercise] = {}


def exercise(
    name: str, question: str, wrong: Iterable[tuple[Any, str]] = ()
) -> Callable:
    """Register the decorated function as the grader of exercise ``name``."""

    def register(grade: Callable[[Any], str | None]) -> Callable:
        EXERCISES[name] = Exercise(name, question, grade, wrong=tuple(wrong))
        return grade

    return register


def solution(name: str) -> Callable:
    """Register the decorated function as the reference solution of
    ``name``."""

    def register(solve: Callable[[], Any]) -> Callable:
        if name not in EXERCISES:
            raise KeyError(f"no exercise {name!r} to give a solution to")
        EXERCISES[name] = replace(EXERCISES[name], solve=solve)
        return solve

    return register


def check(name: str, answer: Any) -> Verdict:
    """Grade ``answer`` to exercise ``name`` (e.g. ``"ch2.variance"``)."""
    if name not in EXERCISES:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"no exercise {name!r}; the exercises are: {known}")
    if answer is ... or answer is None:
        return Verdict(name, False, "No answer yet: replace ... with yours.")
    try:
        hint = EXERCISES[name].grade(answer)
    except Exception as error:  # a wrong type or shape is a wrong answer
        kind = type(error).__name__
        hint = f"Your answer could not be graded: {kind}: {error}"
    return Verdict(name, hint is None, hint or "Well done.")


# %% [markdown]
# Here is the first one, on the reader's first question: why does the Transformer parallelise better than an RNN?
#
# **Exercise 0.1** (`"ch0.steps"`). A sentence has $n = 64$ tokens. How many steps, one after another, does one
# RNN layer need to compute all 64 hidden states, and how many does one self-attention layer need (counting the
# whole of a matrix product as one step, since its parts can run at the same time)? Answer with a pair of integers,
# `(rnn_steps, attention_steps)`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch0.steps",
    "sequential steps for 64 tokens: one RNN layer, one attention layer",
    wrong=[((1, 64), "swapped"), ((64, 64), "attention"), ((63, 1), "64")],
)
def _grade_steps(answer: Any) -> str | None:
    rnn, attention = answer
    if (rnn, attention) == (1, 64):
        return "Those are swapped: the RNN is the one that must wait."
    if rnn != 64:
        return (
            "State t needs state t - 1, so an RNN layer takes one step per "
            "token: 64 for 64 tokens."
        )
    if attention != 1:
        return (
            "No position of an attention layer waits for another: every "
            "query's scores come out of one matrix product, one step."
        )
    return None


# %%
answer = ...  # your answer, e.g. (10, 10)
check("ch0.steps", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch0.steps")
def _solve_steps() -> tuple[int, int]:
    n = 64
    return n, 1  # h_t needs h_{t-1}; attention: Q K^T all at once


# %%
check("ch0.steps", EXERCISES["ch0.steps"].solve())

# %% [markdown]
# **Exercise 0.2** (`"ch0.crossover"`). Table 1 puts a self-attention layer at $O(n^2 \cdot d)$ multiply-adds and a
# recurrent layer at $O(n \cdot d^2)$. Take those counts as exact, $n^2 d$ and $n d^2$, at the base model's width
# $d = 512$. For sentences of how many tokens $n$ does self-attention do the same arithmetic as the recurrent layer
# (shorter ones make it cheaper, longer ones dearer)? Answer with an integer. (Section 2 above counts the whole
# attention layer, projections included: $2 + n/d$ times the RNN at every length. The exercise is about Table 1's
# core terms only.)


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch0.crossover",
    "sentence length at which n^2 d equals n d^2, for d = 512",
    wrong=[(22.6, "square root"), (262144, "cancel"), (1, "one n")],
)
def _grade_crossover(answer: Any) -> str | None:
    n = float(answer)
    if abs(n - 512) < 0.5:
        return None
    if abs(n - 512**0.5) < 1:
        return (
            "Not the square root: n^2 d = n d^2 is n = d once one n and one "
            "d cancel from both sides."
        )
    if abs(n - 512**2) < 1:
        return (
            "Cancel one n and one d from n^2 d = n d^2: what is left is "
            "n = d, not n = d^2."
        )
    if n <= 1:
        return (
            "Dividing both sides by n (one n, not both) leaves n d = d^2: "
            "n = d, a whole sentence, not one token."
        )
    return (
        f"At n = {n:g}, n^2 d is {n / 512:.3g} times n d^2. They are equal "
        "where n / d = 1."
    )


# %%
answer = ...  # the length n, an int
check("ch0.crossover", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch0.crossover")
def _solve_crossover() -> int:
    d = 512
    # n^2 d = n d^2  <=>  n = d (divide both sides by n d): attention's core
    # is cheaper than a recurrent layer for every sentence shorter than d,
    # and sentences are usually shorter than d (the paper, §4)
    return next(n for n in range(1, 10 * d) if n * n * d >= n * d * d)


# %%
check("ch0.crossover", EXERCISES["ch0.crossover"].solve())
