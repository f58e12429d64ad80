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
# # 5. The encoder
#
# The encoder (编码器) turns a sentence into one vector per token, each informed by the whole sentence. The paper's
# recipe (§3.1) is short: embed the tokens, add positions, then stack $N = 6$ identical layers, each a self-attention
# sublayer and a feed-forward sublayer, each wrapped as $\mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))$. Every piece
# hides a question this chapter answers with an experiment:
#
# - Why are the embeddings multiplied by $\sqrt{d_{model}}$?
# - How does attention, which ignores order, learn positions, and why sines and cosines?
# - What is LayerNorm, and how is it different from BatchNorm?
# - Where exactly does the LayerNorm go? (The paper puts it after the residual sum; many later models put it
#   before. We build both, and say which is which.)
# - What is a deep copy, and why does the Annotated Transformer (Harvard NLP's line-by-line code for the paper,
#   the code many learners read beside it) build $N$ layers with `copy.deepcopy`?
#
# At the end the encoder layer and the stack are proven equal to PyTorch's `nn.TransformerEncoderLayer` and
# `nn.TransformerEncoder`.

# %% tags=["hide-input"]
from transformer_lite.figure import you_are_here

_ = you_are_here(5)  # Figure 1, this chapter's parts in colour

# %%
import copy
import math
import textwrap
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn

from transformer_lite import MultiHeadAttention, padding_mask
from transformer_lite.exercises import EXERCISES, check, exercise, solution
from transformer_lite.helpers import get_device, seeded_randint, seeded_randn

device = get_device()
plt.rcParams["figure.figsize"] = (5, 3.5)

# %% [markdown]
# ## Token embeddings, and the factor √d_model
#
# An embedding is a lookup table: row $i$ is the learned vector of token id $i$. The paper multiplies it by
# $\sqrt{d_{model}}$ (§3.4), and that is all it says: one sentence, no reason given. The usual explanation, which
# is ours too and not the paper's, is a matter of scale. We initialise the table with entries of standard
# deviation $d_{model}^{-1/2}$, so each token vector has length about 1; that is the scale that suits the *output*
# side, where the same kind of matrix turns vectors back into scores over the vocabulary (chapter 6 can tie the
# two). Multiplying by $\sqrt{d_{model}}$ gives entries of variance 1, the same order as the positional encodings
# added next, whose entries lie in $[-1, 1]$. Without the factor, the position signal would drown the token
# (the cell below measures the variance with and without it).
#
# Token ids outside the vocabulary are refused with a message that names them (an `nn.Embedding` on a GPU would
# fail with an unreadable device-side assert); that check is folded under the class.

# %% tags=["export"]
import math

import torch
from torch import Tensor, nn

from transformer_lite.multi_head import MultiHeadAttention

# Shapes: B batch, S source length, L any length, D d_model, F d_ff.


class TokenEmbedding(nn.Module):
    """A learned vector per token id, multiplied by √d_model (Vaswani et
    al., 2017, §3.4).

    The table is initialised with std d_model^-0.5, so after the factor the
    entries have variance 1, like the positional encodings they are added to.

    Shape:
        tokens (B, L) integer ids in [0, vocab_size). Returns (B, L, D).
    """

    def __init__(
        self, vocab_size: int, d_model: int, padding_idx: int | None = None
    ):
        super().__init__()
        self.vocab_size, self.d_model = vocab_size, d_model
        self.table = nn.Embedding(
            vocab_size, d_model, padding_idx=padding_idx
        )
        nn.init.normal_(self.table.weight, std=d_model**-0.5)

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, L) token ids -> (B, L, D) vectors, scaled by √d_model."""
        _check_token_ids(tokens, self.vocab_size)
        return self.table(tokens) * math.sqrt(self.d_model)  # (B, L, D)


# %% tags=["export", "hide-input"]
def _check_token_ids(tokens: Tensor, vocab_size: int) -> None:
    """Refuse float or bool tensors, and ids outside [0, vocab_size),
    naming up to five of the bad ids."""
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(
            f"tokens must be integer token ids, got dtype {tokens.dtype}"
        )
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        outside = (tokens < 0) | (tokens >= vocab_size)
        bad = tokens[outside].unique()[:5].tolist()
        raise ValueError(
            f"token ids must be in [0, {vocab_size}) for "
            f"vocab_size={vocab_size}, got {bad}"
        )


# %%
torch.manual_seed(0)
embed = TokenEmbedding(vocab_size=1000, d_model=512).to(device)
tokens = seeded_randint(0, 1000, 8, 20, seed=0, device=device)
with torch.no_grad():
    raw = embed.table(tokens)
    scaled = embed(tokens)
print(
    f"table entries: variance {raw.var().item():.5f}",
    f"(= 1/d_model = {1 / 512:.5f})",
)
print(f"× √d_model:    variance {scaled.var().item():.2f}")

# %% [markdown]
# ## Positional encoding
#
# Attention is blind to order: permute the keys and values together and every output is the same sum in another
# order. The model needs to be told where each token is. The paper adds a fixed vector per position (§3.5):
#
# $$PE_{(p, 2i)} = \sin\!\left(p / 10000^{2i/d_{model}}\right), \qquad
# PE_{(p, 2i+1)} = \cos\!\left(p / 10000^{2i/d_{model}}\right).$$
#
# Each pair of features is a clock hand turning at its own speed: the first pairs turn fast (wavelength $2\pi$), the
# last ones very slowly (wavelength $10000 \cdot 2\pi$). The table is computed once, stored as a *buffer* (a tensor
# that moves with the module to the GPU and is not trained), and sliced to the sentence's length.


# %% tags=["export"]
class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position table of Vaswani et al. (2017, §3.5),
    then dropout.

    ``offset`` shifts the positions, for decoding one step at a time: a token
    at position t gets row t of the table.

    Shape:
        x (B, L, D) with offset + L <= max_len. Returns (B, L, D).
    """

    def __init__(
        self, d_model: int, max_len: int = 5000, dropout: float = 0.0
    ):
        super().__init__()
        if d_model % 2:
            raise ValueError(
                f"d_model={d_model} must be even for sine/cosine pairs"
            )
        f64 = torch.float64
        position = torch.arange(max_len, dtype=f64)[:, None]  # (max_len, 1)
        i2 = torch.arange(0, d_model, 2, dtype=f64)  # 2i = 0, 2, 4, ...
        angle = position * 10000.0 ** (-i2 / d_model)  # (max_len, D/2)
        table = torch.zeros(max_len, d_model, dtype=f64)
        table[:, 0::2] = torch.sin(angle)  # even features: sine
        table[:, 1::2] = torch.cos(angle)  # odd features: cosine
        # a buffer: moves with .to(device), is not trained or saved
        self.register_buffer("table", table.float(), persistent=False)
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x (B, L, D) plus the encodings of positions offset..offset+L-1."""
        end = offset + x.size(1)
        if end > self.max_len:
            raise ValueError(
                f"positions up to {end} do not fit the positional table "
                f"(max_len={self.max_len}); build PositionalEncoding "
                "with a larger max_len"
            )
        return self.dropout(x + self.table[offset:end])  # (B, L, D)


# %%
pe = PositionalEncoding(d_model=128, max_len=200).to(device)
table = pe.table.cpu()
fig, ax = plt.subplots()
for feature in [4, 16, 32, 64]:  # sine features, slower and slower
    ax.plot(table[:100, feature], label=f"feature {feature}")
ax.set_xlabel("position p")
ax.set_ylabel("PE(p, feature)")
ax.set_title("Each feature is a wave of its own wavelength")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Low features oscillate quickly, high features slowly: together they give every position a distinct pattern, like
# the digits of a number. The paper chose sinusoids because it "hypothesized it would allow the model to easily learn
# to attend by relative positions" (§3.5): for any fixed offset $k$, $PE_{p+k}$ is a *linear function* of $PE_p$.
# Write $\omega_i = 10000^{-2i/d_{model}}$ for the speed of pair $i$. By the angle-addition formulas,
#
# $$\begin{pmatrix} \sin \omega_i(p+k) \\ \cos \omega_i(p+k) \end{pmatrix}
# = \begin{pmatrix} \cos \omega_i k & \sin \omega_i k \\ -\sin \omega_i k & \cos \omega_i k \end{pmatrix}
# \begin{pmatrix} \sin \omega_i p \\ \cos \omega_i p \end{pmatrix},$$
#
# a rotation of each pair by the angle $\omega_i k$. Put the $d_{model}/2$ little rotations on the diagonal of one
# matrix $R_k$ and $PE_{p+k} = R_k \, PE_p$ for every $p$: the matrix depends on $k$ alone. We build $R_k$ and check
# it on every position of the table:

# %%
d = table.size(1)
speeds = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)


def rotation(k: int) -> torch.Tensor:
    """R_k: a 2×2 rotation by ω_i·k for each (sin, cos) pair."""
    cos, sin = torch.cos(k * speeds), torch.sin(k * speeds)
    r = torch.zeros(d, d, dtype=torch.float64)
    r[0::2, 0::2], r[0::2, 1::2] = torch.diag(cos), torch.diag(sin)
    r[1::2, 0::2], r[1::2, 1::2] = torch.diag(-sin), torch.diag(cos)
    return r.float()  # (D, D), block-diagonal


n = table.size(0)
for k in [1, 3, 50]:
    moved = table[: n - k] @ rotation(k).T  # row p: R_k PE_p
    error = (moved - table[k:]).abs().max().item()
    assert error < 1e-5, error
    print(f"k = {k:2}: |R_k PE_p - PE_(p+k)| < 1e-5 for all {n - k} p")

# %% [markdown]
# That is what "look $k$ positions back" needs. A head's query is a linear map of its input, $q = W_Q x$. Take
# $W_Q = R_k^\top$ (the rotation by $-k$) and keys $k_j = PE_j$: the query at position $p$ is
# $R_k^\top PE_p = PE_{p-k}$, and its score against position $j$ is
# $PE_{p-k} \cdot PE_j = \sum_i \cos(\omega_i (p-k-j))$, largest when $j = p-k$. One fixed matrix, the same for
# every position. We check that its attention lands exactly on $p - k$ for every $p$. The control is the plain dot
# product, $W_Q = I$ (no rotation): every position then attends to itself, never $k$ back.

# %%
k = 3
keys = table  # (n, D): key j is PE_j
positions = torch.arange(k, n)  # every p with a position k back
for name, w_q in [("W_Q = R_k^T", rotation(k).T), ("W_Q = I", torch.eye(d))]:
    queries = table @ w_q.T  # row p: W_Q PE_p
    weights = torch.softmax(queries @ keys.T, dim=-1)[positions]  # (p, j)
    lands = weights.argmax(dim=-1)
    hits = (lands == positions - k).sum().item()
    least = weights.max(dim=-1).values.min().item()
    print(
        f"{name:11}: argmax at p-{k} for {hits}/{len(positions)} positions,"
        f" top weight >= {least:.2f}"
    )
    if name == "W_Q = I":
        assert torch.equal(lands, positions)  # control: itself, not p-k
    else:
        assert torch.equal(lands, positions - k)  # exactly k back, every p

# %% [markdown]
# The rotated query puts its largest weight (at least 0.77 of it, with no training and no temperature) on position
# $p - 3$ at all 197 positions; the unrotated one puts it on $p$ itself at every position. With $R_k$ instead of
# $R_k^\top$ the same query would look $k$ positions *ahead*: the direction lives in the sign of the rotation.
#
# A common picture of the same property is the dot product $PE_p \cdot PE_{p+k} = \sum_i \cos(\omega_i k)$, the
# same for every $p$. Its curves lie on top of each other for four starting positions, but they cannot show
# "back": the cosine is even, so the curve is the same at $+k$ and $-k$ (the `assert` below checks it), and it
# cannot tell "3 ahead" from "3 back". It shows that similarity depends on distance only; the rotation above
# shows the direction too.

# %%
offsets = torch.arange(0, 60)
fig, ax = plt.subplots()
curves = []
for p in [60, 80, 100, 120]:
    curve = table[p + offsets] @ table[p]  # PE(p) · PE(p + k)
    behind = table[p - offsets] @ table[p]  # PE(p) · PE(p - k)
    torch.testing.assert_close(curve, behind, atol=1e-4, rtol=0)
    curves.append(curve)
    ax.plot(offsets, curve, label=f"p = {p}")
ax.set_xlabel("offset k (the same curve for -k)")
ax.set_ylabel("PE(p) · PE(p + k)")
ax.set_title("The dot product depends only on |k|")
ax.legend()
plt.show()
for curve in curves[1:]:
    torch.testing.assert_close(curve, curves[0], atol=1e-4, rtol=0)

# %% [markdown]
# The `assert`s hold the four curves to each other and each curve at $+k$ to itself at $-k$, within $10^{-4}$.
# Sequences longer than the table are refused rather than silently truncated:

# %%
try:
    pe(torch.zeros(1, 201, 128, device=device))
except ValueError as error:
    print(textwrap.fill(f"ValueError: {error}", width=78))

# %% [markdown]
# ## The position-wise feed-forward network
#
# The second sublayer is a small two-layer network, $\mathrm{FFN}(x) = \max(0, xW_1 + b_1)W_2 + b_2$ (§3.3), widening
# to $d_{ff} = 2048$ and back to 512. *Position-wise* means it is applied to each position separately, with the same
# weights: attention mixes information across positions, the feed-forward network processes each position on its
# own.


# %% tags=["export"]
class FeedForward(nn.Module):
    """Position-wise feed-forward network: w_2(dropout(relu(w_1(x)))) (§3.3).

    Shape:
        x (B, L, D). Returns (B, L, D); hidden layer (B, L, F), F = d_ff.
    """

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True
    ):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff, bias=bias)
        self.w_2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, L, D), each position on its own."""
        return self.w_2(self.dropout(torch.relu(self.w_1(x))))  # (B, L, D)


# %%
torch.manual_seed(0)
ff = FeedForward(d_model=16, d_ff=64).to(device)
x = seeded_randn(2, 5, 16, seed=1, device=device)
alone = ff(x[:, 3:4])[:, 0]  # position 3 on its own
torch.testing.assert_close(ff(x)[:, 3], alone)
print("position 3 computed alone gives the same output:")
print("the network never looks across positions")

# %% [markdown]
# (ch5-layernorm)=
# ## LayerNorm is not "BatchNorm by layer"
#
# Both normalise to mean 0 and variance 1, then apply a learned scale $\gamma$ and shift $\beta$. They differ in
# *what* they average over, and that is the whole difference:
#
# - **LayerNorm** normalises each position's feature vector: for every (sentence, position), the mean and variance
#   are taken over its $D$ features.
# - **BatchNorm** normalises each feature across the batch: for every feature, the mean and variance are taken over
#   all sentences and positions in the batch.
#
# We write LayerNorm by hand and compare it with `nn.LayerNorm`, then normalise the same tensor both ways and look at
# which statistics come out as 0 and 1.

# %%
# eight features on very different scales (0.1 to 100), as raw ones often are
scale = torch.logspace(-1, 2, 8, device=device)
x = 3 + scale * seeded_randn(4, 5, 8, seed=2, device=device)  # (B, L, D)
eps = 1e-5


def layer_norm_by_hand(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)  # one mean per position, over D
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return gamma * (x - mean) / torch.sqrt(var + eps) + beta


layer_norm = nn.LayerNorm(8, eps=eps).to(device)
with torch.no_grad():  # γ and β other than 1 and 0: a check that can fail
    layer_norm.weight.copy_(seeded_randn(8, seed=3, device=device))
    layer_norm.bias.copy_(seeded_randn(8, seed=4, device=device))
by_hand = layer_norm_by_hand(x, layer_norm.weight, layer_norm.bias)
torch.testing.assert_close(by_hand, layer_norm(x))
print("LayerNorm by hand == nn.LayerNorm")

# %% [markdown]
# Now the same tensor through both, with no learned scale and shift. `nn.BatchNorm1d` wants the features in
# dimension 1, hence the transposes; in training mode it uses the statistics of the batch it is given.

# %%
batch_norm = nn.BatchNorm1d(8, eps=eps, affine=False).to(device)


def bn_forward(x: torch.Tensor) -> torch.Tensor:
    return batch_norm(x.transpose(1, 2)).transpose(1, 2)  # via (B, D, L)


def ln_forward(x: torch.Tensor) -> torch.Tensor:
    ones = torch.ones(8, device=device)
    return layer_norm_by_hand(x, ones, torch.zeros(8, device=device))


ln, bn = ln_forward(x), bn_forward(x)
bn_by_hand = (x - x.mean(dim=(0, 1))) / torch.sqrt(
    x.var(dim=(0, 1), unbiased=False) + eps
)
torch.testing.assert_close(bn, bn_by_hand)


def spread(t: torch.Tensor, dims: tuple[int, ...]) -> str:
    mean, std = t.mean(dim=dims), t.std(dim=dims, unbiased=False)
    low, high = std.min().item(), std.max().item()
    worst = mean.abs().max().item()
    return f"means within ±{worst:.3f}, stds {low:.2f}…{high:.2f}"


print("LayerNorm, per position (over D):     ", spread(ln, (2,)))
print("LayerNorm, per feature (over B and L):", spread(ln, (0, 1)))
print("BatchNorm, per position (over D):     ", spread(bn, (2,)))
print("BatchNorm, per feature (over B and L):", spread(bn, (0, 1)))

# %% [markdown]
# After LayerNorm, every position has mean 0 and standard deviation 1 across its features, but a single feature
# still varies across the batch. After BatchNorm it is the other way round.
#
# The practical difference: BatchNorm's output for one sentence depends on the *other* sentences in the batch,
# LayerNorm's does not. Keep sentence 0 and replace the three others by new ones:

# %%
others = 3 + scale * seeded_randn(3, 5, 8, seed=8, device=device)
x_new = torch.cat([x[:1], others])  # same sentence 0, new neighbours
bn_moved = (bn_forward(x_new)[0] - bn[0]).abs().max().item()
ln_moved = (ln_forward(x_new)[0] - ln[0]).abs().max().item()
print(f"sentence 0 after BatchNorm moved by {bn_moved:.3f}")
print(f"sentence 0 after LayerNorm moved by {ln_moved:.3f}")
assert bn_moved > 0.1  # BatchNorm: depends on the rest of the batch
assert ln_moved < 1e-6  # LayerNorm: each position on its own

# %% [markdown]
# Sentence 0 is the same tensor both times; only its neighbours changed, and BatchNorm's output for it moved by
# the printed amount while LayerNorm's did not move at all. For a Transformer, LayerNorm is the natural choice: a
# position's normalisation does not depend on which other sentences share the batch, or on how much padding they
# carry, and it works the same at training time and when decoding one token at a time.
#
# ## Residual connections and where the LayerNorm goes
#
# Each sublayer is wrapped in a residual connection: its output is *added* to its input. The paper writes the wrapper
# as $\mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))$ (§3.1): normalise *after* the sum. This is **post-norm**, and it is
# this book's default. Many later models normalise *before* the sublayer instead, $x + \mathrm{Sublayer}(\mathrm{LayerNorm}(x))$:
# **pre-norm**, here `norm_first=True`. In pre-norm the sum itself is never normalised, so the stack must end with one
# final LayerNorm; in post-norm the last layer's output is already normalised and there is none.
#
# The encoder layer holds the two sublayers, each a named method, and applies the wrapper in either order:


# %% tags=["export"]
class EncoderLayer(nn.Module):
    """One encoder layer: self-attention, then feed-forward, each with a
    residual connection, dropout and LayerNorm.

    Post-norm (the paper, the default): x = norm(x + sublayer(x)).
    Pre-norm (``norm_first=True``):      x = x + sublayer(norm(x)).

    Shape:
        x (B, S, D); mask bool, True = may attend, broadcastable to
        (B, H, S, S), e.g. ``padding_mask`` (B, 1, 1, S). Returns (B, S, D).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = False,
        eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(
            d_model, n_heads, dropout=dropout, bias=bias
        )
        self.ff = FeedForward(d_model, d_ff, dropout=dropout, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, S, D), mask broadcastable to (B, H, S, S) -> (B, S, D)."""
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, mask))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.dropout1(self.self_attn(x, x, x, mask=mask))

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.ff(x))

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "EncoderLayer":
        """An EncoderLayer with the weights of ``layer``, giving the same
        outputs (batch first, masks True = may attend)."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(
                "expected nn.TransformerEncoderLayer, "
                f"got {type(layer).__name__}"
            )
        return _from_torch_layer(cls, layer, {"self_attn": "self_attn"})


# %% [markdown]
# `from_torch` copies the weights of a PyTorch layer, for the proof at the end of the chapter; the copying is
# plumbing, folded here (chapter 6's decoder layer uses it too).


# %% tags=["export", "hide-input"]
def _from_torch_layer(
    cls: type, layer: nn.Module, attentions: dict[str, str]
) -> nn.Module:
    """Build ``cls`` (EncoderLayer or DecoderLayer) with the sizes and
    weights of a PyTorch transformer layer: each of our attentions from the
    named PyTorch one, linear1/2 into ff.w_1/w_2, normN into normN; on the
    layer's device, in its dtype and mode."""
    activation = layer.activation
    if activation is not torch.nn.functional.relu and not isinstance(
        activation, nn.ReLU
    ):
        raise ValueError(
            f"only the ReLU activation is supported, got {activation}"
        )
    new = cls(
        layer.self_attn.embed_dim,
        layer.self_attn.num_heads,
        layer.linear1.out_features,
        dropout=layer.dropout.p,
        norm_first=layer.norm_first,
        eps=layer.norm1.eps,
        bias=layer.linear1.bias is not None,
    )
    for ours, theirs in attentions.items():
        attn = MultiHeadAttention.from_torch(getattr(layer, theirs))
        setattr(new, ours, attn)
    with torch.no_grad():
        new.ff.w_1.load_state_dict(layer.linear1.state_dict())
        new.ff.w_2.load_state_dict(layer.linear2.state_dict())
        for name, norm in new.named_children():
            if name.startswith("norm"):
                norm.load_state_dict(getattr(layer, name).state_dict())
    weight = layer.linear1.weight  # keep the layer's device and dtype
    new = new.to(device=weight.device, dtype=weight.dtype)
    return new.train(layer.training)


# %% [markdown]
# Where does the code this reader studies stand? The Annotated Transformer (Harvard NLP's line-by-line
# implementation of the paper: Rush, 2018, revised 2022) quotes the paper's post-norm formula in its text, but its
# `SublayerConnection` puts the norm first, as its docstring admits. Its line, beside ours:
#
# ```python
# # The Annotated Transformer, SublayerConnection.forward: pre-norm
# return x + self.dropout(sublayer(self.norm(x)))
# # this book, EncoderLayer.forward, default norm_first=False: post-norm
# x = self.norm1(x + self._sa_block(x, mask))
# ```
#
# That is why its `Encoder` and `Decoder` end with a final `LayerNorm`: pre-norm needs one. We wire a layer its
# way, with our layer's own weights and norms (its hand-written LayerNorm differs slightly: it divides by the
# unbiased standard deviation plus $\epsilon$), and compare it with our two modes:

# %%
torch.manual_seed(0)
layer = EncoderLayer(16, 2, 32).eval()
x = seeded_randn(2, 5, 16, seed=9)


def sublayer_connection(x, norm, sublayer):  # theirs, without dropout
    return x + sublayer(norm(x))


def annotated_layer(x: torch.Tensor) -> torch.Tensor:
    x = sublayer_connection(
        x, layer.norm1, lambda y: layer.self_attn(y, y, y)
    )
    return sublayer_connection(x, layer.norm2, layer.ff)


with torch.no_grad():
    theirs = annotated_layer(x)
    for norm_first in [True, False]:
        layer.norm_first = norm_first
        gap = (layer(x) - theirs).abs().max().item()
        print(f"norm_first={norm_first!s:5}: max difference {gap:.3f}")
        assert (gap < 1e-5) == norm_first  # equal to pre-norm only

# %% [markdown]
# The Annotated Transformer's layer is our `norm_first=True` layer, and not the paper's post-norm. The two orders
# train differently: pre-norm is usually more stable for deep stacks and large learning rates, post-norm is what
# the paper trained. Code learned from the Annotated Transformer is pre-norm code.
#
# The difference shows in the residual stream: the sum that flows from layer to layer. In post-norm it is
# re-normalised at every layer; in pre-norm it keeps growing, which is why the final LayerNorm is needed. The
# stack of $N$ layers holds both cases:


# %% tags=["export"]
class Encoder(nn.Module):
    """A stack of ``n_layers`` EncoderLayers, each built fresh; in pre-norm
    (``norm_first=True``) the stack ends with a LayerNorm, in post-norm it
    does not.

    Shape:
        x (B, S, D) embedded source; mask as in ``EncoderLayer``.
        Returns (B, S, D).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        n_layers: int,
        dropout: float = 0.0,
        norm_first: bool = False,
        eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        _check_n_layers(n_layers)
        self.layers = nn.ModuleList(
            EncoderLayer(
                d_model, n_heads, d_ff, dropout, norm_first, eps, bias
            )
            for _ in range(n_layers)
        )
        self.norm = (
            nn.LayerNorm(d_model, eps=eps, bias=bias) if norm_first else None
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, S, D) through every layer, then the pre-norm final norm."""
        for layer in self.layers:
            x = layer(x, mask)
        return x if self.norm is None else self.norm(x)

    @classmethod
    def from_torch(cls, encoder: nn.TransformerEncoder) -> "Encoder":
        """An Encoder with the weights of ``encoder``: its layers and its
        final norm."""
        return _encoder_from_torch(cls, encoder)


# %% tags=["export", "hide-input"]
def _check_n_layers(n_layers: object) -> None:
    if (
        isinstance(n_layers, bool)
        or not isinstance(n_layers, int)
        or n_layers < 1
    ):
        raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")


def _encoder_from_torch(cls: type, encoder: nn.Module) -> nn.Module:
    """``Encoder.from_torch``: the layers one by one, then the final norm."""
    if not isinstance(encoder, nn.TransformerEncoder):
        raise TypeError(
            f"expected nn.TransformerEncoder, got {type(encoder).__name__}"
        )
    layers = [EncoderLayer.from_torch(layer) for layer in encoder.layers]
    first = layers[0]
    if (encoder.norm is not None) != first.norm_first:
        raise ValueError(
            "this Encoder ends with a LayerNorm exactly when "
            f"norm_first=True; got norm_first={first.norm_first} "
            f"with norm={encoder.norm}"
        )
    attn, ff = first.self_attn, first.ff
    new = cls(
        attn.d_model,
        attn.n_heads,
        ff.w_1.out_features,
        n_layers=len(layers),
        dropout=ff.dropout.p,
        norm_first=first.norm_first,
        eps=first.norm1.eps,
        bias=ff.w_1.bias is not None,
    )
    new.layers = nn.ModuleList(layers)
    if new.norm is not None:
        new.norm.load_state_dict(encoder.norm.state_dict())
    weight = ff.w_1.weight
    new = new.to(device=weight.device, dtype=weight.dtype)
    return new.train(encoder.training)


# %% [markdown]
# Here is the residual stream through six layers of each kind, at initialisation, for one random batch: its standard
# deviation after each layer, and after the whole stack (final norm included).

# %%
x = seeded_randn(4, 16, 64, seed=5, device=device)
print(f"{'after layer':15}", *(f"{i:>4}" for i in range(1, 7)), "| stack")
for norm_first in [False, True]:
    torch.manual_seed(0)
    encoder = Encoder(64, 4, 256, n_layers=6, norm_first=norm_first)
    encoder = encoder.to(device).eval()
    stream, stds = x, []
    with torch.no_grad():
        for layer in encoder.layers:
            stream = layer(stream)
            stds.append(f"{stream.std().item():4.2f}")
        final = encoder(x).std().item()
    name = "pre-norm " if norm_first else "post-norm"
    print(f"{name:15}", *stds, f"| {final:.2f}")

# %% [markdown]
# Post-norm holds the stream at standard deviation 1 after every layer. Pre-norm lets it grow layer by layer (each
# sublayer adds its output to the sum), and only the final LayerNorm brings the stack's output back to 1.
#
# (ch5-deepcopy)=
# ## Deep copies, and why the Annotated Transformer uses them
#
# The Annotated Transformer builds its six layers by copying one. Its helper `clones(module, N)` is one line:
#
# ```python
# # The Annotated Transformer, clones: N deep copies of one module
# return nn.ModuleList([copy.deepcopy(module) for _ in range(N)])
# # this book, Encoder.__init__: N layers, each built fresh
# self.layers = nn.ModuleList(EncoderLayer(...) for _ in range(n_layers))
# ```
#
# Three ways of "repeating" a module behave very differently:
#
# - `[layer] * N` repeats the *same object*: one set of weights used N times (weights shared);
# - `copy.copy(layer)` is a *shallow* copy: a new module object, but its parameter dictionary is the old one, so the
#   weights are still shared;
# - `copy.deepcopy(layer)` copies everything it reaches, recursively: new parameter tensors with the same values.

# %%
torch.manual_seed(0)
layer = EncoderLayer(16, 2, 32)
repeated = [layer] * 2
shallow = copy.copy(layer)
deep = copy.deepcopy(layer)
first = layer.ff.w_1.weight


rows = []
for name, other in [
    ("[layer] * 2", repeated[1]),
    ("copy.copy", shallow),
    ("copy.deepcopy", deep),
]:
    weight = other.ff.w_1.weight
    shares = weight.data_ptr() == first.data_ptr()  # the same memory?
    rows.append((other is layer, shares, torch.equal(weight, first)))
    print(
        f"{name:13}: same object {other is layer!s:5}, "
        f"shares weights {shares!s:5}, equal values {rows[-1][2]}"
    )
assert rows == [(True, True, True), (False, True, True), (False, False, True)]

# %% [markdown]
# Deep copies are independent, but they **start identical**: six deep copies of one layer are six equal layers. The
# Annotated Transformer then re-initialises every weight matrix of the whole model (Xavier-uniform, in its
# `make_model`), which is what makes the layers differ.
# (Even without that, training would pull them apart, since each layer sees different inputs and so gets different
# gradients; but there is no reason to start from copies.) This package builds each layer fresh instead, so each
# gets its own random initialisation:

# %%
clones = nn.ModuleList(copy.deepcopy(layer) for _ in range(3))
fresh = Encoder(16, 2, 32, n_layers=3).layers
same = [torch.equal(c.ff.w_1.weight, clones[0].ff.w_1.weight) for c in clones]
differ = [torch.equal(f.ff.w_1.weight, fresh[0].ff.w_1.weight) for f in fresh]
print("deepcopy clones equal to the first:", same)
print("fresh layers equal to the first:   ", differ)
assert all(same) and differ == [True, False, False]

# %% [markdown]
# ## The encoder layer in use
#
# A padded batch through one layer, with its padding mask. As in chapter 3, padding must not change the outputs at
# real positions:

# %%
torch.manual_seed(0)
layer = EncoderLayer(d_model=32, n_heads=4, d_ff=64).to(device).eval()
tokens = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]], device=device)
x = seeded_randn(2, 4, 32, seed=6, device=device)
out = layer(x, padding_mask(tokens, 0))
alone = layer(x[1:, :2])  # sentence 1 without its padding
torch.testing.assert_close(out[1, :2], alone[0])
print(
    "output shape",
    tuple(out.shape),
    "| padding changes nothing at the real positions",
)

# %% [markdown]
# ## Proof: equal to `nn.TransformerEncoderLayer` and `nn.TransformerEncoder`
#
# `EncoderLayer.from_torch` copies a PyTorch layer's weights: its `self_attn` through chapter 4's
# `MultiHeadAttention.from_torch`, `linear1`/`linear2` into the feed-forward network, and the two norms. We compare in
# evaluation mode (dropout off), for both norm orders, with a padding mask, and then whole stacks of three layers.
# PyTorch's masks are inverted (True = padding), and we turn off its nested-tensor shortcut, which would return zeros
# at padded positions instead of computing them.

# %%
src = seeded_randn(3, 7, 32, seed=7, device=device)
tokens = torch.tensor(
    [[4, 5, 6, 7, 8, 9, 3], [4, 5, 6, 0, 0, 0, 0], [4, 5, 0, 0, 0, 0, 0]]
)
pad = padding_mask(tokens.to(device), 0)  # ours: (B, 1, 1, S), True = token
key_padding = ~pad[:, 0, 0]  # PyTorch's: (B, S), True = padding

for norm_first in [False, True]:
    torch.manual_seed(1)
    theirs = nn.TransformerEncoderLayer(
        32, 4, 64, dropout=0.1, batch_first=True, norm_first=norm_first
    )
    theirs = theirs.to(device).eval()
    ours = EncoderLayer.from_torch(theirs).eval()
    torch.testing.assert_close(
        ours(src, pad),
        theirs(src, src_key_padding_mask=key_padding),
        atol=1e-5,
        rtol=1e-5,
    )

    final_norm = nn.LayerNorm(32) if norm_first else None
    stack = nn.TransformerEncoder(
        theirs, num_layers=3, norm=final_norm, enable_nested_tensor=False
    )
    stack = stack.to(device).eval()
    with torch.no_grad():  # make the copied layers differ, as training would
        for p in stack.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours_stack = Encoder.from_torch(stack).eval()
    expected = stack(src, src_key_padding_mask=key_padding)
    torch.testing.assert_close(
        ours_stack(src, pad), expected, atol=1e-5, rtol=1e-5
    )
    name = "pre-norm " if norm_first else "post-norm"
    print(f"{name}: layer and 3-layer stack equal to PyTorch's (≤ 1e-5)")

# %% [markdown]
# Both norm orders agree with PyTorch within $10^{-5}$, layer by layer and for the stack, final norm included in
# pre-norm. (Note in passing that `nn.TransformerEncoder` itself builds its layers by deep copy of the layer you give
# it: we perturbed the copies so that the test could not pass by accident with identical layers.)
#
# ## What we built
#
# | name | the idea in one line |
# |---|---|
# | `TokenEmbedding(vocab_size, d_model)` | a vector per token id, × √d_model so its entries have variance 1; bad ids refused |
# | `PositionalEncoding(d_model, max_len, dropout)` | the sine/cosine table as a buffer, added to the embeddings; `offset` for step-by-step decoding |
# | `FeedForward(d_model, d_ff, dropout)` | the position-wise network w_2(relu(w_1 x)) |
# | `EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first)` | self-attention and feed-forward, each residual + LayerNorm, post-norm by default |
# | `Encoder(..., n_layers)` | a stack of fresh layers, with a final LayerNorm in pre-norm only |
# | `EncoderLayer.from_torch`, `Encoder.from_torch` | the same weights as PyTorch's modules, proven equal |
#
# Next, chapter 6 adds the decoder, puts the whole model together, and generates text one token at a time.

# %% [markdown]
# ## Exercises
#
# Three exercises: one writes LayerNorm by hand, one puts BatchNorm in its place, one builds the stack with
# `[layer] * N`. Write your answer in the cell below each question and run it: `check` says whether it is right and,
# when it is not, what the mistake looks like. A reference solution is folded after each one (click to open it).

# %% [markdown]
# (ex-ch5-layernorm)=
# ### Exercise 5.1: LayerNorm by hand
#
# Write `layer_norm(x)` for a $(B, L, D)$ tensor without `nn.LayerNorm` or `F.layer_norm`: it returns what
# `nn.LayerNorm(D)` computes as it is built, with $\gamma = 1$, $\beta = 0$ and $\epsilon = 10^{-5}$. First decide
# over which dimension(s) of `x` the mean and the variance are taken. Answer with the function itself and check it
# with `"ch5.layernorm"`; the checker calls it on batches whose features have very different scales and compares
# with `nn.LayerNorm` (within $10^{-4}$).


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch5.layernorm",
    "layer_norm(x): nn.LayerNorm(D) at initialisation, by hand, (B, L, D)",
    wrong=[
        (
            lambda x: (
                (x - x.mean(0)) / (x.var(0, unbiased=False) + 1e-5) ** 0.5
            ),
            "batch",
        ),
        (
            lambda x: (
                (x - x.mean((0, 1)))
                / (x.var((0, 1), unbiased=False) + 1e-5) ** 0.5
            ),
            "batch",
        ),
        (
            lambda x: (
                (x - x.mean(1, keepdim=True))
                / (x.var(1, keepdim=True, unbiased=False) + 1e-5) ** 0.5
            ),
            "positions",
        ),
        (
            lambda x: (
                (x - x.mean(-1, keepdim=True))
                / (x.std(-1, keepdim=True) + 1e-5)
            ),
            "unbiased",
        ),
    ],
)
def _grade_layernorm(answer: Any) -> str | None:
    import torch
    import torch.nn.functional as F

    from transformer_lite.helpers import seeded_randn

    if not callable(answer):
        return "Answer with a function, e.g. def layer_norm(x): ..."

    def normalise(x: torch.Tensor, dims: Any, unbiased: bool = False):
        mean = x.mean(dims, keepdim=True)
        var = x.var(dims, keepdim=True, unbiased=unbiased)
        return (x - mean) / (var + 1e-5) ** 0.5

    readings = [  # (dims, unbiased, what that normalises)
        ((0,), False, "batch"),
        ((0, 1), False, "batchnorm"),
        ((1,), False, "positions"),
        ((1, 2), False, "sentence"),
        ((0, 1, 2), False, "everything"),
        ((2,), True, "unbiased"),
    ]
    hints = {
        "batch": (
            "You normalise each (position, feature) across the batch: the "
            "mean over dimension 0 averages one feature over the sentences "
            "of the batch. That is close to BatchNorm's reading (which "
            "averages over the positions too), and it makes a sentence's "
            "output depend on its "
            "neighbours. LayerNorm takes one (sentence, position) at a time "
            "and averages over its D features, the last dimension."
        ),
        "batchnorm": (
            "You normalise each feature over the batch and the positions: "
            "that is exactly BatchNorm (nn.BatchNorm1d in training mode), "
            "not LayerNorm. LayerNorm takes one (sentence, position) at a "
            "time and averages over its D features, the last dimension."
        ),
        "positions": (
            "You normalise each feature over the positions of a sentence, "
            "dimension 1: then a word's output depends on the sentence "
            "length and on the other words. LayerNorm averages over the D "
            "features of one position, the last dimension."
        ),
        "sentence": (
            "You take one mean over a whole sentence, positions and "
            "features together. LayerNorm takes one per position: over "
            "the D features only, the last dimension."
        ),
        "everything": (
            "You take one mean and one variance over the whole tensor. "
            "LayerNorm takes one per (sentence, position): over the D "
            "features, the last dimension."
        ),
        "unbiased": (
            "The right dimension, but the unbiased variance (dividing by "
            "D - 1, torch's default for var and std). nn.LayerNorm divides "
            "by D: var(..., unbiased=False), ε inside the square root. "
            "(The Annotated Transformer's LayerNorm uses the unbiased std, "
            "plus ε: close, but not nn.LayerNorm.)"
        ),
    }
    scale = torch.logspace(-1, 2, 8)  # features on scales 0.1 to 100
    inputs = [
        3 + scale * seeded_randn(4, 5, 8, seed=2),  # (B, L, D)
        1 + 2 * seeded_randn(2, 3, 6, seed=3),
    ]
    for x in inputs:
        out = answer(x.clone())
        if not isinstance(out, torch.Tensor):
            return f"layer_norm gave a {type(out).__name__}, not a tensor."
        out = out.detach().cpu()
        if tuple(out.shape) != tuple(x.shape):
            return (
                f"For x of shape {tuple(x.shape)} your output has shape "
                f"{tuple(out.shape)}: keep x's shape (keepdim=True)."
            )
        right = F.layer_norm(x, x.shape[-1:], eps=1e-5)
        if torch.allclose(out, right, atol=1e-4, rtol=1e-4):
            continue
        for dims, unbiased, name in readings:
            guess = normalise(x, dims, unbiased)
            if torch.allclose(out, guess, atol=1e-4, rtol=1e-4):
                return hints[name]
        mean = out.mean(-1).abs().max().item()
        std = out.std(-1, unbiased=False)
        return (
            "After LayerNorm every position has mean 0 and standard "
            "deviation 1 over its features; your output's means over the "
            f"last dimension reach {mean:.3f} and its standard deviations "
            f"run from {std.min().item():.3f} to {std.max().item():.3f}."
        )
    return None


# %%
def layer_norm(
    x: torch.Tensor,
) -> torch.Tensor: ...  # your code: (B, L, D) -> (B, L, D), normalised


answer = ...  # your function, layer_norm, once it returns the result
check("ch5.layernorm", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch5.layernorm")
def _solve_layernorm() -> Any:
    import torch

    def layer_norm(x: torch.Tensor) -> torch.Tensor:
        # one mean and one variance per (sentence, position), over its D
        # features: the last dimension. Over dimension 0, the batch, would
        # be BatchNorm's reading, which mixes the sentences of a batch.
        mean = x.mean(dim=-1, keepdim=True)  # (B, L, 1)
        # nn.LayerNorm divides by D, not D - 1: the biased variance
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (B, L, 1)
        return (x - mean) / torch.sqrt(var + 1e-5)

    return layer_norm


# %%
check("ch5.layernorm", EXERCISES["ch5.layernorm"].solve())

# %% [markdown]
# (ex-ch5-batchnorm)=
# ### Exercise 5.2: break it yourself, BatchNorm in place of LayerNorm
#
# The chapter checked that padding changes nothing at the real positions of a sentence. Run that check again in
# training mode (the layer as it is built; its dropout is 0, so the outputs are not random), then break the layer:
# swap both its LayerNorms for BatchNorms over the batch and the positions (the marked line; `BatchNormBSD` below
# only moves the features to where `nn.BatchNorm1d` wants them). The weights of attention and feed-forward stay the
# same. By how much do sentence 1's two real outputs move when the sentence is run alone, without its padding and
# without sentence 0, as the largest absolute difference? Answer with a pair of numbers,
# `(with_layernorm, with_batchnorm)`, within 0.02, and check it with `"ch5.batchnorm"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch5.batchnorm",
    "how far padding moves sentence 1's outputs: LayerNorm, BatchNorm",
    wrong=[
        ((2.3009, 0.0), "swapped"),
        ((0.0, 0.0), "running"),
        ((0.0, 7.3487), "largest"),
    ],
)
def _grade_batchnorm(answer: Any) -> str | None:
    layer_norm, batch_norm = (float(n) for n in answer)
    expected = 2.3009  # _solve_batchnorm's BatchNorm, rounded
    if abs(layer_norm - expected) <= 0.02 and abs(batch_norm) <= 1e-3:
        return "Those are swapped: BatchNorm is the one that moves."
    if abs(layer_norm) > 1e-3:
        return (
            "With LayerNorm nothing moves (up to rounding, about 1e-6): "
            "each position is normalised over its own features, and the "
            "padding mask keeps the pads out of attention. Run the cell as "
            "it is, before the marked line."
        )
    if abs(batch_norm) <= 1e-3:
        return (
            "BatchNorm moved nothing: either the marked line did not run, "
            "or the layer was in eval mode. In eval mode BatchNorm uses "
            "its running statistics, fixed numbers that ignore the batch. "
            "In training mode, as here, it uses the batch's own mean and "
            "variance per feature, over every position: the pads and "
            "sentence 0 included."
        )
    if abs(batch_norm - 7.3487) <= 0.02:
        return (
            "That is the norm of the difference. Give the largest absolute "
            "difference, (out[1, :2] - alone[0]).abs().max()."
        )
    if abs(batch_norm - expected) > 0.02:
        return (
            "Swap both norms, norm1 and norm2, and compare out[1, :2] with "
            "alone[0]: the largest absolute difference, in training mode."
        )
    return None


# %%
class BatchNormBSD(nn.Module):
    """nn.BatchNorm1d for (B, S, D): each feature over batch and positions."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)  # via (B, D, S)


torch.manual_seed(0)
layer = EncoderLayer(d_model=32, n_heads=4, d_ff=64)  # in training mode
# break it: layer.norm1, layer.norm2 = BatchNormBSD(32), BatchNormBSD(32)
tokens = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]])
x = seeded_randn(2, 4, 32, seed=6)
with torch.no_grad():
    out = layer(x, padding_mask(tokens, 0))
    alone = layer(x[1:, :2])  # sentence 1 alone, without its padding
moved = (out[1, :2] - alone[0]).abs().max().item()
answer = ...  # (with_layernorm, with_batchnorm), e.g. (1.0, 1.0)
check("ch5.batchnorm", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch5.batchnorm")
def _solve_batchnorm() -> tuple[float, float]:
    import torch
    from torch import nn

    from transformer_lite.encoder import EncoderLayer
    from transformer_lite.helpers import seeded_randn
    from transformer_lite.masks import padding_mask

    class BatchNormBSD(nn.Module):
        def __init__(self, d_model: int):
            super().__init__()
            self.norm = nn.BatchNorm1d(d_model)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(x.transpose(1, 2)).transpose(1, 2)

    tokens = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]])
    x = seeded_randn(2, 4, 32, seed=6)

    def moved(batch_norm: bool) -> float:
        torch.manual_seed(0)  # the same weights with either norm
        layer = EncoderLayer(d_model=32, n_heads=4, d_ff=64)  # training
        if batch_norm:
            layer.norm1, layer.norm2 = BatchNormBSD(32), BatchNormBSD(32)
        with torch.no_grad():
            out = layer(x, padding_mask(tokens, 0))
            alone = layer(x[1:, :2])
        return (out[1, :2] - alone[0]).abs().max().item()

    # LayerNorm: each position over its own features, and the mask keeps
    # the pads out of attention: nothing moves (about 1e-6, rounding).
    # BatchNorm in training mode: each feature's mean and variance come
    # from every position in the batch, the pads and sentence 0 included,
    # so sentence 1's outputs change with its company (about 2.3).
    return moved(False), moved(True)


# %%
check("ch5.batchnorm", EXERCISES["ch5.batchnorm"].solve())

# %% [markdown]
# (ex-ch5-clones)=
# ### Exercise 5.3: break it yourself, `[layer] * N`
#
# The cell below builds a six-layer `Encoder` ($d_{model} = 16$, 2 heads, $d_{ff} = 32$), each layer built fresh.
# Count its parameters as an optimiser sees them, `sum(p.numel() for p in encoder.parameters())`. Then break it:
# make the stack one layer repeated, as `[layer] * N` builds it (the marked line), and count again. The stack still
# has six entries and runs six layers deep. Answer with a pair of ints, `(fresh, repeated)`, and check it with
# `"ch5.clones"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch5.clones",
    "parameters of a 6-layer Encoder: fresh layers, then [layer] * 6",
    wrong=[
        ((13344, 13344), "same object"),
        ((2224, 2224), "fresh"),
        ((2224, 13344), "swapped"),
    ],
)
def _grade_clones(answer: Any) -> str | None:
    fresh, repeated = (float(n) for n in answer)
    # EncoderLayer(16, 2, 32): attention 4 x (16 x 16 + 16) = 1088,
    # feed-forward (16 x 32 + 32) + (32 x 16 + 16) = 1072, norms 2 x 32
    per_layer = 2224
    if (fresh, repeated) == (per_layer, 6 * per_layer):
        return "Those are swapped: the repeated stack is the smaller one."
    if fresh != 6 * per_layer:
        if fresh == per_layer:
            return (
                "Encoder builds each layer fresh: six layers, each with its "
                "own 2,224 weights and biases. Count before the marked line."
            )
        return (
            "Count the cell as it is, before the marked line: "
            "sum(p.numel() for p in encoder.parameters())."
        )
    if repeated != per_layer:
        if repeated == fresh:
            return (
                "The repeated stack has six entries, and state_dict() lists "
                "six sets of names, but [layer] * 6 holds the same object "
                "six times: one set of weights, shared by all six places, "
                "so a gradient step on one changes all six. parameters() "
                "yields each shared tensor once: count with it."
            )
        return (
            "After the marked line the six entries are one layer: count "
            "with sum(p.numel() for p in encoder.parameters())."
        )
    return None


# %%
torch.manual_seed(0)
encoder = Encoder(16, 2, 32, n_layers=6)  # six layers, each built fresh
# break it: encoder.layers = nn.ModuleList([encoder.layers[0]] * 6)
# your code: sum(p.numel() for p in encoder.parameters()), before the
# marked line and after it
answer = ...  # (fresh, repeated), e.g. (1, 1)
check("ch5.clones", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch5.clones")
def _solve_clones() -> tuple[int, int]:
    import torch
    from torch import nn

    from transformer_lite.encoder import Encoder

    torch.manual_seed(0)
    encoder = Encoder(16, 2, 32, n_layers=6)

    def count() -> int:
        # parameters() yields each tensor once, however many names it has
        return sum(p.numel() for p in encoder.parameters())

    fresh = count()  # six layers, six sets of weights: 6 x 2,224
    encoder.layers = nn.ModuleList([encoder.layers[0]] * 6)
    # the same object six times: one set of weights used six times, 2,224
    # (state_dict() would still list six sets of names)
    return fresh, count()


# %%
check("ch5.clones", EXERCISES["ch5.clones"].solve())
