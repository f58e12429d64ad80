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
# # 1. Why a dot product can measure relevance
#
# You have the paper's formula, $\mathrm{Attention}(Q, K, V) = \mathrm{softmax}(QK^\top/\sqrt{d_k})\,V$, and a
# reasonable first guess at why it works: with one-hot vectors, $[1,0,0]\cdot[1,0,0] = 1$ and
# $[1,0,0]\cdot[0,1,0] = 0$, so a dot product says "same word" or "different word". This chapter starts from that
# guess and asks the questions it leaves open:
#
# - Why can a dot product say how *relevant* one word is to another, not just whether they are the same?
# - What does the softmax do, and what is $V$ for, if $K$ already describes each word?
# - Why does the matrix form $\mathrm{softmax}(QK^\top)V$ let a Transformer run in parallel where an RNN cannot?
# - Where does the Transformer's attention (注意力) sit between *soft* and *hard*, *global* and *local* attention?
#
# Every answer is an experiment you can run. We leave out the $1/\sqrt{d_k}$ on purpose: chapter 2 is about it.
#
# ## Setting up
#
# Helpers that every chapter uses. `get_device` picks a GPU when there is one. `seeded_randn` (and `seeded_randint`
# for integers) draws random numbers on the CPU from a seeded generator and only then moves them, so the same seed
# gives the same numbers on every machine, and the outputs printed in this book are the same on a laptop and on a
# GPU.
#
# Cells marked `export` (see the notebook's cell tags) become the module `transformer_lite/dot_product.py`.

# %% tags=["hide-input"]
from transformer_lite.figure import you_are_here

_ = you_are_here(1)  # Figure 1, this chapter's parts in colour

# %% tags=["export:helpers"]
import time
from collections.abc import Callable

import torch
from torch import Tensor


def get_device() -> torch.device:
    """The device to compute on: the first CUDA GPU if any, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seeded_randn(
    *shape: int,
    seed: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard-normal numbers that do not depend on the device.

    They are drawn on the CPU from a generator seeded with ``seed``, then
    moved to ``device``, so a seed gives the same numbers on every machine.

    Shape:
        ``shape``, e.g. ``seeded_randn(2, 5, 8, seed=0)`` is (2, 5, 8).
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype).to(device)


def seeded_randint(
    low: int,
    high: int,
    *shape: int,
    seed: int,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random integers in [low, high), e.g. token ids, drawn like
    ``seeded_randn``: on the CPU from a generator seeded with ``seed``, then
    moved to ``device``.

    Shape:
        ``shape``, e.g. ``seeded_randint(3, 40, 2, 6, seed=0)`` is (2, 6).
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, shape, generator=generator).to(device)


# %%
import statistics
from typing import Any

import matplotlib.pyplot as plt
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from transformer_lite.exercises import EXERCISES, check, exercise, solution

device = get_device()
torch.manual_seed(0)
plt.rcParams["figure.figsize"] = (5, 3.5)

# %% [markdown]
# (ch1-one-hot)=
# ## One-hot vectors only know "same" or "different"
#
# Give each word of a three-word vocabulary its own one-hot vector and take every dot product at once: row $i$,
# column $j$ of $XX^\top$ is $x_i \cdot x_j$.

# %%
vocab = ["cat", "kitten", "mat"]
one_hot = torch.eye(len(vocab), device=device)
scores = one_hot @ one_hot.T
assert torch.equal(scores, torch.eye(3, device=device))
print(
    {
        f"{a}·{b}": scores[i, j].item()
        for i, a in enumerate(vocab)
        for j, b in enumerate(vocab)
        if i < j
    }
)

# %% [markdown]
# Your reasoning is right as far as it goes: a one-hot vector matches itself with score 1 and everything else with
# score 0. But that is the problem. "cat" is exactly as unrelated to "kitten" as it is to "mat", because one-hot
# vectors are all at right angles to each other. A score that can only say "same word" cannot say "related word".
#
# ## Dense vectors can be partly alike
#
# A model does not use one-hot vectors: it learns a dense vector per word (an *embedding*), and words that behave
# alike end up pointing in similar directions. We will see real learned vectors in chapter 7; here we write a few by
# hand, with four readable features, so that the numbers are easy to follow.

# %%
features = ["animal", "young", "furniture", "action"]
embedding = {
    "the": [0.0, 0.0, 0.0, 0.0],
    "cat": [1.0, 0.2, 0.0, 0.0],
    "kitten": [0.9, 1.0, 0.0, 0.0],
    "sat": [0.0, 0.0, 0.1, 1.0],
    "on": [0.0, 0.0, 0.2, 0.0],
    "mat": [0.0, 0.0, 1.0, 0.1],
}
E = {
    word: torch.tensor(vector, device=device)
    for word, vector in embedding.items()
}


def dot(a: str, b: str) -> float:
    return round((E[a] @ E[b]).item(), 3)


print(
    "cat·kitten =",
    dot("cat", "kitten"),
    "  cat·mat =",
    dot("cat", "mat"),
    "  sat·mat =",
    dot("sat", "mat"),
)
assert dot("cat", "kitten") > 0 and dot("cat", "mat") == 0

# %% [markdown]
# Now "cat" and "kitten" share the *animal* feature, so their dot product is large; "cat" and "mat" share nothing,
# so theirs is 0. The dot product adds up, feature by feature, how much two vectors agree:
# $a \cdot b = \sum_i a_i b_i$. Big when both are big on the same features, zero when their features do not overlap,
# negative when they disagree in sign.
#
# Here is a whole sentence. Row $i$ of the score matrix says how strongly word $i$ matches every word $j$:


# %% tags=["export:helpers", "hide-input"]
def plot_attention(
    weights: Tensor,
    query_tokens: list[str],
    key_tokens: list[str],
    title: str = "",
    ax=None,
    annotate: bool = True,
    cmap: str = "viridis",
):
    """Draw a score or weight matrix as a heatmap: queries down, keys across.

    Shape:
        weights: (Lq, Lk), on any device; Lq ``query_tokens``, Lk
        ``key_tokens``.
    """
    # imported here, so that the package does not need matplotlib
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plot_attention needs matplotlib: "
            'pip install "transformer_lite[plot]"'
        ) from None

    weights = weights.detach().float().cpu().numpy()
    if weights.shape != (len(query_tokens), len(key_tokens)):
        raise ValueError(
            f"weights of shape {tuple(weights.shape)} do not fit "
            f"{len(query_tokens)} query tokens and "
            f"{len(key_tokens)} key tokens"
        )
    if ax is None:
        _, ax = plt.subplots()
    image = ax.imshow(weights, cmap=cmap)
    ax.set_xticks(range(len(key_tokens)), key_tokens, rotation=45, ha="right")
    ax.set_yticks(range(len(query_tokens)), query_tokens)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    if annotate:
        middle = (weights.max() + weights.min()) / 2
        for i in range(weights.shape[0]):
            for j in range(weights.shape[1]):
                value = weights[i, j]
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if value > middle else "white",
                )
    ax.figure.colorbar(image, ax=ax)
    return ax


# %%
sentence = ["the", "cat", "sat", "on", "the", "mat"]
X = torch.stack([E[word] for word in sentence])  # (L, 4): one row per word
scores = X @ X.T  # (L, L): every dot product at once
plot_attention(
    scores, sentence, sentence, title="Scores x_i · x_j for one sentence"
)
plt.show()

# %% [markdown]
# Two things in this picture are not what attention wants yet.
#
# 1. **It is symmetric, and the diagonal is the brightest entry in most rows.** "sat" matches itself best and
#    ignores "cat". But "sat" needs to find *who* sat: it should look for an animal, not for another verb.
# 2. **"the" scores 0 with everything**, because its hand-made vector is all zeros. Nothing to match is a fine
#    outcome for a word with no content; below, the softmax turns it into "spread evenly".
#
# (ch1-queries-keys)=
# ## Queries and keys: what I look for, and what I offer
#
# The Transformer does not compare the words' vectors directly. It projects each vector twice: into a **query**
# $q = xW_Q$ ("what am I looking for?") and a **key** $k = xW_K$ ("what do I offer to those who look?"). The score is
# $q_i \cdot k_j$. With two different matrices, the score no longer has to be symmetric.
#
# To see that this is enough to make "sat" look for its subject, we write a $W_Q$ by hand that sends the *action*
# feature to the *animal* feature (a verb asks "which animal?"), and keep $W_K$ the identity. Training finds such
# matrices by itself; in the paper, $W_Q$ and $W_K$ are learned per head (§3.2.2).

# %%
animal, furniture, action = (
    features.index(f) for f in ["animal", "furniture", "action"]
)
W_q = torch.zeros(4, 4, device=device)
W_q[action, animal] = 2.0  # a verb looks for an animal
W_q[animal, furniture] = 1.0  # an animal looks for where it is
W_k = torch.eye(4, device=device)
Q, K = X @ W_q, X @ W_k
scores = Q @ K.T  # (L, L): score of query i against key j
plot_attention(
    scores, sentence, sentence, title="Scores q_i · k_j with W_Q ≠ W_K"
)
plt.show()
assert sentence[scores[sentence.index("sat")].argmax()] == "cat"
assert not torch.allclose(scores, scores.T)

# %% [markdown]
# Now the row for "sat" peaks at "cat", and "cat" looks at "mat": relevance is no longer "same word" but "the word I
# need". This is the whole answer to *why a dot product can measure relevance*: the dot product measures agreement
# between two vectors, and learned projections decide what should agree with what.
#
# ## Dot product or cosine? Length matters
#
# The cosine similarity $\cos(a, b) = \frac{a\cdot b}{|a|\,|b|}$ compares only directions. The dot product
# $a \cdot b = |a|\,|b|\cos(a, b)$ also grows with the vectors' lengths. Double a key and its score with every
# query doubles, while its cosine does not move:

# %%
cat, kitten = E["cat"], E["kitten"]
for name, key in [("cat", cat), ("2·cat", 2 * cat)]:
    cosine = F.cosine_similarity(kitten, key, dim=0).item()
    print(
        f"kitten·{name:5} = {(kitten @ key).item():.3f}   "
        f"cos(kitten, {name:5}) = {cosine:.3f}"
    )

# %% [markdown]
# This matters because the scores go through a softmax next (below), and the softmax is sensitive to how far apart
# the scores are. Longer queries or keys spread the scores further apart and make the attention *sharper*. The dot
# product lets a model say "match, and I am sure" by making vectors longer; a cosine could not. It is also why
# chapter 2 has to control the size of the scores when vectors get long.
#
# ## Softmax turns scores into weights
#
# Scores can be any real numbers. To mix the words' information we want weights that are positive and sum to 1:
# $\mathrm{softmax}(s)_j = e^{s_j} / \sum_{j'} e^{s_{j'}}$. We write it out, with one trick: subtracting the row's
# maximum first changes nothing mathematically (it cancels between numerator and denominator) but keeps
# $e^{s}$ from overflowing.


# %% tags=["export"]
from torch import Tensor


def softmax(scores: Tensor, dim: int = -1) -> Tensor:
    """Turn scores into positive weights that sum to 1 along ``dim``.

    softmax(s)_j = exp(s_j) / sum_j' exp(s_j').

    The maximum is subtracted first: the result is the same, and ``exp``
    cannot overflow. A row whose scores are all -inf (a query with nothing
    it may attend to, chapter 3) gets all-zero weights, not NaN, as in
    ``F.scaled_dot_product_attention``.

    Shape:
        scores: any shape; the output has the same shape.
    """
    peak = scores.amax(dim=dim, keepdim=True)
    # a row of all -inf: shift by 0 instead
    peak = peak.masked_fill(peak == float("-inf"), 0.0)
    exp = (scores - peak).exp()
    total = exp.sum(dim=dim, keepdim=True)  # >= 1 unless all scores are -inf
    return exp / total.masked_fill(total == 0, 1.0)


# %%
s = seeded_randn(4, 6, seed=1, device=device)
torch.testing.assert_close(softmax(s), torch.softmax(s, dim=-1))
torch.testing.assert_close(softmax(s).sum(-1), torch.ones(4, device=device))

big = torch.tensor([1000.0, 999.0, 0.0], device=device)
naive = big.exp() / big.exp().sum()
print("naive :", [round(w, 4) for w in naive.tolist()])
print("ours  :", [round(w, 4) for w in softmax(big).tolist()])
assert naive.isnan().any()  # the naive formula overflows
torch.testing.assert_close(softmax(big), torch.softmax(big, dim=-1))

# %% [markdown]
# The naive formula gives `nan` (infinity over infinity); the shifted one gives the right answer, the same as
# `torch.softmax`. (The function has one more guard, for a row of scores that are all $-\infty$; chapter 3 needs it
# and explains it.) Back to lengths: multiply the query of "sat" by 1, 2 and 4, and watch the largest weight grow.
# The control scores with cosines instead of dot products.

# %%
sat_query = Q[sentence.index("sat")]
top_weights = {"dot product": [], "cosine": []}
for scale in [1, 2, 4]:
    by_dot = softmax(scale * sat_query @ K.T)
    by_cosine = softmax(F.cosine_similarity(scale * sat_query, K, dim=-1))
    top_weights["dot product"].append(by_dot.max().item())
    top_weights["cosine"].append(by_cosine.max().item())
    print(
        f"query × {scale}: largest weight {by_dot.max().item():.3f} "
        f"on '{sentence[by_dot.argmax()]}'; "
        f"with cosines {by_cosine.max().item():.3f}"
    )
dot_top, cosine_top = top_weights["dot product"], top_weights["cosine"]
assert dot_top[0] < dot_top[1] < dot_top[2]  # longer query, sharper
assert max(cosine_top) - min(cosine_top) < 1e-6  # the control: no change

# %% [markdown]
# (ch1-values)=
# ## The output is a weighted sum of values. What is $V$ for?
#
# Each word also gets a third projection, its **value** $v = xW_V$. The output for query $i$ is
# $\sum_j w_{ij} v_j$: the values, mixed in the proportions the weights say. Keys decide *how much* of each word
# comes through; values decide *what* comes through.
#
# Why not use the key for both? Because "how to find me" and "what I pass on" are different jobs. Take your sketch
# of three words and store it as a small memory: each word's vector says *where* it is (a one-hot position, three
# features) and *what* it is (a one-hot word from a five-word vocabulary). A query asks "which word is at position
# $p$?". The key keeps only the position part, which is what the query must match; the value keeps only the word
# part, which is the answer.

# %%
vocab = ["I", "you", "love", "tea", "coffee"]


def memory(words: list[str]) -> Tensor:
    """One row per word: [one-hot position (3) | one-hot word (5)]."""
    where = torch.eye(len(words))
    what = torch.eye(len(vocab))[[vocab.index(w) for w in words]]
    return torch.cat([where, what], dim=1).to(device)  # (L, 8)


W_K = torch.eye(8, device=device)[:, :3]  # (8, Dk=3): keys keep "where"
W_V = torch.eye(8, device=device)[:, 3:]  # (8, Dv=5): values keep "what"
queries = 10 * torch.eye(3, device=device)  # row p: "what is at p?"

# %% [markdown]
# We read two different memories with the same three queries. With separate values, the output is a word vector,
# and its largest entry names the word. The control sets $V = K$: the same weights, mixing the keys instead.

# %%
answers, weights, outputs_v_is_k = [], [], []
for words in [["I", "love", "tea"], ["you", "love", "coffee"]]:
    K, V = memory(words) @ W_K, memory(words) @ W_V  # (3, 3), (3, 5)
    w = softmax(queries @ K.T)  # (3, 3): the weights
    out, out_v_is_k = w @ V, w @ K  # (3, 5) words; control (3, 3)
    answers.append([vocab[i] for i in out.argmax(-1).tolist()])
    weights.append(w)
    outputs_v_is_k.append(out_v_is_k)
    print(f"stored {' '.join(words):15} read with V: {' '.join(answers[-1])}")
    row = [round(a, 3) for a in out_v_is_k[2].tolist()]
    print(f"{'':22}V = K, position 2: {row}")
assert answers == [["I", "love", "tea"], ["you", "love", "coffee"]]
torch.testing.assert_close(weights[0], weights[1])  # same keys, same weights
torch.testing.assert_close(outputs_v_is_k[0], outputs_v_is_k[1])  # V = K

# %% [markdown]
# With values, every query reads the word stored at its position, in both memories: the output follows what is
# stored, while the weights are the same for both (they never see $V$, and the keys, positions, did not change).
# With $V = K$ the output is the key of the position asked for, $[0, 0, 1]$ for position 2, whether "tea" or
# "coffee" is stored there. It answers *where*, which the query already knew; the two memories give identical
# outputs, so no read-out of them can say which word is stored. With $V = K$ a word can pass on only what it is
# found by. Putting everything in the key is no way out: then everything a word passes on would also take part
# in the matching. A separate $W_V$ lets each projection do one job; the paper learns both, per head
# (§3.2.2), and $V$ may even have a different width from $K$ (here 5 against 3): $d_v$ and $d_k$.
#
# ## All queries at once: $\mathrm{softmax}(QK^\top)V$
#
# Written for one query at a time, attention is a loop over positions. Stacking the queries into $Q$, keys into
# $K$ and values into $V$ turns the loop into two matrix products. Here is that function, with the shapes it accepts:
# any number of leading batch dimensions, and a query length that may differ from the key length.


# %% tags=["export"]
def check_qkv(query: Tensor, key: Tensor, value: Tensor) -> None:
    """Raise a ValueError naming the sizes if query, key and value do not
    fit together.

    Shape:
        query (..., Lq, Dk), key (..., Lk, Dk), value (..., Lk, Dv).
    """
    for name, tensor in [("query", query), ("key", key), ("value", value)]:
        if tensor.dim() < 2:
            raise ValueError(
                f"{name} needs at least 2 dimensions (length, features), "
                f"got shape {tuple(tensor.shape)}"
            )
    if query.size(-1) != key.size(-1):
        raise ValueError(
            "query and key must have the same last dimension d_k, "
            f"got {query.size(-1)} and {key.size(-1)}"
        )
    if key.size(-2) != value.size(-2):
        raise ValueError(
            "key and value must have the same length Lk, "
            f"got {key.size(-2)} keys and {value.size(-2)} values"
        )


def dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor
) -> tuple[Tensor, Tensor]:
    """Unscaled dot-product attention, softmax(Q Kᵀ) V, for every query at
    once.

    Chapter 2's ``scaled_dot_product_attention`` adds the paper's 1/√d_k
    factor; this is the version without it, for learning.

    Shape:
        query (..., Lq, Dk), key (..., Lk, Dk), value (..., Lk, Dv), where
        ... is any number of batch dimensions that broadcast. Returns output
        (..., Lq, Dv) and weights (..., Lq, Lk).
    """
    check_qkv(query, key, value)
    scores = query @ key.transpose(-2, -1)  # (..., Lq, Lk)
    weights = softmax(scores, dim=-1)  # (..., Lq, Lk), each row sums to 1
    return weights @ value, weights  # (..., Lq, Dv)


# %% [markdown]
# The loop it replaces, one query at a time, gives the same numbers:


# %%
def attention_one_query_at_a_time(
    query: Tensor, key: Tensor, value: Tensor
) -> Tensor:
    outputs = []
    for t in range(query.size(0)):  # one position after another
        weights = softmax(key @ query[t])  # (Lk,)
        outputs.append(weights @ value)  # (Dv,)
    return torch.stack(outputs)


L, d = 512, 64
x = seeded_randn(L, d, seed=6, device=device) / d**0.5  # (L, d)
loop_out = attention_one_query_at_a_time(x, x, x)
matrix_out, matrix_weights = dot_product_attention(x, x, x)
torch.testing.assert_close(loop_out, matrix_out)
print("loop and matrix form agree; weights:", tuple(matrix_weights.shape))


# %% [markdown]
# To time two pieces of code fairly on a busy machine, run them in turns (first, second, then second, first, ...) so
# a slow moment hits both alike, and compare medians: one call that stalls does not move a median. `time_calls`
# does that,
# and it waits for the GPU around each call, because GPU work runs after Python returns. It is exported: the
# introduction and the benchmarks (`python -m benchmarks`, see the Performance appendix) time everything with it.


# %% tags=["export:helpers"]
def time_calls(
    *fns: Callable[[], object], repeats: int = 5, warmup: int = 1
) -> list[list[float]]:
    """Wall-clock seconds of each ``fn()``, ``repeats`` times each, after
    ``warmup`` calls.

    The functions take turns, in alternating order (f, g, then g, f, ...),
    so a slow moment of the machine falls on all of them alike and none
    always runs after another. A GPU is synchronised before and after every
    call.

    Returns one list of ``repeats`` times per function, in the order given.
    """
    if not fns:
        raise ValueError("time_calls needs at least one function to time")
    if (
        isinstance(repeats, bool)
        or not isinstance(repeats, int)
        or repeats < 1
    ):
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")

    def sync() -> None:
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()

    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeats):
        turns = list(zip(fns, times, strict=True))
        for fn, record in turns if round_ % 2 == 0 else reversed(turns):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            record.append(time.perf_counter() - start)
    return times


# %% tags=["nbval-ignore-output"]
loop_times, matrix_times = time_calls(
    lambda: attention_one_query_at_a_time(x, x, x),
    lambda: dot_product_attention(x, x, x),
)
loop_s, matrix_s = (
    statistics.median(loop_times),
    statistics.median(matrix_times),
)
print(f"L={L}: loop over positions {loop_s * 1e3:.1f} ms")
print(f"{'':6} matrix form {matrix_s * 1e3:.2f} ms")
print(f"{'':6} the loop takes {loop_s / matrix_s:.1f} times as long")

# %% [markdown]
# The numbers are the same. On a machine that is not busy with other work the matrix form is many times faster (your
# machine prints its own timing above; a busy one narrows the gap, since both then wait for the cores). The loop
# was never *necessary*: no position's output depends on another position's output, so all of them can be computed
# at once, and a matrix product is exactly the operation that hardware runs in parallel.
#
# (ch1-rnn)=
# ## Why an RNN cannot do the same
#
# An RNN computes $h_t = \tanh(W x_t + U h_{t-1})$. The state at step $t$ needs the state at step $t-1$, which needs
# step $t-2$, and so on: $L$ steps that must run one after another, however many cores you have. Attention has no
# such chain. A small experiment shows the difference without any clock: compute position 300's output *alone*.

# %%
t = 300
# query t by itself, against all keys: it needs nothing from the outputs
# of positions 0 .. 299
alone, _ = dot_product_attention(x[t : t + 1], x, x)
torch.testing.assert_close(alone[0], matrix_out[t])

rnn = nn.RNN(d, d, batch_first=True).to(device)
with torch.no_grad():
    states, _ = rnn(x.unsqueeze(0))  # (1, L, d): h_0 ... h_{L-1}, in order
    restarted, _ = rnn(x[t:].unsqueeze(0))  # start at t without h_{t-1}
gap = (restarted[0, 0] - states[0, t]).abs().max().item()
assert gap > 0.1
print(f"attention at t={t}, computed alone: identical")
print(f"RNN state at t={t}, without h_(t-1): off by more than 0.1")

# %% [markdown]
# Attention's output at position 300 comes out identical when computed on its own. The RNN's state does not: it
# cannot be had without first running the 300 steps before it. The paper's Table 1 puts this as *sequential
# operations*: $O(n)$ for a recurrent layer, $O(1)$ for self-attention.
#
# What does that cost? A fair comparison needs two whole layers. `nn.RNN` has two $d \times d$ matrices, one for
# the input and one for the state. A self-attention layer has four: the projections $W_Q, W_K, W_V$ that make
# queries, keys and values from the same input, and $W_O$ after the weighted sum (chapter 4 builds this layer with
# several heads; the arithmetic is the same). Here it is with one head, around the function above:


# %%
class AttentionLayer(nn.Module):
    """One self-attention layer: project, attend, project back."""

    def __init__(self, d_model: int):
        super().__init__()
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:  # x (B, L, D)
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)  # (B, L, D) each
        out, _ = dot_product_attention(q, k, v)  # (B, L, D)
        return self.w_o(out)


d_model = 512
wide_rnn = nn.RNN(d_model, d_model, batch_first=True)
attention_layer = AttentionLayer(d_model)

# %% [markdown]
# First the arithmetic, counted by PyTorch's `FlopCounterMode` (it counts the matrix products; a multiply-add is
# two FLOPs). We count on the CPU, where `nn.RNN` runs as plain matrix products; on a GPU it is a single cuDNN call
# that the counter cannot see into, and the arithmetic is the same. Per sequence, the RNN does $2Ld^2$
# multiply-adds. The attention layer does $4Ld^2$ in its projections
# and $2L^2d$ in its core, $QK^\top$ and the weighted sum. The paper's Table 1 lists only the core's
# $O(L^2 \cdot d)$ for self-attention: the projections' $O(L \cdot d^2)$ is of the same order as the whole
# recurrent layer.


# %%
def multiply_adds(layer: nn.Module, x: Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        layer(x)
    return counter.get_total_flops() // 2


lengths = [16, 64, 256, 512, 1024]
print("    L   RNN (M)   attention layer (M)   of it the core   ratio")
for length in lengths:
    x1 = seeded_randn(1, length, d_model, seed=length)  # on the CPU
    r, a = multiply_adds(wide_rnn, x1), multiply_adds(attention_layer, x1)
    core = 2 * length**2 * d_model
    print(
        f"{length:5d} {r / 1e6:9.0f} {a / 1e6:21.0f} {core / 1e6:16.0f}"
        f" {a / r:7.2f}"
    )
    assert r == 2 * length * d_model**2
    assert a == 4 * length * d_model**2 + core  # 2 + L/d times the RNN's

# %% [markdown]
# So the attention layer never does less arithmetic than the RNN: $2 + L/d$ times as much, from 2.03 at $L = 16$
# to 4 at $L = 1024$. Below $L = d$ it is the projections that make most of it, above $L = d$ the core. (Counting the
# core alone, as Table 1 does, attention would be the cheaper one while $L < d$.) What attention saves is steps: the
# RNN runs $L$ of them in a row, the attention layer four (the three input projections side by side, then
# $QK^\top$, the weighted sum and $W_O$), whatever $L$ is.
#
# Now the clock: both layers on a batch of 16 sequences, in turns with `time_calls`. The timings are this machine's
# and change from run to run (the tests do not check them); the counts above do not.

# %% tags=["nbval-ignore-output"]
wide_rnn.to(device), attention_layer.to(device)
rnn_ms, attention_ms = [], []
with torch.no_grad():
    for length in lengths:
        batch = (
            seeded_randn(16, length, d_model, seed=length, device=device)
            / d_model**0.5
        )
        rnn_times, attention_times = time_calls(
            lambda: wide_rnn(batch), lambda: attention_layer(batch)
        )
        rnn_ms.append(1e3 * statistics.median(rnn_times))
        attention_ms.append(1e3 * statistics.median(attention_times))
for length, r, a in zip(lengths, rnn_ms, attention_ms, strict=True):
    print(
        f"L={length:5d}: nn.RNN {r:8.2f} ms   attention layer {a:8.2f} ms"
        f"   RNN / attention {r / a:5.1f}"
    )

# %%
fig, ax = plt.subplots()
ax.loglog(lengths, rnn_ms, "o-", label="nn.RNN: L steps in a row")
ax.loglog(lengths, attention_ms, "s-", label="attention layer: 4 steps")
ax.axvline(d_model, color="gray", linestyle=":", label="L = d")
ax.set_xlabel("sequence length L")
ax.set_ylabel("forward time (ms), batch 16")
ax.set_title(f"Time against length, d = {d_model}")
ax.legend()
plt.show()

# %% [markdown]
# The counts hold on any machine; what the clock makes of them depends on the hardware. The RNN's time grows in
# proportion to $L$: $L$ steps, each waiting for the one before, each a product of only 16 rows. The attention
# layer's time follows its arithmetic, done in a few large products: roughly like $L$ while the projections
# dominate, then like $L^2$ past $L = d$.
#
# On the 2 CPU cores that built this page, fewer steps do not pay for more arithmetic: a product of 16 rows by a
# $512 \times 512$ matrix already keeps two cores busy, so the RNN loses little by waiting, and in a quiet run the
# attention layer is the slower one from $L = 64$ on (the run stored above shows it; timings on a shared machine
# also jump from run to run, as its first row may). Parallel hardware turns this round. On one H200 GPU (the same
# cell, measured while writing this page) the attention layer took as long as the RNN at $L = 16$ (0.34 against
# 0.36 ms) and was 6 to 8 times faster from $L = 256$ to $1024$ (1.8 against 11.2 ms at $L = 1024$), although it
# did 2.5 to 4 times the arithmetic: the GPU runs its large products at once, while the RNN's steps still wait for
# one another. The ratio falls again at $L = 1024$, where the $L^2$ core takes over: that is the price in the first
# column of Table 1. Sentences are usually much shorter than 512 tokens, the case the paper designed for, and
# training on GPUs is where the steps count: the paper trains its base model in 12 hours on 8 GPUs (§5.2). The
# length of a sentence stops being a length of time.
#
# (ch1-soft-hard)=
# ## Soft or hard? Global or local?
#
# *Hard* attention picks one position (an argmax) and copies its value. *Soft* attention takes a softmax-weighted
# average of all of them (Xu et al., 2015 named the pair). The difference that matters for training is the
# gradient. Take one query's scores, make them require gradients, and backpropagate through both:

# %%
# one query against 6 keys (on the CPU: tiny)
scores = seeded_randn(6, seed=7).requires_grad_()
values = seeded_randn(6, 3, seed=8)

soft_out = softmax(scores) @ values
soft_out.sum().backward()
print(
    "soft: gradient reaching the scores:",
    [round(g, 3) for g in scores.grad.tolist()],
)

hard_weights = F.one_hot(scores.argmax(), num_classes=6).float()
hard_out = hard_weights @ values
print(
    "hard: does the output depend on the scores for autograd?",
    hard_out.requires_grad,
)
assert scores.grad.abs().sum() > 0 and not hard_out.requires_grad

# %% [markdown]
# With soft attention every score gets a gradient: the model learns which keys to trust. With hard attention the
# argmax cuts the graph: there is no gradient at all, because nudging a score a little does not change which one is
# largest. The picture makes the same point: move one score and watch the output.

# %%
nudges = torch.linspace(-3, 3, 121)
soft_curve, hard_curve = [], []
with torch.no_grad():
    for nudge in nudges:
        moved = scores.detach().clone()
        moved[0] += nudge
        soft_curve.append((softmax(moved) @ values)[0].item())
        hard_curve.append(
            (F.one_hot(moved.argmax(), 6).float() @ values)[0].item()
        )
fig, ax = plt.subplots()
ax.plot(nudges, soft_curve, label="soft (softmax)")
ax.plot(nudges, hard_curve, label="hard (argmax)", linestyle="--")
ax.set_xlabel("change added to the score of key 0")
ax.set_ylabel("first feature of the output")
ax.set_title("Soft attention is smooth, hard attention jumps")
ax.legend()
plt.show()

# %% [markdown]
# The soft curve is smooth, so its slope (the gradient) tells the model which way to move. The hard curve is flat,
# then jumps: its slope is zero almost everywhere, and undefined at the jump. Hard attention can only be trained with
# other tricks (sampling and reinforcement learning); soft attention trains with plain backpropagation.
#
# *Global* and *local* (Luong et al., 2015) is a different axis: does a query score every position, or only a
# window around one? The Transformer's attention is **soft and global**: every query scores every key, and the
# output mixes all the values. The only thing that narrows it is a mask (掩码), which removes keys a query must not
# see, such as the future in the decoder. That is chapter 3.
#
# ## What we built
#
# | name | the idea in one line |
# |---|---|
# | `get_device()` | compute on the GPU when there is one, else the CPU |
# | `seeded_randn(*shape, seed=, device=)` | random numbers that are the same on every device: drawn on the CPU, then moved |
# | `seeded_randint(low, high, *shape, seed=, device=)` | the same for random integers, such as token ids |
# | `softmax(scores, dim=-1)` | scores to positive weights that sum to 1, shifted by the maximum so it never overflows |
# | `check_qkv(query, key, value)` | a clear error when query, key and value cannot be attended together |
# | `dot_product_attention(query, key, value)` | softmax(QKᵀ)V for all queries at once; returns output and weights |
# | `plot_attention(weights, query_tokens, key_tokens)` | a score or weight matrix as a labelled heatmap |
# | `time_calls(*fns, repeats=5, warmup=1)` | wall times of several functions, run in turns, waiting for the GPU |
#
# Next: chapter 2 asks what happens to these scores when the vectors have 512 features instead of 4, and why the
# paper divides by $\sqrt{d_k}$.

# %% [markdown]
# ## Exercises
#
# Three exercises on this chapter's two questions: why a dot product can measure relevance, and what $V$ is for.
# Write your answer in the cell below each question and run it: `check` says whether it is right and, when it is
# not, what the mistake looks like. A reference solution is folded after each one (click to open it).

# %% [markdown]
# (ex-ch1-puppy)=
# ### Exercise 1.1: a vector for "puppy"
#
# Your one-hot reasoning, carried one word further: give "puppy" a one-hot vector of its own, and it scores 0
# with "kitten", exactly as with "mat" ({ref}`as above <ch1-one-hot>`). Write instead a vector for "puppy" with the
# chapter's four features (animal, young, furniture, action) such that, by dot product with the chapter's
# `embedding`, puppy is most relevant to "kitten", next to "cat", and less to each of "the", "sat", "on" and "mat".
# Answer with four numbers, e.g. `[0.0, 0.0, 0.0, 0.0]`, and check them with `"ch1.puppy"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch1.puppy",
    "a 4-feature vector for 'puppy': kitten most relevant, then cat",
    wrong=[
        ([0.0, 0.0, 0.0, 0.0, 1.0], "one-hot"),
        ([1.0, 0.0, 0.0, 0.0], "young"),
        ([0.0, 0.0, 0.0, 0.0], "zero"),
    ],
)
def _grade_puppy(answer: Any) -> str | None:
    import torch

    features = ["animal", "young", "furniture", "action"]
    embedding = {  # chapter 1's hand-made vectors
        "the": [0.0, 0.0, 0.0, 0.0],
        "cat": [1.0, 0.2, 0.0, 0.0],
        "kitten": [0.9, 1.0, 0.0, 0.0],
        "sat": [0.0, 0.0, 0.1, 1.0],
        "on": [0.0, 0.0, 0.2, 0.0],
        "mat": [0.0, 0.0, 1.0, 0.1],
    }
    puppy = torch.as_tensor(answer, dtype=torch.float64).flatten()
    zeros_and_ones = bool(((puppy == 0) | (puppy == 1)).all())
    if puppy.numel() > 4 and zeros_and_ones and puppy.sum() == 1:
        return (
            "A one-hot vector with a feature of its own is at right angles "
            "to every other word: puppy would score 0 with kitten, exactly "
            "as with mat. Use the four features it shares with them."
        )
    if puppy.numel() != 4:
        return f"Give 4 numbers, one per feature {features}."
    if not puppy.any():
        return (
            'A zero vector scores 0 with every word, as "the" does in the '
            "chapter: all words tie, none is more relevant than another."
        )
    scores = {
        word: (puppy @ torch.tensor(vector, dtype=torch.float64)).item()
        for word, vector in embedding.items()
    }
    ranked = sorted(scores, key=scores.get, reverse=True)
    shown = ", ".join(f"{word} {scores[word]:.2f}" for word in ranked)
    rest = [scores[w] for w in ["the", "sat", "on", "mat"]]
    if scores["kitten"] <= max(rest + [scores["cat"]]):
        if scores["cat"] >= scores["kitten"] and scores["cat"] > max(rest):
            return (
                f"Your puppy scores {shown}: cat ties with or beats kitten, "
                "because cat has more of the animal feature (1.0 against "
                "0.9). What kitten has and cat lacks is the young feature, "
                "and a puppy is young too."
            )
        if scores["kitten"] < 0:
            return (
                f"Your puppy scores {shown}: kitten scores below 0, so "
                "puppy disagrees with kitten in sign. Kitten's animal and "
                "young features are positive: give puppy positive ones."
            )
        rival = max((w for w in scores if w != "kitten"), key=scores.get)
        return (
            f"Your puppy scores {shown}: puppy shares as much with {rival} "
            "as with kitten, or more. Kitten is an animal and young: put "
            "puppy's weight on those two features."
        )
    if scores["cat"] <= max(rest):
        return (
            f"Your puppy scores {shown}: kitten first, but cat is not "
            "second. Cat is above all an animal: give puppy the animal "
            "feature, and nothing that sat, on or mat have."
        )
    return None


# %%
answer = ...  # four numbers: animal, young, furniture, action
check("ch1.puppy", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch1.puppy")
def _solve_puppy() -> list[float]:
    # A puppy is an animal and young. Kitten has both features, so it agrees
    # with puppy on both (0.9 + 1.0 = 1.9); cat is an animal and only a
    # little young (1.0 + 0.2 = 1.2); the, sat, on and mat share neither (0).
    animal, young, furniture, action = 1.0, 1.0, 0.0, 0.0
    return [animal, young, furniture, action]


# %%
check("ch1.puppy", EXERCISES["ch1.puppy"].solve())

# %% [markdown]
# (ex-ch1-length)=
# ### Exercise 1.2: break it yourself, a key twice as long
#
# The query is "kitten"; the keys are "cat", "kitten" and "mat", from the chapter's embedding. As it stands, kitten
# gives its own key the largest weight (score 1.81, against 1.1 for cat). Break it: double the key of "cat" (the
# marked line below), then weight the three keys twice, with the softmax of the dot products and with the softmax
# of the cosines. Which key gets the largest weight by dot product, and which by cosine? Answer with a pair of
# words, `(by_dot, by_cosine)`, and check it with `"ch1.length"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch1.length",
    "query kitten, cat's key doubled: which key wins by dot, by cosine",
    wrong=[
        (("kitten", "kitten"), "length"),
        (("cat", "cat"), "cosine"),
        (("kitten", "cat"), "swapped"),
        ((1, 0), "words"),
    ],
)
def _grade_length(answer: Any) -> str | None:
    if not all(isinstance(word, str) for word in answer):
        return 'Answer with two words, such as ("mat", "mat").'
    by_dot, by_cosine = (word.strip(" '\"").lower() for word in answer)
    if (by_dot, by_cosine) == ("kitten", "cat"):
        return (
            "Those are swapped: the dot product is the one that grows with "
            "a key's length; the cosine divides the lengths out."
        )
    if by_dot != "cat":
        return (
            "Doubling a key doubles its dot product with every query: "
            "kitten·(2 cat) = 2.2 is more than kitten·kitten = 1.81. The "
            "raw dot product rewards length, so the longer key of cat wins, "
            "although kitten points in the query's direction exactly."
        )
    if by_cosine != "kitten":
        return (
            "The cosine divides by both lengths, so doubling a key does not "
            "move it: cos(kitten, 2 cat) stays 0.80, while kitten matches "
            "itself with cosine 1."
        )
    return None


# %%
words = ["cat", "kitten", "mat"]
query = E["kitten"]  # (4,)
keys = torch.stack([E[word] for word in words])  # (3, 4): one row per key
keys[0] = 2 * keys[0]  # break it: the key of "cat", twice as long
# your code: the weights by dot product, then by cosine
answer = ...  # a pair of words, e.g. ("mat", "mat")
check("ch1.length", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch1.length")
def _solve_length() -> tuple[str, str]:
    import torch
    import torch.nn.functional as F

    from transformer_lite.dot_product import softmax

    words = ["cat", "kitten", "mat"]
    query = torch.tensor([0.9, 1.0, 0.0, 0.0])  # kitten
    keys = torch.tensor(
        [[1.0, 0.2, 0.0, 0.0], [0.9, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.1]]
    )
    keys[0] = 2 * keys[0]  # cat, twice as long
    # the dot product grows with the length: 2 × 1.1 = 2.2 > 1.81
    by_dot = softmax(keys @ query)
    # the cosine does not: cat stays at 0.80, kitten at 1
    by_cosine = softmax(F.cosine_similarity(query, keys, dim=-1))
    return words[by_dot.argmax()], words[by_cosine.argmax()]


# %%
check("ch1.length", EXERCISES["ch1.length"].solve())

# %% [markdown]
# (ex-ch1-values)=
# ### Exercise 1.3: break it yourself, V = K
#
# Take the key-value memory of {ref}`the section on values <ch1-values>` and store, one after another, every
# sentence of three words from its five-word vocabulary: $5^3 = 125$ sentences. Ask each the three queries "which
# word is at position $p$?", read each answer as `vocab[out.argmax()]`, and count it right when it names the word
# stored there. The accuracy is the fraction of the 375 answers that are right. The code below counts them with
# the chapter's values. Then break it: on the marked line, use $V = K$. Answer with the pair
# `(accuracy_with_V, accuracy_with_V_is_K)`, as fractions between 0 and 1, and check it with `"ch1.values"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch1.values",
    "retrieval accuracy of the key-value memory with V, and with V = K",
    wrong=[
        ((1.0, 1.0), "where"),
        ((1.0, 0.0), "chance"),
        ((1.0, 1 / 3), "five"),
        ((100, 20), "fraction"),
        ((0.2, 1.0), "swapped"),
    ],
)
def _grade_values(answer: Any) -> str | None:
    with_v, v_is_k = (float(accuracy) for accuracy in answer)
    if max(with_v, v_is_k) > 1:
        return "Give each accuracy as a fraction from 0 to 1 (0.5, not 50)."
    if abs(with_v - 0.2) <= 0.01 and abs(v_is_k - 1) <= 0.01:
        return "Those are swapped: it is V = K that fails, not V."
    if abs(with_v - 1) > 0.01:
        return (
            "With separate values every query reads the word stored at its "
            "position, in every sentence: all 375 answers are right."
        )
    if abs(v_is_k - 1) <= 0.01:
        return (
            "With V = K the weights do not change, but the output mixes the "
            "keys, and a key says only where a word is, not what it is: the "
            "output for position p is the same whatever is stored there."
        )
    if v_is_k < 0.1:
        return (
            "V = K cannot say what is stored, but the read-out still names "
            "a word: the same one for position p in every sentence. It is "
            "right whenever that word happens to be stored there, in 25 of "
            "the 125 sentences: not 0, but chance."
        )
    if abs(v_is_k - 0.2) > 0.01:
        return (
            "With V = K the output for position p is the same in all 125 "
            "sentences, so any read-out names one word for all of them; "
            "each word is stored at p in 25. Chance is one in five, the "
            "size of the vocabulary, not one in three positions."
        )
    return None


# %%
from itertools import product

sentences = [list(s) for s in product(vocab, repeat=3)]  # 125 of them
right = 0
for stored in sentences:
    K, V = memory(stored) @ W_K, memory(stored) @ W_V  # break it: V = K
    out = softmax(queries @ K.T) @ V  # (3, Dv): one answer per position
    read = [vocab[i] for i in out.argmax(-1).tolist()]
    right += sum(r == w for r, w in zip(read, stored, strict=True))
# the accuracy is right / (3 * len(sentences))
answer = ...  # (accuracy with V, accuracy with V = K)
check("ch1.values", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch1.values")
def _solve_values() -> tuple[float, float]:
    from itertools import product

    import torch

    from transformer_lite.dot_product import softmax

    vocab = ["I", "you", "love", "tea", "coffee"]

    def memory(words: tuple[str, ...]) -> torch.Tensor:
        where = torch.eye(3)  # one-hot position
        what = torch.eye(5)[[vocab.index(w) for w in words]]  # one-hot word
        return torch.cat([where, what], dim=1)  # (3, 8)

    w_k, w_v = torch.eye(8)[:, :3], torch.eye(8)[:, 3:]
    queries = 10 * torch.eye(3)  # row p: "which word is at p?"

    def accuracy(v_is_k: bool) -> float:
        right = 0
        sentences = list(product(vocab, repeat=3))
        for stored in sentences:
            k = memory(stored) @ w_k
            # V = K: the output is a mix of positions, whatever is stored
            v = k if v_is_k else memory(stored) @ w_v
            out = softmax(queries @ k.T) @ v
            read = [vocab[i] for i in out.argmax(-1).tolist()]
            right += sum(r == w for r, w in zip(read, stored, strict=True))
        return right / (3 * len(sentences))

    # with V: 1.0; with V = K the read-out of position p is always
    # vocab[p], right in the 1 sentence in 5 that stores it there
    return accuracy(v_is_k=False), accuracy(v_is_k=True)


# %%
check("ch1.values", EXERCISES["ch1.values"].solve())
