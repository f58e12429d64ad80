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
# # 6. The decoder and the whole model
#
# The decoder (解码器) writes the output sentence one token at a time, each new token conditioned on the source
# sentence (through the encoder) and on the tokens it has written so far. This chapter builds it, puts the whole
# encoder–decoder together, and then answers the reader's question about it:
#
# > *The decoder is auto-regressive, consuming its own previous outputs: isn't that just an RNN again?*
#
# Partly yes, and the difference is the point: **training** runs the whole target in one parallel pass (the causal
# mask of chapter 3 makes that legal), and only **generation** goes step by step. Even then there is no recurrent
# state squeezed into one vector: each step attends directly to everything before it. We make generation fast with
# a key/value cache, check that it changes no number, and build greedy and beam-search decoding on top.

# %% tags=["hide-input"]
from transformer_lite.figure import you_are_here

_ = you_are_here(6)  # Figure 1, this chapter's parts in colour

# %%
import statistics
import textwrap
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn

from transformer_lite import causal_mask, padding_mask
from transformer_lite.exercises import EXERCISES, check, exercise, solution
from transformer_lite.helpers import (
    get_device,
    seeded_randint,
    seeded_randn,
    time_calls,
)

device = get_device()
plt.rcParams["figure.figsize"] = (5, 3.5)

# %% [markdown]
# ## The decoder layer: three sublayers
#
# A decoder layer has the encoder layer's two sublayers and one more in between (§3.1):
#
# 1. **masked self-attention** over the target positions, with the causal mask: position $t$ sees positions
#    $0 \ldots t$ of what has been written (this is the "Masked Multi-Head Attention" box of Figure 1);
# 2. **cross-attention**: queries from the decoder, keys and values from the encoder's output (the *memory*), with
#    the source padding mask. This is where the translation reads the source sentence;
# 3. the position-wise **feed-forward** network.
#
# Each is wrapped like in the encoder: post-norm $\mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))$ by default,
# pre-norm with `norm_first=True`. We write the layer in two pieces. First the parts it holds, named as PyTorch's
# `nn.TransformerDecoderLayer` names them (so that `from_torch` can copy weights across):

# %% tags=["export"]
import dataclasses
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer_lite.encoder import (
    Encoder,
    FeedForward,
    PositionalEncoding,
    TokenEmbedding,
    _from_torch_layer,
)
from transformer_lite.masks import causal_mask, padding_mask
from transformer_lite.multi_head import MultiHeadAttention

# Shapes: B batch, S source length, T target length, D d_model,
# V target vocabulary, H heads, P positions already in the cache.


class _DecoderLayerParts(nn.Module):
    """The sublayers, norms and dropouts of a DecoderLayer."""

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
        mha = {"dropout": dropout, "bias": bias}
        self.self_attn = MultiHeadAttention(d_model, n_heads, **mha)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, **mha)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)


# %% [markdown]
# Then what it does with them: the three sublayers as named methods, `_sa_block`, `_ca_block`, `_ff_block`, each
# wrapped in its residual connection and LayerNorm, in either order. The `cache` argument is for generation and
# is explained just below; without it, each block is one call of chapter 4's `MultiHeadAttention` or chapter 5's
# `FeedForward`.


# %% tags=["export"]
class DecoderLayer(_DecoderLayerParts):
    """One decoder layer: masked self-attention, cross-attention over the
    encoder memory, feed-forward; each with a residual connection, dropout
    and LayerNorm (post-norm by default, pre-norm with ``norm_first=True``).

    Shape:
        x (B, T, D), memory (B, S, D); tgt_mask broadcastable to
        (B, H, T, T), e.g. ``causal_mask(T) & padding_mask(tgt, pad)``;
        memory_mask to (B, H, T, S), e.g. ``padding_mask(src, pad)``.
        Returns (B, T, D).
    """

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        cache: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Returns (B, T, D); with a ``cache``, x holds only new positions."""
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, cache)
            x = x + self._ca_block(self.norm2(x), memory, memory_mask, cache)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, cache))
            x = self.norm2(x + self._ca_block(x, memory, memory_mask, cache))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, mask: Tensor | None, cache) -> Tensor:
        if cache is None:
            return self.dropout1(self.self_attn(x, x, x, mask=mask))
        return self.dropout1(_cached_self_attention(self.self_attn, x, cache))

    def _ca_block(self, x: Tensor, memory: Tensor, mask, cache) -> Tensor:
        attn = self.cross_attn
        if cache is None:
            return self.dropout2(attn(x, memory, memory, mask=mask))
        out = _cached_cross_attention(attn, x, memory, mask, cache)
        return self.dropout2(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout3(self.ff(x))

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> "DecoderLayer":
        """A DecoderLayer with the weights of ``layer``, giving the same
        outputs (batch first, masks True = may attend)."""
        if not isinstance(layer, nn.TransformerDecoderLayer):
            raise TypeError(
                "expected nn.TransformerDecoderLayer, "
                f"got {type(layer).__name__}"
            )
        attentions = {
            "self_attn": "self_attn",
            "cross_attn": "multihead_attn",
        }
        return _from_torch_layer(cls, layer, attentions)


# %% [markdown]
# For generation the layer takes a **cache**: a dict where it keeps the keys and values it projected at earlier
# steps. Then `x` holds only the newest position(s): their queries attend over the cached keys plus their own. The
# encoder memory's keys and values are projected once per sentence and cached too. `KVCache` holds one such dict
# per layer, and can reorder its batch rows (beam search will need that). The keys and values live in buffers with
# room to spare, so that a step writes only its own position: gluing the new keys onto the old ones with `torch.cat`
# would copy the whole cache at every step, a cost that grows with the length generated.


# %% tags=["export"]
class KVCache:
    """What step-by-step decoding keeps between steps, one dict per decoder
    layer: the self-attention keys and values of every position decoded so
    far ("k", "v", each (B, H, P, Dk)), and the cross-attention keys and
    values of the encoder memory ("memory_k", "memory_v", each
    (B, H, S, Dk)), computed once. "k" and "v" are views of the first P
    positions of "k_buffer" and "v_buffer", which have room for more.
    """

    def __init__(self, n_layers: int):
        self.layers: list[dict[str, Tensor]] = [{} for _ in range(n_layers)]

    @property
    def length(self) -> int:
        """How many target positions the cache holds (P)."""
        first = self.layers[0]
        return first["k"].size(2) if "k" in first else 0

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (with repeats): beam search follows its
        best beams."""
        for layer in self.layers:
            for name, tensor in layer.items():
                if name not in ("k", "v"):  # views, rebuilt below
                    layer[name] = tensor.index_select(0, index)
            for name in ("k", "v"):
                if name in layer:
                    length = layer[name].size(2)
                    layer[name] = layer[f"{name}_buffer"][:, :, :length]


def _append(cache: dict[str, Tensor], name: str, new: Tensor) -> Tensor:
    """Write ``new`` (B, H, n, Dk) after the P cached positions of
    ``cache[name]``; return all P + n. A full buffer is replaced by one
    twice as long, so a long generation copies the cache only a few
    times."""
    start = cache[name].size(2) if name in cache else 0
    end = start + new.size(2)
    buffer = cache.get(f"{name}_buffer")
    if buffer is None or buffer.size(2) < end:
        batch, heads, _, d_k = new.shape
        grown = new.new_empty(batch, heads, max(2 * start, end, 16), d_k)
        grown[:, :, :start] = cache.get(name, new[:, :, :0])
        cache[f"{name}_buffer"] = buffer = grown
    buffer[:, :, start:end] = new
    cache[name] = buffer[:, :, :end]
    return cache[name]


# %% [markdown]
# The two cached attentions use chapter 4's `split_heads` and `attend`, so the attention itself is the same code
# as always. Self-attention writes the new keys and values after the cached ones; a new position may see every
# cached position and the new ones up to itself. Cross-attention projects the memory on the first call only:


# %% tags=["export"]
def _cached_self_attention(
    attn: MultiHeadAttention, x: Tensor, cache: dict[str, Tensor]
) -> Tensor:
    q, k, v = (attn.split_heads(w(x)) for w in (attn.w_q, attn.w_k, attn.w_v))
    # after the positions decoded before: (B, H, P + new, Dk)
    k, v = _append(cache, "k", k), _append(cache, "v", v)
    new, total = q.size(2), k.size(2)
    # each new position sees all cached positions, and new ones up to itself
    mask = causal_mask(total, x.device)[total - new :] if new > 1 else None
    return attn.attend(q, k, v, mask=mask)


def _cached_cross_attention(
    attn: MultiHeadAttention,
    x: Tensor,
    memory: Tensor,
    mask: Tensor | None,
    cache: dict[str, Tensor],
) -> Tensor:
    if "memory_k" not in cache:  # projected once per sentence
        cache["memory_k"] = attn.split_heads(attn.w_k(memory))
        cache["memory_v"] = attn.split_heads(attn.w_v(memory))
    q = attn.split_heads(attn.w_q(x))
    return attn.attend(q, cache["memory_k"], cache["memory_v"], mask=mask)


# %% [markdown]
# The stack of $N$ layers passes each layer its own dict of the cache, and, as in chapter 5, ends with a LayerNorm
# in pre-norm only:


# %% tags=["export"]
class Decoder(nn.Module):
    """A stack of ``n_layers`` DecoderLayers, each built fresh, with a final
    LayerNorm in pre-norm only.

    Shape:
        x (B, T, D) embedded target, memory (B, S, D); masks as in
        ``DecoderLayer``. Returns (B, T, D).
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
        _positive_int("n_layers", n_layers)
        self.layers = nn.ModuleList(
            DecoderLayer(
                d_model, n_heads, d_ff, dropout, norm_first, eps, bias
            )
            for _ in range(n_layers)
        )
        self.norm = (
            nn.LayerNorm(d_model, eps=eps, bias=bias) if norm_first else None
        )

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """x (B, T, D) through every layer, then the pre-norm final norm."""
        if cache is not None and tgt_mask is not None:
            raise ValueError(
                "with a cache the decoder builds its own causal mask: "
                "pass tgt_mask=None"
            )
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache.layers[i]
            x = layer(x, memory, tgt_mask, memory_mask, layer_cache)
        return x if self.norm is None else self.norm(x)


# %% [markdown]
# ## Proof: equal to `nn.TransformerDecoderLayer`
#
# `DecoderLayer.from_torch` copies PyTorch's layer: `self_attn` to `self_attn`, `multihead_attn` to `cross_attn`, the
# feed-forward weights and the three norms. In evaluation mode, for both norm orders, with a causal and padding
# target mask and a source padding mask (inverted into PyTorch's True = blocked convention):

# %%
src_tokens = torch.tensor(
    [[4, 5, 6, 7, 8, 3], [4, 5, 6, 0, 0, 0]], device=device
)
tgt_tokens = torch.tensor([[1, 9, 8, 7, 2], [1, 9, 2, 0, 0]], device=device)
# (B, S, D): stands in for an encoder output; (B, T, D): embedded target
memory = seeded_randn(2, 6, 32, seed=1, device=device)
x = seeded_randn(2, 5, 32, seed=2, device=device)
src_mask = padding_mask(src_tokens, 0)  # (B, 1, 1, S)
tgt_pad = padding_mask(tgt_tokens, 0)
tgt_mask = causal_mask(5, device) & tgt_pad  # (B, 1, T, T)

for norm_first in [False, True]:
    torch.manual_seed(0)
    theirs = nn.TransformerDecoderLayer(
        32, 4, 64, batch_first=True, norm_first=norm_first
    )
    theirs = theirs.to(device).eval()
    ours = DecoderLayer.from_torch(theirs).eval()
    expected = theirs(
        x,
        memory,
        tgt_mask=~causal_mask(5, device),
        tgt_key_padding_mask=~tgt_pad[:, 0, 0],
        memory_key_padding_mask=~src_mask[:, 0, 0],
    )
    out = ours(x, memory, tgt_mask=tgt_mask, memory_mask=src_mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    print(
        f"norm_first={norm_first!s:5}:",
        "equal to nn.TransformerDecoderLayer (≤ 1e-5)",
    )

# %% [markdown]
# (ch6-config)=
# ## The whole model
#
# The full model is embeddings and positions on both sides, the encoder, the decoder, and a final linear layer, the
# *generator*, from $d_{model}$ to one score (logit) per target-vocabulary token. Its sizes live in a dataclass with
# the paper's base model as defaults. A common belief is that "the only tunable parameters are $N$ and
# $d_{model}$"; the paper's Table 3 varies much more: the number of heads $h$, the widths $d_k$ and $d_v$, $d_{ff}$,
# dropout and label smoothing (and the learning rate's warm-up, which Table 3 does not vary, is a setting to choose
# too). The config holds the model's share of those, and checks them (the checks are folded below it).


# %% tags=["export"]
@dataclass
class TransformerConfig:
    """Sizes and switches of the encoder-decoder, with the paper's base
    model as defaults (Vaswani et al., 2017, Table 3). ``n_layers`` is the
    depth of each stack.

    ``tie_embeddings`` makes the output projection use the target
    embedding's matrix; ``share_embeddings`` makes source and target share
    one embedding (their vocabularies must then be the same size). The
    paper does both (§3.4).
    """

    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_layers: int = 6
    dropout: float = 0.1
    norm_first: bool = False
    tie_embeddings: bool = False
    share_embeddings: bool = False
    max_len: int = 5000
    pad_id: int = 0
    eps: float = 1e-5

    def __post_init__(self):
        _check_config(self)


# %% tags=["export", "hide-input"]
def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_config(c: TransformerConfig) -> None:
    for name in ("d_model", "n_heads", "d_ff", "n_layers", "max_len"):
        _positive_int(name, getattr(c, name))
    if c.d_model % c.n_heads != 0:
        raise ValueError(
            f"d_model={c.d_model} is not divisible by n_heads={c.n_heads}"
        )
    if c.d_model % 2:
        raise ValueError(
            f"d_model={c.d_model} must be even for the positional encoding"
        )
    if isinstance(c.dropout, bool) or not 0.0 <= c.dropout < 1.0:
        raise ValueError(
            f"dropout must be a probability in [0, 1), got {c.dropout!r}"
        )
    for name in ("norm_first", "tie_embeddings", "share_embeddings"):
        if not isinstance(getattr(c, name), bool):
            raise ValueError(
                f"{name} must be True or False, got {getattr(c, name)!r}"
            )
    pad = c.pad_id
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(
            f"pad_id must be a token id (an int >= 0), got {pad!r}"
        )
    if not c.eps > 0:
        raise ValueError(f"eps must be positive, got {c.eps!r}")


def _check_vocab(
    src_vocab: int, tgt_vocab: int, c: TransformerConfig
) -> None:
    _positive_int("src_vocab", src_vocab)
    _positive_int("tgt_vocab", tgt_vocab)
    if c.share_embeddings and src_vocab != tgt_vocab:
        raise ValueError(
            "share_embeddings needs one vocabulary, got "
            f"src_vocab={src_vocab} and tgt_vocab={tgt_vocab}"
        )
    for name, vocab in [("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab)]:
        if c.pad_id >= vocab:
            raise ValueError(
                f"pad_id={c.pad_id} is not a token of {name}={vocab}"
            )


def _check_tokens(name: str, tokens: Tensor) -> None:
    if (
        not isinstance(tokens, Tensor)
        or tokens.is_floating_point()
        or tokens.dtype == torch.bool
    ):
        is_tensor = isinstance(tokens, Tensor)
        got = tokens.dtype if is_tensor else type(tokens).__name__
        raise TypeError(
            f"{name} must be a tensor of integer token ids, got {got}"
        )
    if tokens.dim() != 2 or 0 in tokens.shape:
        raise ValueError(
            f"{name} must have shape (batch, length), "
            f"got {tuple(tokens.shape)}"
        )


def _check_same_batch(src_batch: int, tgt_batch: int) -> None:
    if src_batch != tgt_batch:
        raise ValueError(
            "source and target batch sizes differ: "
            f"{src_batch} and {tgt_batch}"
        )


# %% [markdown]
# The model holds its parts: two embeddings (one, if shared), the positional encoding, the two stacks and the
# generator. Initialisation happens in one place, on the whole model: Xavier-uniform for every linear layer (as
# `nn.Transformer` does) and standard deviation $d_{model}^{-1/2}$ for the embeddings (chapter 5). Tying is one
# assignment, after initialisation: the generator's weight *becomes* the target embedding's matrix.


# %% tags=["export"]
class _TransformerParts(nn.Module):
    """The modules of a Transformer, built from its config and initialised."""

    def __init__(
        self, src_vocab: int, tgt_vocab: int, config: TransformerConfig
    ):
        super().__init__()
        _check_vocab(src_vocab, tgt_vocab, config)
        c = self.config = config
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_embed = TokenEmbedding(src_vocab, c.d_model)
        if c.share_embeddings:
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = TokenEmbedding(tgt_vocab, c.d_model)
        self.pos = PositionalEncoding(c.d_model, c.max_len, c.dropout)
        sizes = (c.d_model, c.n_heads, c.d_ff, c.n_layers, c.dropout)
        self.encoder = Encoder(*sizes, c.norm_first, c.eps)
        self.decoder = Decoder(*sizes, c.norm_first, c.eps)
        self.generator = nn.Linear(c.d_model, tgt_vocab)
        self._init_weights()
        if c.tie_embeddings:  # one tensor, two uses
            self.generator.weight = self.tgt_embed.table.weight

    def _init_weights(self) -> None:
        """All initialisation in one place: Xavier-uniform matrices and zero
        biases for every linear layer (as nn.Transformer), std d_model^-0.5
        for embeddings."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                std = self.config.d_model**-0.5
                nn.init.normal_(module.weight, std=std)


# %% [markdown]
# And what it does with them. `encode` runs the source through its embedding, positions and the encoder once;
# `decode` turns target tokens and that memory into logits, with or without a cache; `forward` does both, building
# the masks from `pad_id` unless it is given them:


# %% tags=["export"]
class Transformer(_TransformerParts):
    """The encoder-decoder Transformer: embeddings and positions, encoder,
    decoder and the output projection to target-vocabulary logits.
    ``forward(src, tgt)`` builds the masks from ``config.pad_id`` (padding
    for the source; causal and padding for the target) unless they are
    given (bool, True = may attend).

    Shape:
        src (B, S) and tgt (B, T) token ids. Returns logits (B, T, V).
    """

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """The encoder memory, (B, S, D); ``src_mask`` defaults to padding."""
        _check_tokens("src", src)
        if src_mask is None:
            src_mask = padding_mask(src, self.config.pad_id)
        return self.encoder(self.pos(self.src_embed(src)), src_mask)

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Logits (B, T, V) given the memory. Without a cache, ``tgt_mask``
        defaults to causal & padding; with one, ``tgt`` holds only the new
        tokens, placed after the cache's ``length`` positions."""
        _check_tokens("tgt", tgt)
        _check_same_batch(memory.size(0), tgt.size(0))
        if cache is None and tgt_mask is None:
            pad = padding_mask(tgt, self.config.pad_id)
            tgt_mask = causal_mask(tgt.size(1), tgt.device) & pad
        offset = 0 if cache is None else cache.length
        x = self.pos(self.tgt_embed(tgt), offset=offset)  # (B, T, D)
        x = self.decoder(x, memory, tgt_mask, src_mask, cache)
        return self.generator(x)  # (B, T, V)

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, T, V) for src (B, S) and tgt (B, T) token ids."""
        _check_tokens("src", src)
        _check_tokens("tgt", tgt)
        _check_same_batch(src.size(0), tgt.size(0))
        if src_mask is None:
            src_mask = padding_mask(src, self.config.pad_id)
        memory = self.encode(src, src_mask)
        return self.decode(tgt, memory, src_mask, tgt_mask)

    def new_cache(self) -> KVCache:
        """An empty cache for step-by-step decoding with ``decode``."""
        return KVCache(len(self.decoder.layers))


# %% [markdown]
# `make_model` builds one from the paper's defaults and the settings you change:


# %% tags=["export"]
def make_model(src_vocab: int, tgt_vocab: int, **overrides) -> Transformer:
    """A Transformer with the paper's base settings, changed by
    ``overrides`` (any field of ``TransformerConfig``), e.g.
    ``make_model(1000, 1000, d_model=128, n_layers=2)``."""
    fields = {f.name for f in dataclasses.fields(TransformerConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown}; "
            f"TransformerConfig has {sorted(fields)}"
        )
    return Transformer(src_vocab, tgt_vocab, TransformerConfig(**overrides))


# %% [markdown]
# `make_model` with no overrides is the paper's base model. With a shared source–target vocabulary of about 37,000
# tokens (§5.1, English–German) and the paper's weight sharing (§3.4), count its parameters:

# %%
for tie in [True, False]:
    base = make_model(37000, 37000, tie_embeddings=tie, share_embeddings=tie)
    # .parameters() counts a shared tensor once
    total = sum(p.numel() for p in base.parameters()) / 1e6
    embeddings = sum(
        p.numel() for name, p in base.named_parameters() if "embed" in name
    )
    label = "tied and shared" if tie else "separate"
    print(
        f"{label:15}: {total:.1f} M parameters,",
        f"of which embeddings {embeddings / 1e6:.1f} M",
    )
    del base

# %% [markdown]
# With sharing, 63.1 M parameters, against the 65 M the paper reports for the base model (Table 3). The paper does not
# give its exact vocabulary size ("about 37000 tokens"); the embedding matrix is the only part that depends on it,
# and 2 M parameters are about 3,900 more vocabulary rows of width 512. Without sharing, the same model has three
# vocabulary matrices instead of one, 101 M parameters: tying saves almost 40%.
#
# Tying must really tie: the output projection and the target embedding must be the *same tensor*, so that a
# gradient step on one moves the other. A check of that has to fail for untied embeddings, and the obvious one
# does not: take one SGD step on a loss over the model's logits and see whether the target embedding moved. It
# moves either way, because the loss also flows back through the decoder's input, which *is* the embedding. The
# check that can fail puts the loss on the generator alone: the decoder's output is computed without a graph
# (`torch.no_grad`, the same as `h.detach()`), so the only way back to the embedding is through the generator's
# weight, which exists only when the two are tied. We run both checks, tied and untied:

# %%
src = seeded_randint(1, 50, 2, 6, seed=1, device=device)
tgt = seeded_randint(1, 50, 2, 5, seed=2, device=device)


def embedding_step(tie: bool, generator_only: bool) -> tuple[float, bool]:
    """How far one SGD step moves the target embedding, and whether the
    generator's weight is the embedding's memory."""
    torch.manual_seed(0)
    sizes = {"d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 1}
    model = make_model(50, 50, **sizes, dropout=0.0, tie_embeddings=tie)
    model = model.to(device)
    embedding = model.tgt_embed.table.weight
    before = embedding.detach().clone()
    if generator_only:
        with torch.no_grad():  # decoder output h, with no graph behind it
            x = model.pos(model.tgt_embed(tgt))
            h = model.decoder(x, model.encode(src), causal_mask(5, device))
        logits = model.generator(h)
    else:
        logits = model(src, tgt)
    logits.logsumexp(-1).mean().backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    moved = (embedding - before).abs().max().item()
    return moved, model.generator.weight.data_ptr() == embedding.data_ptr()


title = "one SGD step moves the target embedding by"
print(f"{title:45}{'tied':>6}  {'untied':>6}")
for generator_only in [False, True]:
    (tied, one), (untied, two) = (
        embedding_step(tie, generator_only) for tie in [True, False]
    )
    name = "generator(h.detach())" if generator_only else "logits"
    print(f"  a loss on the {name:29}{tied:.4f}  {untied:.4f}")
    assert one and not two  # tied: one memory; untied: two
    assert tied > 0
    if generator_only:
        assert untied == 0  # the control: untied, the step cannot reach it
    else:
        assert untied > 0  # this check passes untied too: it proves nothing

# %% [markdown]
# A loss on the logits moves the embedding tied *and* untied, so it cannot prove tying. A loss on the generator
# alone moves it only when tied; untied, the step leaves it exactly where it was (the `assert`s hold both, and that
# the tied weights share one block of memory, `data_ptr`, while the untied ones do not).

# %% [markdown]
# (ch6-figure)=
# ## Figure 1, drawn from the model
#
# Every chapter of this book opens with the paper's Figure 1, the map of the whole model, with the parts that chapter
# builds in colour. The figure is not a picture someone drew: `draw_architecture` reads it off a model's module
# tree. For each stack it takes the first layer's sublayers in order (self-attention, cross-attention,
# feed-forward), where that layer puts its LayerNorm (`norm_first`), whether the stack ends with a norm, the
# number of layers, and whether the generator's weight *is* the output embedding. Change the model and the figure
# changes. Built on PyTorch's `meta` device, a model has its structure but no memory, so drawing costs nothing.
# Post-norm, the paper's layout, on the left; pre-norm on the right:

# %% tags=["export:figure", "hide-input"]
from dataclasses import dataclass

import torch
from torch import nn

from transformer_lite.decoder import make_model as _make_model

# the parts of Figure 1 a chapter can highlight, and their colours
PART_COLOURS = {
    "embedding": "#f4c7c3",
    "positions": "#f4c7c3",
    "self_attention": "#fbd38d",
    "masked_attention": "#fbd38d",
    "cross_attention": "#fbd38d",
    "feed_forward": "#b3d4fc",
    "norm": "#fff3b0",
    "generator": "#d7c4f2",
}
_ATTENTION = ("self_attention", "masked_attention", "cross_attention")
# what each chapter builds: its "you are here"
CHAPTER_PARTS = {
    1: _ATTENTION,
    2: _ATTENTION,
    3: ("masked_attention",),
    4: _ATTENTION,
    5: ("embedding", "positions", "self_attention", "feed_forward", "norm"),
    6: ("masked_attention", "cross_attention", "generator"),
    7: tuple(PART_COLOURS),
    8: tuple(PART_COLOURS),
}
# a layer's child -> (label, part); the decoder's self_attn is the masked one
_SUBLAYERS = {
    ("encoder", "self_attn"): ("Multi-Head Attention", "self_attention"),
    ("decoder", "self_attn"): (
        "Masked Multi-Head\nAttention",
        "masked_attention",
    ),
    ("decoder", "cross_attn"): (
        "Multi-Head Attention\n(over the encoder)",
        "cross_attention",
    ),
    ("encoder", "ff"): ("Feed Forward", "feed_forward"),
    ("decoder", "ff"): ("Feed Forward", "feed_forward"),
}


@dataclass(frozen=True)
class Box:
    """A box of the figure: its text, the part it belongs to, its place."""

    label: str
    part: str
    stack: str  # "encoder" or "decoder"
    y: float  # height of its centre: larger is drawn higher
    highlighted: bool


def _layer_boxes(layer: nn.Module, stack: str) -> list[tuple[str, str]]:
    """A layer's boxes bottom to top, from its children and norm_first."""
    rows = []
    for name, _ in layer.named_children():
        if (stack, name) not in _SUBLAYERS:
            continue  # norms, dropout: drawn with their sublayer
        sublayer = _SUBLAYERS[stack, name]
        if layer.norm_first:  # x + sublayer(norm(x))
            rows += [("Norm", "norm"), sublayer, ("Add", "norm")]
        else:  # norm(x + sublayer(x))
            rows += [sublayer, ("Add & Norm", "norm")]
    return rows


def draw_architecture(
    model: nn.Module | None = None,
    highlight: tuple[str, ...] = (),
    ax=None,
    title: str | None = None,
    size: tuple[float, float] = (6, 7),
) -> list[Box]:
    """Draw the paper's Figure 1 from ``model``'s module tree (by default
    the base model, built on the meta device: structure without weights).

    The encoder and decoder layers' sublayers, their LayerNorms (before
    the sublayer with ``norm_first``, after the residual sum without),
    the stacks' final norms, N and the tied output projection all come
    from the model. ``highlight`` names parts (see ``PART_COLOURS``) to
    colour; the rest is grey. Returns the boxes drawn, bottom to top.
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch
    except ImportError as error:
        raise ImportError(
            "draw_architecture needs matplotlib: "
            "pip install 'transformer_lite[plot]'"
        ) from error
    if model is None:
        with torch.device("meta"):
            model = _make_model(1000, 1000, tie_embeddings=True)
    unknown = sorted(set(highlight) - set(PART_COLOURS))
    if unknown:
        raise ValueError(
            f"unknown parts {unknown}; parts: {sorted(PART_COLOURS)}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    lit = set(highlight or PART_COLOURS)
    boxes: list[Box] = []
    width, height, gap = 2.6, 0.55, 0.22
    columns = {"encoder": 0.0, "decoder": 3.4}

    def box(stack: str, y: float, label: str, part: str) -> float:
        x = columns[stack]
        on = part in lit
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                width,
                height,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                facecolor=PART_COLOURS[part] if on else "#eeeeee",
                edgecolor="#333333" if on else "#bbbbbb",
                linewidth=1.2 if on else 0.8,
            )
        )
        ax.text(
            x + width / 2,
            y + height / 2,
            label,
            ha="center",
            va="center",
            fontsize=7.5,
            color="#111111" if on else "#999999",
        )
        boxes.append(
            Box(label.replace("\n", " "), part, stack, y + height / 2, on)
        )
        return y + height + gap

    tops, cross_y = {}, None
    for stack, side in (
        ("encoder", "Inputs"),
        ("decoder", "Outputs\n(shifted right)"),
    ):
        x = columns[stack]
        ax.text(
            x + width / 2, 0.0, side, ha="center", va="bottom", fontsize=7.5
        )
        y = box(
            stack,
            0.55,
            "Input Embedding" if stack == "encoder" else "Output Embedding",
            "embedding",
        )
        y = box(stack, y, "+ Positional Encoding", "positions")
        layers = getattr(model, stack).layers
        start = y
        y += 0.12
        for label, part in _layer_boxes(layers[0], stack):
            if part == "cross_attention":
                cross_y = y + height / 2
            y = box(stack, y, label, part)
        ax.add_patch(
            FancyBboxPatch(
                (x - 0.15, start - 0.05),
                width + 0.3,
                y - start - gap + 0.2,
                boxstyle="round,pad=0.02,rounding_size=0.15",
                facecolor="none",
                edgecolor="#666666",
                linewidth=1.0,
                linestyle="--",
            )
        )
        side_x = x - 0.25 if stack == "encoder" else x + width + 0.25
        ax.text(
            side_x,
            (start + y) / 2,
            f"{len(layers)}×",
            fontsize=10,
            ha="right" if stack == "encoder" else "left",
            va="center",
        )
        if getattr(model, stack).norm is not None:
            y = box(stack, y + 0.1, "Norm (end of stack)", "norm")
        tops[stack] = y
    # the encoder's output feeds every decoder layer's cross-attention: up out
    # of the encoder, across, down, and into the box from the left
    enc_x, top = columns["encoder"] + width / 2, tops["encoder"] + 0.1
    across = (columns["encoder"] + width + columns["decoder"]) / 2
    ax.plot(
        [enc_x, enc_x, across, across],
        [top - gap - 0.1, top, top, cross_y],
        color="#444444",
        linewidth=1.0,
    )
    ax.annotate(
        "",
        xy=(columns["decoder"], cross_y),
        xytext=(across, cross_y),
        arrowprops=dict(arrowstyle="->", color="#444444", linewidth=1.0),
    )
    tied = model.generator.weight is model.tgt_embed.table.weight
    linear = "Linear (generator)" + (
        "\ntied to the embedding" if tied else ""
    )
    y = box("decoder", tops["decoder"] + 0.1, linear, "generator")
    y = box("decoder", y, "Softmax", "generator")
    ax.text(
        columns["decoder"] + width / 2,
        y,
        "Output Probabilities",
        ha="center",
        va="bottom",
        fontsize=7.5,
    )
    first = model.encoder.layers[0]
    c = model.config
    ax.set_title(
        title
        or (
            f"N = {len(model.encoder.layers)}, "
            f"h = {first.self_attn.n_heads}, "
            f"d_model = {c.d_model}, d_ff = {c.d_ff}, "
            f"{'pre-norm' if first.norm_first else 'post-norm'}"
        ),
        fontsize=9,
    )
    ax.set_xlim(-0.7, columns["decoder"] + width + 0.6)
    ax.set_ylim(-0.1, y + 0.5)
    ax.set_axis_off()
    return sorted(boxes, key=lambda b: (b.stack, b.y))


def you_are_here(chapter: int, ax=None) -> list[Box]:
    """Figure 1 with the parts chapter ``chapter`` builds in colour."""
    parts = CHAPTER_PARTS.get(chapter, ())
    return draw_architecture(
        highlight=parts,
        ax=ax,
        title=f"Chapter {chapter}: you are here",
        size=(4.6, 5.4),
    )


# %%
with torch.device("meta"):  # the structure only: no memory, no initialisation
    post = make_model(1000, 1000, n_layers=2, tie_embeddings=True)
    pre = make_model(1000, 1000, n_layers=2, norm_first=True)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 6))
post_boxes = draw_architecture(post, ax=left)
pre_boxes = draw_architecture(pre, ax=right)
plt.show()


def encoder_layer(boxes: list[Box]) -> list[str]:
    """The encoder's boxes bottom to top, without embedding and positions."""
    return [b.label for b in boxes if b.stack == "encoder"][2:]


for name, boxes in [("post-norm", post_boxes), ("pre-norm", pre_boxes)]:
    print(f"{name} encoder layer, bottom to top:")
    print("   ", " | ".join(encoder_layer(boxes)))
assert encoder_layer(post_boxes) == [
    "Multi-Head Attention",
    "Add & Norm",
    "Feed Forward",
    "Add & Norm",
]
assert encoder_layer(pre_boxes)[:3] == ["Norm", "Multi-Head Attention", "Add"]
assert encoder_layer(pre_boxes)[-1] == "Norm (end of stack)"

# %% [markdown]
# (ch6-parallel-training)=
# ## Training is parallel: teacher forcing and the causal mask
#
# In training we know the whole target sentence. The decoder gets it shifted right by one (a start token `<s>`
# first), and at every position predicts the next token: *teacher forcing*. All positions are computed in one pass,
# like the encoder. What keeps position $t$ from reading the answer is the causal mask, and the property to prove on
# the whole model is: **changing target tokens after position $t$ leaves the logits at positions $\le t$ unchanged.**

# %%
torch.manual_seed(0)
sizes = {"d_model": 64, "n_heads": 4, "d_ff": 128, "n_layers": 2}
model = make_model(40, 40, **sizes, dropout=0.0).to(device).eval()
src = seeded_randint(3, 40, 3, 9, seed=3, device=device)
tgt = seeded_randint(3, 40, 3, 8, seed=4, device=device)
t = 4
changed = tgt.clone()
changed[:, t + 1 :] = seeded_randint(
    3, 40, 3, 8 - t - 1, seed=5, device=device
)

with torch.no_grad():
    logits, logits_changed = model(src, tgt), model(src, changed)
torch.testing.assert_close(
    logits[:, : t + 1], logits_changed[:, : t + 1], atol=1e-6, rtol=0
)
assert not torch.allclose(logits[:, t + 1 :], logits_changed[:, t + 1 :])
print(f"logits at positions 0..{t} unchanged;")
print(f"positions {t + 1}.. changed, as they should")

# %% [markdown]
# (ch6-rnn-again)=
# ## Generation is step by step: is it an RNN again?
#
# At generation time there is no target to feed. The model starts from `<s>`, predicts a token, appends it, and runs
# again on the longer prefix. Written naively, step $t$ recomputes all $t$ positions in every layer, although the
# earlier ones cannot change (that is exactly the causality we just proved). So we keep them: the **key/value cache**
# stores each layer's projected keys and values, and each step feeds only the newest token. The proof that the cache
# changes nothing: at **every** step, the cached logits equal a full recomputation.

# %%
with torch.no_grad():
    memory = model.encode(src)
    # all positions at once: (B, T, V)
    full = model.decode(tgt, memory, padding_mask(src, 0))
    cache = model.new_cache()
    for step in range(tgt.size(1)):
        one = model.decode(
            tgt[:, step : step + 1], memory, padding_mask(src, 0), cache=cache
        )
        torch.testing.assert_close(
            one[:, 0], full[:, step], atol=1e-5, rtol=1e-5
        )
steps = tgt.size(1)
print(f"cached logits equal full recomputation at all {steps} steps (≤ 1e-5)")
print(
    "the cache holds",
    cache.length,
    "positions; keys of layer 0:",
    tuple(cache.layers[0]["k"].shape),
)

# %% [markdown]
# So, is generation an RNN again? It is sequential in the number of *output* tokens, like any auto-regressive model:
# token $t+1$ cannot be chosen before token $t$. But the differences matter:
#
# - **Training**, where almost all the compute goes, is one parallel pass over the whole target (above).
# - There is **no fixed-size state**. An RNN squeezes everything it has read into one vector $h_t$; the cache keeps
#   every position's keys and values (it *grows*: `(B, H, t, d_k)` per layer), and each step attends directly to any
#   earlier position, one step away instead of $t$ steps away (Table 1's "maximum path length").
#
# ## Greedy and beam-search decoding
#
# **Greedy** decoding takes the most likely token at every step. With the cache, it is short: encode once, then
# feed one token at a time, stop when every sentence has written its end token. Two rules hold for every decoder
# here: padding and the start token are never generated (their logits are set to $-\infty$), and a sentence that
# has ended is padded from then on. The argument checks are folded below the functions.


# %% tags=["export"]
def _never_emit(logits: Tensor, banned: list[int]) -> Tensor:
    """The logits with the ``banned`` tokens ruled out."""
    logits = logits.clone()
    logits[..., banned] = float("-inf")
    return logits


def _next_logits(model, tokens, memory, src_mask, cache, step) -> Tensor:
    """The next token's logits (B, V), three ways: a packed ``step``, the
    cache (fed only the newest token), or the whole prefix again."""
    if step is not None:
        return step(tokens[:, -1:])[:, -1]
    if cache is not None:
        newest = tokens[:, -1:]
        return model.decode(newest, memory, src_mask, cache=cache)[:, -1]
    return model.decode(tokens, memory, src_mask)[:, -1]


# %% [markdown]
# The loop itself: encode once, then one token per step.


# %% tags=["export"]
@torch.no_grad()
def greedy_decode(
    model: Transformer,
    src: Tensor,
    start_id: int,
    end_id: int,
    max_len: int = 50,
    src_mask: Tensor | None = None,
    use_cache: bool = True,
    *,
    min_new_tokens: int = 0,
    banned: list[int] | None = None,
    return_scores: bool = False,
    packed: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The most likely next token, until ``end_id`` or ``max_len`` tokens;
    never ``banned`` (default: padding, start), nor ``end_id`` before
    ``min_new_tokens``. Eval mode first. ``use_cache=False`` recomputes the
    prefix, ``packed=True`` uses a ``PackedDecoder``: the same tokens.

    Shape:
        src (B, S). Returns tokens (B, L), L <= max_len, the end token
        included, ``pad_id`` after it, no start token; with
        ``return_scores=True`` also their log-probabilities (B, L).
    """
    options = (min_new_tokens, banned, use_cache, packed)
    banned = _check_greedy(model, src, start_id, max_len, *options)
    pad = model.config.pad_id
    if src_mask is None:
        src_mask = padding_mask(src, pad)
    memory = model.encode(src, src_mask)  # (B, S, D)
    batch = src.size(0)
    tokens = torch.full(
        (batch, 1), start_id, dtype=torch.long, device=src.device
    )  # (B, 1): <s>
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    scores = []
    packed_steps = PackedDecoder.of(model) if packed else None
    step = packed_steps and packed_steps.start(memory, src_mask, max_len)
    cache = model.new_cache() if use_cache and not packed else None
    for t in range(max_len):
        logits = _next_logits(model, tokens, memory, src_mask, cache, step)
        ruled_out = banned + [end_id] if t < min_new_tokens else banned
        next_logits = _never_emit(logits, ruled_out)  # (B, V)
        next_token = next_logits.argmax(dim=-1).masked_fill(done, pad)  # (B,)
        log_p = next_logits.float().log_softmax(dim=-1)  # the token's score
        chosen = log_p.gather(1, next_token[:, None])[:, 0]
        scores.append(chosen.masked_fill(done, 0.0))  # 0 after the end
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)
        done |= next_token == end_id
        if done.all():
            break
    if return_scores:
        return tokens[:, 1:], torch.stack(scores, dim=1)
    return tokens[:, 1:]


# %% [markdown]
# **Beam search** keeps the $k$ most likely prefixes (the *beams*) of each sentence at every step, instead of one.
# It is longer, because of the bookkeeping, so it comes in three pieces. First the score of a finished sentence:
# its log-probability divided by a length penalty $((5 + |Y|)/6)^{\alpha}$ (Wu et al., 2016), so that short
# sentences are not favoured just for having fewer probabilities multiplied. The paper used $k = 4$,
# $\alpha = 0.6$ (§6.1).


# %% tags=["export"]
def _length_penalty(length: int, alpha: float, form: str = "gnmt") -> float:
    """Wu et al. (2016): ((5 + length) / 6) ** alpha, or with
    ``form="power"`` length ** alpha (Hugging Face's ``length_penalty``);
    alpha = 0 means no normalisation."""
    if form == "power":
        return length**alpha
    return ((5 + length) / 6) ** alpha


# %% [markdown]
# Second, the bookkeeping of one step. Each source's $k$ beams have been extended by every token of the vocabulary,
# and its $2k$ best candidates come in best first (enough: at most $k$ of them can end). A candidate that ends with
# the end token is a finished sentence: it is scored with the length penalty and set aside. Any other becomes one
# of the next $k$ beams. A source stops taking candidates when $k$ beams are filled or $k$ of its sentences have
# finished; beams left empty get the score $-\infty$, so they never win.


# %% tags=["export"]
def _beam_step(top, vocab, end_id, pad, sequences, finished, penalty):
    """One step for every source. ``top``: each source's best candidates,
    (values: log-probability, indices: beam * vocab + token), best first;
    ``sequences`` (B*K, step): the beams' tokens so far; ``finished``: the
    sentences that ended, per source (a ``_Finished``). Appends those that
    end now; returns the next beams' scores (B, K), parent rows (B*K,) and
    new tokens (B*K, 1)."""
    batch, k, done = len(finished), finished.k, finished.done
    scores = torch.full((batch, k), float("-inf"))
    rows, tokens = [], []
    for b in range(batch):
        alive = []  # (score, parent beam, token)
        values, indices = top.values[b].tolist(), top.indices[b].tolist()
        for score, index in zip(values, indices, strict=True):
            if score == float("-inf") or done(b) or len(alive) == k:
                break
            beam, token = divmod(index, vocab)
            parent = sequences[b * k + beam]
            if token == end_id:  # a finished sentence, end token included
                ended = torch.cat([parent, parent.new_tensor([token])])
                finished[b].append((score / penalty, ended))
            else:
                alive.append((score, beam, token))
        alive += [(float("-inf"), 0, pad)] * (k - len(alive))  # empty beams
        for i, (score, beam, token) in enumerate(alive):
            scores[b, i] = score
            rows.append(b * k + beam)
            tokens.append(token)
    device = sequences.device
    rows = torch.tensor(rows, device=device)
    return (
        scores.to(device),
        rows,
        torch.tensor(tokens, device=device)[:, None],
    )


# %% [markdown]
# When does a source stop taking candidates? By default (`early_stopping=True`) as soon as $k$ of its sentences have
# ended, as in the paper's setting. With `early_stopping=False` it goes on until no live beam could still beat the
# $k$-th best ended sentence. The finished sentences and that rule live together:


# %% tags=["export"]
class _Finished(list):
    """Each source's ended sentences, (score, tokens) pairs, and the rule
    for when a source is done."""

    def __init__(self, batch: int, k: int, early_stopping: bool):
        super().__init__([] for _ in range(batch))
        self.k, self.early_stopping = k, early_stopping
        self.closed = [False] * batch  # no live beam can win any more

    def done(self, b: int) -> bool:
        enough = len(self[b]) >= self.k
        return enough and (self.early_stopping or self.closed[b])

    def close(self, scores: Tensor, final_penalty: float) -> None:
        """After a step: the best a live beam (scores (B, K)) can reach is
        its log-probability now, which only falls, over the largest
        penalty, the one at max_len."""
        best_live = (scores.max(dim=1).values / final_penalty).tolist()
        for b, ended in enumerate(self):
            if len(ended) >= self.k:
                kth = sorted(score for score, _ in ended)[-self.k]
                self.closed[b] = best_live[b] <= kth


# %% [markdown]
# Third, the search itself. All sentences and their $k$ beams run as one batch of $B \cdot k$ rows through the
# decoder with its cache. After each step every source's surviving beams are gathered into the rows for the
# next one, and the cache follows them: `cache.reorder` copies each new beam's keys and values from its parent's
# row. If `max_len` is reached first, the unfinished beams compete with the finished ones.


# %% tags=["export"]
@torch.no_grad()
def beam_search(
    model: Transformer,
    src: Tensor,
    start_id: int,
    end_id: int,
    beam_size: int = 4,
    max_len: int = 50,
    length_penalty: float = 0.6,
    src_mask: Tensor | None = None,
    *,
    early_stopping: bool = True,
    n_best: int = 1,
    length_penalty_form: str = "gnmt",
    banned: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Each source's ``n_best`` best sentences (rows in turn) and scores:
    log-probability / ((5 + length) / 6) ** alpha, or length ** alpha with
    ``length_penalty_form="power"``. An end token counts wherever it ranks
    among the 2k candidates (Hugging Face: in the first k). Eval mode."""
    options = (n_best, length_penalty_form, banned)
    banned = _check_beam_search(
        model, src, start_id, max_len, beam_size, length_penalty, *options
    )
    pad, batch, k = model.config.pad_id, src.size(0), beam_size
    if src_mask is None:
        src_mask = padding_mask(src, pad)
    memory = model.encode(src, src_mask).repeat_interleave(k, dim=0)
    src_mask = src_mask.repeat_interleave(k, dim=0)  # B*K rows from here on
    cache = model.new_cache()
    long = {"dtype": torch.long, "device": src.device}
    sequences = torch.full((batch * k, 0), pad, **long)  # (B*K, step)
    last = torch.full((batch * k, 1), start_id, **long)
    # all beams start equal: keep one, or the same prefix is found k times
    scores = torch.full((batch, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0
    finished = _Finished(batch, k, early_stopping)
    form = length_penalty_form
    penalty = partial(_length_penalty, alpha=length_penalty, form=form)
    for step in range(max_len):
        logits = model.decode(last, memory, src_mask, cache=cache)[:, -1]
        logits = _never_emit(logits.float(), banned)
        log_probs = torch.log_softmax(logits, dim=-1)  # (B*K, V)
        vocab = log_probs.size(-1)
        candidates = (scores.view(-1, 1) + log_probs).view(batch, k * vocab)
        top = candidates.topk(min(2 * k, k * vocab), dim=-1)  # (B, 2K)
        scores, rows, last = _beam_step(
            top, vocab, end_id, pad, sequences, finished, penalty(step + 1)
        )
        finished.close(scores, penalty(max_len))
        if all(finished.done(b) for b in range(batch)):
            break
        cache.reorder(rows)  # each new beam continues from its parent's cache
        sequences = torch.cat([sequences[rows], last], dim=1)
    else:  # max_len reached: unfinished beams compete with the finished ones
        open_ = [b for b in range(batch) if not finished.done(b)]
        _add_unfinished(finished, scores, sequences, penalty(max_len), open_)
    return _best_of(finished, pad, n_best)


# %% [markdown]
# The keyword arguments are what a user of Hugging Face's `generate` will look for. `n_best` returns each source's
# $n$ best sentences (their rows one after another, best first). `length_penalty_form="power"` divides by
# $|Y|^{\alpha}$, as Hugging Face's `length_penalty` does. `banned` replaces the default set of tokens never
# generated. `early_stopping=False` keeps a source searching after $k$ of its sentences have ended, until no live beam
# could still beat the $k$-th best of them. That bound is safe: a beam's log-probability can only fall, and
# dividing it by the largest penalty, the one at `max_len`, gives the best score it could still reach. One rule differs between implementations: when some of a source's best $k$
# candidates end, Hugging Face and fairseq ignore an end token ranked after the first $k$, while here it is kept as a
# finished sentence, because it scores better than the beams kept alive below it. Where that rule does not fire,
# the tests check that these options give exactly the tokens and scores of Marian's `generate`.
#
# The rest is folded: the argument checks, and packing each source's best sentences into one padded tensor.


# %% tags=["export", "hide-input"]
def _check_decoding(
    model: Transformer, src: Tensor, start_id: int, max_len: int
) -> None:
    _check_tokens("src", src)
    _positive_int("max_len", max_len)
    if start_id == model.config.pad_id:
        raise ValueError(
            f"start_id={start_id} equals pad_id: "
            "the start token would be masked out"
        )


def _check_greedy(
    model: Transformer,
    src: Tensor,
    start_id: int,
    max_len: int,
    min_new_tokens: int,
    banned: list[int] | None,
    use_cache: bool,
    packed: bool,
) -> list[int]:
    """The checks of greedy_decode; returns the banned tokens."""
    _check_decoding(model, src, start_id, max_len)
    m = min_new_tokens
    if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= max_len:
        raise ValueError(
            f"min_new_tokens must be an int in [0, max_len={max_len}], "
            f"got {m!r}"
        )
    if packed and not use_cache:
        raise ValueError(
            "packed=True decodes with its own cache; use_cache=False "
            "contradicts it"
        )
    return _check_banned(model, start_id, banned)


def _check_banned(
    model: Transformer, start_id: int, banned: list[int] | None
) -> list[int]:
    if banned is None:
        return [model.config.pad_id, start_id]
    vocab = model.tgt_vocab
    bad = [
        t
        for t in banned
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab
    ]
    if bad:
        raise ValueError(
            f"banned must hold token ids in [0, {vocab}), got {bad[:5]}"
        )
    return list(banned)


def _check_beam_search(
    model: Transformer,
    src: Tensor,
    start_id: int,
    max_len: int,
    beam_size: int,
    length_penalty: float,
    n_best: int,
    form: str,
    banned: list[int] | None,
) -> list[int]:
    """The checks of beam_search; returns the banned tokens."""
    _check_decoding(model, src, start_id, max_len)
    _positive_int("beam_size", beam_size)
    if not length_penalty >= 0:
        raise ValueError(
            f"length_penalty must be >= 0, got {length_penalty!r}"
        )
    _positive_int("n_best", n_best)
    if n_best > beam_size:
        raise ValueError(
            f"n_best={n_best} is more than beam_size={beam_size} beams"
        )
    if form not in ("gnmt", "power"):
        raise ValueError(
            f"length_penalty_form must be 'gnmt' or 'power', got {form!r}"
        )
    return _check_banned(model, start_id, banned)


def _add_unfinished(
    finished: list[list[tuple[float, Tensor]]],
    scores: Tensor,
    sequences: Tensor,
    penalty: float,
    sources: list[int],
) -> None:
    """At max_len: the live beams of ``sources`` become candidates too,
    scored with the same length penalty."""
    k = scores.size(1)
    for b in sources:
        for beam in range(k):
            if scores[b, beam] > float("-inf"):
                score = scores[b, beam].item() / penalty
                finished[b].append((score, sequences[b * k + beam]))


def _best_of(
    finished: list[list[tuple[float, Tensor]]], pad: int, n_best: int = 1
) -> tuple[Tensor, Tensor]:
    """Each source's ``n_best`` best (score, tokens), best first, padded
    into one (B * n_best, L) tensor, and the scores (B * n_best,)."""
    some = next(seq for f in finished for _, seq in f)
    empty = (float("-inf"), some[:0])  # where a source has too few
    best = []
    for f in finished:
        ranked = sorted(f, key=lambda pair: pair[0], reverse=True)[:n_best]
        best += ranked + [empty] * (n_best - len(ranked))
    length = max(seq.numel() for _, seq in best)
    first = best[0][1]
    tokens = first.new_full((len(best), length), pad)
    for row, (_, seq) in enumerate(best):
        tokens[row, : seq.numel()] = seq
    scores = torch.tensor([s for s, _ in best], device=first.device)
    return tokens, scores


# %% [markdown]
# Beam search with one beam is greedy decoding, token for token (a check that the bookkeeping of beams, finished
# sentences and cache reordering is right), and recomputing without the cache gives the same tokens too:

# %%
model.eval()
start, end = 1, 2
sources = seeded_randint(3, 40, 4, 7, seed=6, device=device)
greedy = greedy_decode(model, sources, start, end, max_len=12)
recomputed = greedy_decode(
    model, sources, start, end, max_len=12, use_cache=False
)
beam1, _ = beam_search(model, sources, start, end, beam_size=1, max_len=12)
assert torch.equal(greedy, recomputed) and torch.equal(greedy, beam1)
beam4, scores = beam_search(
    model, sources, start, end, beam_size=4, max_len=12
)
print("greedy == no cache == beam size 1:", tuple(greedy.shape))
print(
    "beam size 4 output:",
    tuple(beam4.shape),
    "scores",
    [round(s, 3) for s in scores.tolist()],
)

# %% [markdown]
# (The model is untrained, so the tokens mean nothing yet; chapter 7 trains it.) Finally, what the cache buys: the
# time to generate 64 tokens for one sentence, with and without it, at the base model's width ($d_{model} = 512$, 8
# heads, $d_{ff} = 2048$) with 2 layers per stack. Without a cache, step
# $t$ runs the decoder over $t$ positions, so the whole generation costs $O(n^2)$ position-passes instead of $O(n)$.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
# d_model 512, 8 heads, d_ff 2048
base = make_model(1000, 1000, n_layers=2).to(device).eval()
sentence = seeded_randint(3, 1000, 1, 32, seed=7, device=device)


def generate(use_cache: bool) -> torch.Tensor:
    return greedy_decode(
        base, sentence, start_id=1, end_id=-1, max_len=64, use_cache=use_cache
    )


# end_id=-1 is no token: always 64 tokens
assert generate(True).shape == (1, 64)
times = time_calls(lambda: generate(True), lambda: generate(False), repeats=3)
cached, recomputed = (statistics.median(t) for t in times)
print(f"64 tokens with the cache: {cached:.2f} s,")
print(f"recomputing: {recomputed:.2f} s,")
print(f"{recomputed / cached:.1f}× faster with the cache")

# %% [markdown]
# Faster, but by less than the $O(n)$ against $O(n^2)$ count suggests. With one sentence, each step is small, and its
# cost is mostly the fixed price of each PyTorch operation and of reading every decoder weight from memory, which
# the cache does not save. The {ref}`Performance appendix <perf-decoding>` counts the operations per token, and
# shows the cache's full advantage over a longer generation of 256 tokens, where recomputing costs $O(n^2)$.

# %% [markdown]
# (ch6-packed)=
# ## Faster generation: the same steps on repacked weights
#
# At batch 1 a cached step does little arithmetic: one row times each decoder matrix. What it cannot avoid is
# reading all of those matrices from memory, 4 bytes per weight: for the base model's decoder and output projection
# with a vocabulary of 8000, about 105 MB per token. So the fair question about speed is how close a step comes to
# that **weight-streaming floor**, the bytes divided by the rate at which the machine's memory feeds a
# matrix–vector product. Three things keep the plain path away from it, and `PackedDecoder` removes them without
# changing the arithmetic:
#
# 1. **The layout of the weights.** `nn.Linear` stores $W$ as (out, in) and computes $x W^\top$. For a single row,
#    the CPU's matrix library reads some shapes faster stored the other way round, (in, out): measured on the
#    machine of the {ref}`appendix <perf-decoding>`, a product with more outputs than inputs (the output
#    projection, $W^Q W^K W^V$ joined, the feed-forward network's first layer) streams its weights up to twice as fast
#    transposed, while one with more inputs than outputs (the second layer) is faster as it is. `PackedDecoder`
#    stores each matrix the faster way round, once.
# 2. **Three products where one will do.** The new token's query, key and value are one product with $W^Q$, $W^K$
#    and $W^V$ joined side by side, as `nn.MultiheadAttention` stores them. Chapter 4 keeps three named matrices;
#    the packed copy joins them.
# 3. **Operations per token.** The modules, views, transposes and checks that make this chapter readable cost a few
#    microseconds each. A packed step works on (B, D) rows, writes the new keys and values straight into a cache
#    allocated for the whole generation, and calls `F.layer_norm` and `F.scaled_dot_product_attention` directly.
#
# The price: a second copy of the decoder's weights, kept with the model and made again whenever a weight changes,
# and a second version of the layer's logic, which is why it is proven equal below rather than trusted. It is a
# switch, `greedy_decode(..., packed=True)`; the plain path stays the default, and it is the one this chapter
# teaches.


# %% tags=["export"]
def _packed(*linears: nn.Linear) -> tuple[Tensor, Tensor, bool]:
    """The weights of ``linears`` (each (out, in)) joined into one matrix
    and their biases joined. The matrix is stored transposed, (in, out),
    unless it has more inputs than outputs: for a single row, this
    machine's matrix library reads each shape fastest that way round
    (measured in the appendix)."""
    weight = torch.cat([linear.weight for linear in linears])  # (out, in)
    biases = [
        linear.weight.new_zeros(linear.out_features)
        if linear.bias is None
        else linear.bias
        for linear in linears
    ]
    transposed = weight.size(0) >= weight.size(1)
    if transposed:
        weight = weight.t()
    return weight.contiguous(), torch.cat(biases), transposed


def _linear(x: Tensor, packed: tuple[Tensor, Tensor, bool]) -> Tensor:
    """x (B, in) times a packed weight, plus its bias: (B, out)."""
    weight, bias, transposed = packed
    return torch.addmm(bias, x, weight if transposed else weight.t())


def _norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    return F.layer_norm(
        x, norm.normalized_shape, norm.weight, norm.bias, norm.eps
    )


# each model's packed copy, dropped with the model
_PACKED: "weakref.WeakKeyDictionary[Transformer, PackedDecoder]" = (
    weakref.WeakKeyDictionary()
)


def _weights_key(model: Transformer) -> tuple:
    """Where each weight the packed copy depends on lives, and its version
    counter, which every in-place change (an optimizer step, a load)
    increments."""
    return tuple(
        (p.data_ptr(), p._version)
        for part in (model.decoder, model.generator, model.tgt_embed)
        for p in part.parameters()
    )


# %% [markdown]
# The packed copy of a model is made once and kept while the model's weights stay as they are; every in-place
# change of a weight (an optimizer step, a load) increments its version counter, which the key below reads:


# %% tags=["export"]
class PackedDecoder:
    """The decoder and output projection of a ``Transformer`` repacked for
    generating one token at a time: weights copied once into the layout a
    single row reads fastest, self-attention's three projections joined
    into one, and steps on (B, D) rows with a cache allocated once. Computes
    what ``model.decode`` with a ``KVCache`` computes, in eval mode.
    ``PackedDecoder.of(model)`` packs once and reuses the copy until a
    weight changes.
    """

    @torch.no_grad()
    def __init__(self, model: Transformer):
        self.config, self.decoder = model.config, model.decoder
        self.embedding, self.positions = model.tgt_embed.table, model.pos
        self.layers = [
            {
                "qkv": _packed(
                    layer.self_attn.w_q,
                    layer.self_attn.w_k,
                    layer.self_attn.w_v,
                ),
                "out": _packed(layer.self_attn.w_o),
                "cross_q": _packed(layer.cross_attn.w_q),
                "cross_out": _packed(layer.cross_attn.w_o),
                "ff_1": _packed(layer.ff.w_1),
                "ff_2": _packed(layer.ff.w_2),
            }
            for layer in model.decoder.layers
        ]
        self.generator = _packed(model.generator)
        self.key = _weights_key(model)

    @classmethod
    def of(cls, model: Transformer) -> "PackedDecoder":
        """The packed copy of ``model``, made on first use and again only
        when one of its weights has changed (trained, loaded or moved)."""
        if model.training:
            raise ValueError(
                "PackedDecoder has no dropout: call model.eval() first"
            )
        packed = _PACKED.get(model)
        if packed is None or packed.key != _weights_key(model):
            packed = _PACKED[model] = cls(model)
        return packed

    def start(
        self, memory: Tensor, src_mask: Tensor | None, max_len: int
    ) -> Callable[[Tensor], Tensor]:
        """A step function for one generation of up to ``max_len`` tokens:
        ``step(tokens)`` takes the newest tokens (B, 1) and returns the
        logits of the next ones (B, 1, V)."""
        return _packed_steps(self, memory, src_mask, max_len)


# %% [markdown]
# The step itself is folded: the same three sublayers as `DecoderLayer`, on (B, D) rows, with the self-attention's
# keys and values written into one cache allocated for the whole generation.


# %% tags=["export", "hide-input"]
def _packed_steps(
    packed: PackedDecoder,
    memory: Tensor,
    src_mask: Tensor | None,
    max_len: int,
) -> Callable[[Tensor], Tensor]:
    """``PackedDecoder.start``: the step function, with its own cache."""
    c, layers = packed.config, packed.decoder.layers
    batch, heads = memory.size(0), c.n_heads
    d_k = c.d_model // heads
    memory_kv = [  # projected once, as in the plain path
        (
            layer.cross_attn.split_heads(layer.cross_attn.w_k(memory)),
            layer.cross_attn.split_heads(layer.cross_attn.w_v(memory)),
        )
        for layer in layers
    ]
    # all layers' keys and values, whole generation: (B, H, T, Dk) each
    cache = memory.new_empty(len(layers), 2, batch, heads, max_len, d_k)
    scale = math.sqrt(c.d_model)
    position = 0

    def residual(x, norm, sublayer, i):  # sublayer i, wrapped
        if c.norm_first:
            return x + sublayer(_norm(norm, x), i)
        return _norm(norm, x + sublayer(x, i))

    def self_attention(x, i):  # x (B, D)
        q, k, v = (
            _linear(x, packed.layers[i]["qkv"])
            .view(batch, 3, heads, 1, d_k)
            .unbind(1)
        )  # each (B, H, 1, Dk)
        cache[i, 0, :, :, position : position + 1] = k
        cache[i, 1, :, :, position : position + 1] = v
        keys = cache[i, 0, :, :, : position + 1]  # (B, H, P + 1, Dk)
        values = cache[i, 1, :, :, : position + 1]
        out = F.scaled_dot_product_attention(q, keys, values)
        return _linear(out.view(batch, -1), packed.layers[i]["out"])

    def cross_attention(x, i):
        q = _linear(x, packed.layers[i]["cross_q"])
        keys, values = memory_kv[i]
        out = F.scaled_dot_product_attention(
            q.view(batch, heads, 1, d_k), keys, values, src_mask
        )
        return _linear(out.view(batch, -1), packed.layers[i]["cross_out"])

    def feed_forward(x, i):
        hidden = _linear(x, packed.layers[i]["ff_1"]).relu_()
        return _linear(hidden, packed.layers[i]["ff_2"])

    def step(tokens: Tensor) -> Tensor:
        nonlocal position
        if position == max_len:
            raise ValueError(
                f"this step function was started for {max_len} tokens"
            )
        embedded = packed.embedding.weight[tokens[:, 0]] * scale
        x = embedded + packed.positions.table[position]  # (B, D)
        for i, layer in enumerate(layers):
            x = residual(x, layer.norm1, self_attention, i)
            x = residual(x, layer.norm2, cross_attention, i)
            x = residual(x, layer.norm3, feed_forward, i)
        if packed.decoder.norm is not None:  # pre-norm's final norm
            x = _norm(packed.decoder.norm, x)
        position += 1
        return _linear(x, packed.generator)[:, None]  # (B, 1, V)

    return step


# %% [markdown]
# The proof, on the chapter's model, a pre-norm model and the 2-layer base-width model: at every step the packed
# logits equal the plain cached ones (to float rounding: the joined and transposed products add in another order),
# and greedy decoding writes the same tokens.

# %%
prenorm = make_model(40, 40, d_model=32, n_heads=4, d_ff=64, n_layers=2)
prenorm = prenorm.to(device).eval()
for name, m, srcs in [
    ("chapter model", model, sources),
    ("pre-norm", prenorm, sources),
    ("2-layer base", base, sentence),
]:
    with torch.no_grad():
        memory = m.encode(srcs)
        mask = padding_mask(srcs, 0)
        cache, step = (
            m.new_cache(),
            PackedDecoder.of(m).start(memory, mask, 12),
        )
        last = torch.ones(srcs.size(0), 1, dtype=torch.long, device=device)
        for _ in range(12):
            plain = m.decode(last, memory, mask, cache=cache)
            torch.testing.assert_close(
                step(last), plain, atol=1e-4, rtol=1e-4
            )
            last = plain[:, -1].argmax(-1, keepdim=True).clamp(min=3)
    plain = greedy_decode(m, srcs, 1, 2, max_len=40)
    assert torch.equal(
        greedy_decode(m, srcs, 1, 2, max_len=40, packed=True), plain
    )
    print(f"{name}: packed logits equal plain at 12 steps, same tokens")

# %% [markdown]
# And what packing buys, at batch 1 with the 2-layer base-width model above (64 tokens, as before):

# %% tags=["nbval-ignore-output"]
times = time_calls(
    lambda: greedy_decode(base, sentence, 1, -1, max_len=64),
    lambda: greedy_decode(base, sentence, 1, -1, max_len=64, packed=True),
    repeats=3,
)
plain, packed = (64 / statistics.median(t) for t in times)
print(
    f"plain: {plain:.0f} tokens/s, packed: {packed:.0f} tokens/s, "
    f"{packed / plain:.2f}×"
)

# %% [markdown]
# The {ref}`appendix <perf-decoding>` puts both against the weight-streaming floor and against Hugging Face's
# `MarianMTModel.generate` on the same weights, and explains what remains. One step further would compile the
# packed step (`torch.compile`, or CUDA graphs on a GPU), removing most of the per-operation cost that is left;
# this book does not do it.

# %% [markdown]
# ## Clear errors
#
# A model that takes token ids can be fed many wrong things. Each gets a message that says what is wrong:

# %%
for bad in [
    lambda: make_model(100, 100, d_model=510),
    lambda: make_model(100, 80, share_embeddings=True),
    lambda: make_model(100, 100, n_layer=3),
    lambda: model(src, tgt[:2]),  # 3 sources, 2 targets
    lambda: model(src, tgt.float()),
    lambda: model(src, tgt + 40),  # ids beyond the vocabulary of 40
    lambda: model(src[0], tgt[0]),  # no batch dimension
]:
    try:
        bad()
    except (ValueError, TypeError) as error:
        message = f"{type(error).__name__}: {error}"
        print(textwrap.fill(message, width=78, subsequent_indent="    "))
    else:
        raise AssertionError("bad input was accepted")

# %% [markdown]
# ## What we built
#
# | name | the idea in one line |
# |---|---|
# | `DecoderLayer`, `Decoder` | masked self-attention, cross-attention, feed-forward; post-norm by default; proven equal to PyTorch's layer |
# | `KVCache` | each layer's keys and values of the positions decoded so far (in buffers with room to grow), and of the encoder memory |
# | `TransformerConfig` | the model's sizes and switches, the paper's base model as defaults, validated |
# | `Transformer`, `make_model(src_vocab, tgt_vocab, **overrides)` | the whole encoder–decoder: token ids in, logits out; tied and shared embeddings on request |
# | `greedy_decode`, `beam_search` | generation with the cache; beam size 1 is greedy; greedy can hold the end token back (`min_new_tokens`), ban tokens, return each token's log-probability |
# | `PackedDecoder`, `greedy_decode(..., packed=True)` | the same steps on weights repacked for one row at a time; proven to write the same tokens |
#
# Chapter 7 trains this model for real.

# %% [markdown]
# ## Exercises
#
# Three exercises: one tests a belief about what can be tuned against the paper, one breaks the tied embeddings,
# one counts what the cache saves. Write your answer in the cell below each question and run it: `check` says
# whether it is right and, when it is not, what the mistake looks like. A reference solution is folded after each
# one (click to open it).

# %% [markdown]
# (ex-ch6-hyperparameters)=
# ### Exercise 6.1: what else is tuned?
#
# "The only tunable parameters are $N$ and $d_{model}$": test the belief against the paper. Its Table 3
# (Vaswani et al., 2017) changes the base model one group of settings at a time, in rows (A) to (D), and lists
# only the values that differ from the base model. Besides $N$ and $d_{model}$, which settings do rows (A) to (D)
# vary? Answer with a set of strings chosen from `"batch_size"`, `"beam_size"`, `"d_ff"`, `"d_k"`, `"d_v"`,
# `"dropout"`, `"h"`, `"label_smoothing"`, `"learning_rate"` and `"warmup"` (the paper's `"P_drop"` and
# `"eps_ls"`, and this book's `"n_heads"`, are accepted too), and check it with `"ch6.hyperparameters"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch6.hyperparameters",
    "besides N and d_model, the settings Table 3's rows (A)-(D) vary",
    wrong=[
        ({"N", "d_model"}, "Table 3"),
        (set(), "Table 3"),
        (
            set("h d_k d_v d_ff dropout label_smoothing warmup".split()),
            "warm-up",
        ),
        ({"h", "d_ff", "dropout", "label_smoothing"}, "(B)"),
    ],
)
def _grade_hyperparameters(answer: Any) -> str | None:
    if isinstance(answer, str) or not all(isinstance(n, str) for n in answer):
        return 'Answer with a set of strings, e.g. {"h", "d_ff"}.'
    spellings = {  # the accepted spellings of each name, lower case
        "h": ["h", "n_heads", "heads", "num_heads"],
        "d_k": ["d_k", "dk"],
        "d_v": ["d_v", "dv"],
        "d_ff": ["d_ff", "dff"],
        "dropout": ["dropout", "p_drop", "pdrop"],
        "label_smoothing": ["label_smoothing", "eps_ls", "ε_ls", "ϵ_ls"],
        "N": ["n", "n_layers"],
        "d_model": ["d_model", "dmodel"],
        "warmup": ["warmup", "warm_up", "warmup_steps"],
        "learning_rate": ["learning_rate", "lr"],
        "batch_size": ["batch_size"],
        "beam_size": ["beam_size"],
        "train_steps": ["train_steps"],
        "positional_encoding": ["positional_encoding"],
    }
    canonical = {s: name for name, all_ in spellings.items() for s in all_}
    names = set()
    for raw in answer:
        key = raw.strip().lower().replace("-", "_").replace(" ", "_")
        if key not in canonical:
            return f"{raw!r} is not one of the names the question lists."
        names.add(canonical[key])
    fixed = {  # settings Table 3's rows (A)-(D) keep as in the base model
        "warmup": (
            "Table 3 does not vary the warm-up: it has no column for it, and "
            "every row trains with the base model's schedule, warmup_steps "
            "= 4000 (§5.3). You do choose it, but this table keeps it fixed."
        ),
        "learning_rate": (
            "The learning rate has no column in Table 3: every row follows "
            "the schedule of §5.3."
        ),
        "batch_size": (
            "The batch size has no column in Table 3: every row trains on "
            "batches of about 25000 source and 25000 target tokens (§5.1)."
        ),
        "beam_size": (
            "Beam size is a decoding setting, and Table 3 keeps it: all its "
            "rows decode with the same beam search (§6.2)."
        ),
        "train_steps": (
            "Only the big model, below row (E), trains longer (300K steps): "
            "that is outside rows (A) to (D)."
        ),
        "positional_encoding": (
            "Row (E) swaps the sinusoids for learned position embeddings: "
            "that is outside rows (A) to (D)."
        ),
    }
    kept = [name for name in fixed if name in names]
    if kept:
        return fixed[kept[0]]
    clues = {
        "h": "rows (A) vary the number of heads h, from 1 to 32",
        "d_k": "rows (B) shrink d_k alone; (A) and (C) change it too",
        "d_v": "rows (A) and (C) change d_v together with d_k",
        "d_ff": "rows (C) also change d_ff, to 1024 and 4096",
        "dropout": "rows (D) change P_drop, the dropout rate",
        "label_smoothing": "rows (D) change eps_ls, the label smoothing",
    }
    missing = [name for name in clues if name not in names]
    if len(missing) == len(clues):
        return (
            "Table 3 varies much more than N and d_model. Read its columns: "
            "each row fills in only the values it changes from the base "
            "model, so every column with a value in rows (A) to (D) is a "
            "setting the paper tuned."
        )
    if missing:
        return (
            "Some are missing: " + "; ".join(clues[n] for n in missing) + "."
        )
    return None


# %%
answer = ...  # a set of names, e.g. {"h"}
check("ch6.hyperparameters", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch6.hyperparameters")
def _solve_hyperparameters() -> set[str]:
    # Table 3, rows (A) to (D): the columns each group fills in, i.e.
    # changes from the base model (a blank cell means "as in base")
    rows = {
        "A": {"h", "d_k", "d_v"},  # 1 to 32 heads, d_k = d_v = 512 / h
        "B": {"d_k"},  # d_k = 16 or 32 with h = 8: d_k alone
        "C": {"N", "d_model", "d_k", "d_v", "d_ff"},  # depth and widths
        "D": {"dropout", "label_smoothing"},  # P_drop, eps_ls: 0.0 or 0.2
    }
    # Warm-up, learning rate, batch and beam size have no column: the
    # table keeps them. (This book's config derives d_k = d_model / n_heads,
    # so it cannot build rows (B), where d_k changes alone.)
    return set().union(*rows.values()) - {"N", "d_model"}


# %%
check("ch6.hyperparameters", EXERCISES["ch6.hyperparameters"].solve())

# %% [markdown]
# (ex-ch6-untied)=
# ### Exercise 6.2: break it yourself, untied embeddings
#
# The paper ties and shares its embeddings (§3.4): one matrix is the source embedding, the target embedding and the
# generator's weight. The cell below builds a small model that way. Break it: build the same model with
# `tie_embeddings=False, share_embeddings=False` (the marked line), and count both models' parameters. How many
# more does the untied one have? Answer with an int and check it with `"ch6.untied"`. (What untying does to
# training, the {ref}`experiment above <ch6-config>` showed: the generator's gradient no longer reaches the target
# embedding.)


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch6.untied",
    "parameters that untying adds to a small tied and shared model",
    wrong=[(0, "once"), (1920, "three"), (1980, "bias")],
)
def _grade_untied(answer: Any) -> str | None:
    extra = float(answer)
    matrix = 60 * 32  # one vocab x d_model matrix
    if extra == 2 * matrix:
        return None
    if extra == 0:
        return (
            "Zero is what a count gives that sees a shared tensor under "
            "each of its names: state_dict() lists the tied matrix three "
            "times (source, target, generator), so both models look the "
            "same size. Count each tensor once, as model.parameters() does."
        )
    if extra == matrix:
        return (
            "That is one 60 x 32 matrix. Tied and shared, one matrix serves "
            "three uses; untied, there are three: the target gets its own "
            "embedding and the generator its own weight."
        )
    if extra in (matrix + 60, 2 * matrix + 60, 2 * matrix + 120):
        return (
            "The generator's bias (60 numbers) is there tied or untied: "
            "tying shares its weight only."
        )
    if extra < 0:
        return "The untied model is the larger one: untied minus tied."
    return (
        "Count each model with sum(p.numel() for p in m.parameters()) and "
        "subtract: only the vocab x d_model matrices differ."
    )


# %%
sizes = {"d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 1}
tied = make_model(60, 60, **sizes, tie_embeddings=True, share_embeddings=True)
# break it: the same model, tie_embeddings=False, share_embeddings=False
untied = ...
# your code: count the parameters of tied and of untied
answer = ...  # an int: how many more parameters untied has
check("ch6.untied", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch6.untied")
def _solve_untied() -> int:
    from transformer_lite.decoder import make_model

    sizes = {"d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 1}

    def count(tie: bool) -> int:
        model = make_model(
            60, 60, **sizes, tie_embeddings=tie, share_embeddings=tie
        )
        # parameters() yields a shared tensor once; state_dict() would
        # list it under each of its names
        return sum(p.numel() for p in model.parameters())

    # tied: one 60 x 32 matrix in three roles; untied: three matrices.
    # The two new ones are 2 * 60 * 32 = 3840; the generator's bias and
    # everything else are there either way.
    return count(False) - count(True)


# %%
check("ch6.untied", EXERCISES["ch6.untied"].solve())

# %% [markdown]
# (ex-ch6-cache)=
# ### Exercise 6.3: what the cache saves
#
# Greedy decoding generates 12 tokens (with an end token that never comes and `max_len=12`). Summed over all its
# steps, how many target positions go through the decoder with the cache (`use_cache=True`), and how many without
# it (`use_cache=False`)? Reason it out first, then count: the cell below hooks the decoder stack so that each call
# records how many positions it was given. Answer with a pair of ints, `(with_cache, without_cache)`, and check it
# with `"ch6.cache"`.


# %% tags=["export:exercises", "hide-input"]
@exercise(
    "ch6.cache",
    "target positions through the decoder for 12 greedy tokens",
    wrong=[
        ((78, 12), "swapped"),
        ((12, 144), "1 + 2"),
        ((11, 66), "start"),
        ((12, 12), "prefix"),
    ],
)
def _grade_cache(answer: Any) -> str | None:
    cached, recomputed = (float(n) for n in answer)
    if (cached, recomputed) == (78, 12):
        return "Those are swapped: the cache is what saves recomputing."
    if cached == 11 or recomputed == 66:
        return (
            "Count the start token: the first step feeds <s>, a position "
            "like any other. With the cache the 12 steps feed <s> and the "
            "first 11 tokens (the 12th is never fed back)."
        )
    if cached != 12:
        return (
            "With the cache each step feeds only its newest token: one "
            "position per step, 12 steps."
        )
    if recomputed == 144:
        return (
            "Step t does not run 12 positions, only its prefix so far: <s> "
            "and t - 1 tokens, t positions: 1 + 2 + ... + 12 in all."
        )
    if recomputed == 12:
        return (
            "Without the cache there are 12 calls too, but each runs the "
            "whole prefix again, not only its newest token."
        )
    if recomputed != 78:
        return (
            "Without the cache, step t runs the t positions of its prefix "
            "(<s> and t - 1 tokens): add them up over the 12 steps."
        )
    return None


# %%
positions = []  # how many target positions each decoder call was given
hook = model.decoder.register_forward_pre_hook(
    lambda module, args: positions.append(args[0].size(1))
)
# your code: greedy_decode(model, sources[:1], start, end_id=-1,
# max_len=12), with use_cache=True and with False; sum(positions) each
hook.remove()
answer = ...  # (with_cache, without_cache), e.g. (1, 1)
check("ch6.cache", answer)


# %% tags=["export:exercises", "hide-input"]
@solution("ch6.cache")
def _solve_cache() -> tuple[int, int]:
    import torch

    from transformer_lite.decoder import greedy_decode, make_model

    sizes = {"d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 1}
    model = make_model(40, 40, **sizes).eval()
    src = torch.tensor([[5, 6, 7, 8]])
    positions: list[int] = []  # positions given to each decoder call
    model.decoder.register_forward_pre_hook(
        lambda module, args: positions.append(args[0].size(1))
    )
    counts = []
    for use_cache in (True, False):
        positions.clear()
        # end_id=-1 is no token: always 12 steps
        greedy_decode(model, src, 1, -1, max_len=12, use_cache=use_cache)
        counts.append(sum(positions))
    # with the cache, each step feeds its newest token only: 12 x 1.
    # Without, step t runs its prefix, <s> and t - 1 tokens: 1 + 2 + ...
    # + 12 = 78, about n^2 / 2: the O(n^2) against O(n) of the chapter.
    return counts[0], counts[1]


# %%
check("ch6.cache", EXERCISES["ch6.cache"].solve())
