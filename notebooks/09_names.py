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
# # Names across the paper, this book, the Annotated Transformer, Hugging Face and PyTorch
#
# The same idea goes by five names. The paper writes $h$; this book `n_heads`; the Annotated Transformer `h`;
# Hugging Face `encoder_attention_heads`; PyTorch `num_heads` or `nhead`. Most differences are spelling. A few are
# **traps**: the same word with the opposite meaning (a mask's `True`), or two recipes that look equal and are not
# quite (a learning rate one step apart). This page is the look-up table, with every trap marked ⚠, and below it the
# cells that prove each mapping that can be run.
#
# The five sources:
#
# - **the paper**: Vaswani et al. (2017), "Attention Is All You Need"; its symbols and section numbers;
# - **this book**: the names `transformer_lite` exports (chapters 1 to 7; the {doc}`API reference <../book/api>`);
# - **the Annotated Transformer**: Harvard NLP's line-by-line implementation of the paper (Rush, 2018; revised in
#   2022 by Huang, Subramanian, Sum, Almubarak and Biderman), the code this book's reader studies beside the paper;
# - **Hugging Face**: the `transformers` library (version 5.24, as pinned here). Names differ from model to model; the
#   table uses **Marian** (`MarianMTModel`), an encoder-decoder for translation like the paper's, and gives BERT's name
#   where many readers will have met that one first;
# - **PyTorch**: `torch.nn` (`nn.MultiheadAttention`, `nn.Transformer` and its layers) and `torch.nn.functional`.
#
# The Chinese terms are in the {doc}`glossary <../book/glossary>`. B is the batch, S the source length, T the target
# length, V the vocabulary size.

# %% [markdown]
# ## Attention and masks
#
# Each topic has two tables: the paper, this book and the Annotated Transformer; then this book's name again, beside
# Hugging Face's and PyTorch's.
#
# | concept (paper) | this book | Annotated Transformer |
# |---|---|---|
# | attention (§3.2.1) | `scaled_dot_product_attention` | `attention` |
# | multi-head attention (§3.2.2) | `MultiHeadAttention` | `MultiHeadedAttention` |
# | heads, $h$ | `n_heads` | `h` |
# | $W^Q$, $W^K$, $W^V$, $W^O$ | `w_q`, `w_k`, `w_v`, `w_o` | `linears[0]` to `linears[3]` |
# | attention weights | returned with `need_weights=True` | kept in `self.attn` |
# | padding mask | `padding_mask(src, pad_id)`: (B, 1, 1, S), True = attend | `(src != pad).unsqueeze(-2)`: (B, 1, S), True = attend |
# | causal mask (§3.2.3) | `causal_mask(T)`: True on and below the diagonal | `subsequent_mask(T)`: the same, as (1, T, T) |
# | target mask | `causal_mask(T) & padding_mask(tgt, pad_id)` | `Batch.make_std_mask` |
# | blocked score, $-\infty$ | −∞; zero weights for a row with nothing to attend to | ⚠ −1e9 |
# | cross-attention (§3.2.3) | `cross_attn`; `memory`, `memory_mask` | `src_attn`; `memory`, `src_mask` |
#
# | this book | Hugging Face (Marian) | PyTorch |
# |---|---|---|
# | `scaled_dot_product_attention` | `eager_attention_forward`, or SDPA | `F.scaled_dot_product_attention` |
# | `MultiHeadAttention` | `MarianAttention` | `nn.MultiheadAttention` |
# | `n_heads` | `encoder_attention_heads`, `decoder_attention_heads` | `num_heads`, `nhead` |
# | `w_q`, `w_k`, `w_v`, `w_o` | `q_proj`, `k_proj`, `v_proj`, `out_proj` | ⚠ `in_proj_weight` (three in one), `out_proj` |
# | batch first: (B, L, D) | batch first | ⚠ (L, B, D) unless `batch_first=True` |
# | `need_weights=True` | `output_attentions=True` | ⚠ `need_weights=True` by default, averaged over the heads |
# | `padding_mask`: True = attend | `attention_mask`: (B, S), 1 = attend | ⚠ `key_padding_mask`: (B, S), **True = padding** |
# | `causal_mask(T)` | built inside the decoder | ⚠ `generate_square_subsequent_mask(T)`: 0 and −∞, to add; or `is_causal=True` |
# | a bool mask: True = attend | — | `F.scaled_dot_product_attention`: True = attend; ⚠ `nn.MultiheadAttention`: **True = blocked** |
# | target mask | `decoder_attention_mask`: padding only | `tgt_mask` and `tgt_key_padding_mask` |
# | −∞; zero weights for an empty row | `torch.finfo(dtype).min` (eager path) | −∞; ⚠ an empty row gives NaN |
# | `cross_attn`; `memory`, `memory_mask` | `encoder_attn`; `encoder_hidden_states`, `encoder_attention_mask` | `multihead_attn`; `memory`, `memory_key_padding_mask` |
#
# The traps, row by row:
#
# - **`in_proj_weight`**: PyTorch stores $W^Q$, $W^K$, $W^V$ stacked in one (3D, D) matrix; `MultiHeadAttention.from_torch`
#   (chapter 4) splits it.
# - **layout**: `nn.MultiheadAttention` and `nn.Transformer` take (length, batch, features) unless built with
#   `batch_first=True`; the other three are batch first.
# - **attention weights**: `nn.MultiheadAttention` computes and returns the weights unless told `need_weights=False`,
#   and averages them over the heads unless told `average_attn_weights=False`.
# - **padding mask**: this book, the Annotated Transformer and Hugging Face mark the tokens that *may be attended
#   to*; PyTorch's `key_padding_mask` marks the tokens to *ignore*. Convert with `~`: proven in {ref}`names-padding`.
# - **causal mask**: PyTorch's helper returns floats that are *added* to the scores (0 where allowed, −∞ where
#   blocked), not bools. Proven in {ref}`names-causal`.
# - **bool attention mask**: inside PyTorch itself the two functions disagree: `F.scaled_dot_product_attention`
#   takes True = may attend (the rule of this book), `nn.MultiheadAttention` takes True = blocked, for `attn_mask` as
#   for `key_padding_mask`.
# - **blocked score**: −1e9 and −∞ give the same weights wherever a row has something to attend to, and −1e9 does not
#   fit in float16. A row with nothing to attend to gets uniform weights from −1e9, NaN from a plain softmax over
#   −∞, zeros here. Proven in {ref}`names-minus-1e9`.

# %% [markdown]
# ## Layers and the model
#
# | concept (paper) | this book | Annotated Transformer |
# |---|---|---|
# | width, $d_{model}$ | `d_model` | `d_model`; `size` in a layer |
# | inner width, $d_{ff}$ | `d_ff` | `d_ff` |
# | layers, $N$ | `n_layers` (each stack) | `N` |
# | dropout, $P_{drop}$ | `dropout` | `dropout` |
# | all the sizes | `TransformerConfig` | the arguments of `make_model` |
# | feed-forward network (§3.3) | `FeedForward`: `w_1`, `w_2`, ReLU | `PositionwiseFeedForward`: `w_1`, `w_2`, ReLU |
# | residual and LayerNorm (§3.1) | `_sa_block`, `_ff_block`; `norm1` to `norm3` | ⚠ `SublayerConnection`: pre-norm |
# | post-norm or pre-norm | `norm_first=False`, the paper's post-norm | ⚠ pre-norm only |
# | LayerNorm | `nn.LayerNorm`, ε = 1e-5 | ⚠ its own `LayerNorm`: unbiased std, + 1e-6 |
# | $N$ layers | `nn.ModuleList`, each layer built fresh | ⚠ `clones`: deep copies |
# | embeddings × $\sqrt{d_{model}}$ (§3.4) | `TokenEmbedding` | `Embeddings` (`lut`) |
# | positional encoding (§3.5) | `PositionalEncoding`: sin, cos, sin, cos, ... | `PositionalEncoding` (`pe`): the same |
# | the encoder's output | `memory` | `memory` |
# | output layer and softmax | `generator`: logits | ⚠ `Generator`: log-probabilities |
# | shared embeddings (§3.4) | `tie_embeddings`, `share_embeddings` | — |
# | the whole model | `Transformer`, `make_model` | `EncoderDecoder`, `make_model` |
#
# | this book | Hugging Face (Marian) | PyTorch |
# |---|---|---|
# | `d_model` | `d_model` (BERT: `hidden_size`) | `d_model`; `embed_dim` |
# | `d_ff` | `encoder_ffn_dim`, `decoder_ffn_dim` (⚠ BERT: `intermediate_size`) | `dim_feedforward` |
# | `n_layers` | `encoder_layers`, `decoder_layers` | `num_encoder_layers`, `num_decoder_layers` |
# | `dropout` | `dropout`, `attention_dropout`, `activation_dropout` | `dropout` |
# | `TransformerConfig` | `MarianConfig` | the arguments of `nn.Transformer` |
# | `FeedForward`: `w_1`, `w_2`, ReLU | `fc1`, `fc2`; ⚠ `activation_function="gelu"` by default | `linear1`, `linear2`, `activation="relu"` |
# | `norm1` to `norm3` | `self_attn_layer_norm`, `encoder_attn_layer_norm`, `final_layer_norm` | `norm1` to `norm3` |
# | `norm_first=False` | post-norm only | `norm_first=False` |
# | `nn.LayerNorm` | `nn.LayerNorm` | `nn.LayerNorm` |
# | each layer built fresh | each layer built fresh | ⚠ `_get_clones`: deep copies |
# | `TokenEmbedding` | `embed_tokens` × `embed_scale`; ⚠ `scale_embedding=False` by default | — |
# | `PositionalEncoding` | ⚠ `MarianSinusoidalPositionalEmbedding`: all sines, then all cosines | — |
# | `memory` | `last_hidden_state`; ⚠ the decoder's `encoder_hidden_states` | `memory` |
# | `generator`: logits | `lm_head` + `final_logits_bias`: logits | — |
# | `tie_embeddings`, `share_embeddings` | `tie_word_embeddings`, `share_encoder_decoder_embeddings` | — |
# | `Transformer` | `MarianMTModel` | `nn.Transformer`, without embeddings or output layer |
#
# The traps:
#
# - **`intermediate_size`**, BERT's name for $d_{ff}$, is not Marian's: `MarianConfig(intermediate_size=...)` is
#   accepted without a word and changes nothing. Proven in {ref}`names-config`, with the other sizes.
# - **activation**: `MarianConfig` defaults to GELU; the paper, this book and PyTorch use ReLU.
# - **pre-norm**: the Annotated Transformer quotes the paper's post-norm formula but its `SublayerConnection` is
#   pre-norm, our `norm_first=True` ({doc}`chapter 5 <05_encoder>` builds both).
# - **LayerNorm**: the Annotated Transformer's divides by the unbiased standard deviation plus 1e-6;
#   `nn.LayerNorm` by $\sqrt{\text{biased variance} + 10^{-5}}$. Proven in {ref}`names-layers`.
# - **deep copies**: `clones` and PyTorch's `nn.TransformerEncoder` / `nn.TransformerDecoder` deep-copy the layer
#   they are given, so the copies start equal ({ref}`ch5-deepcopy`). The Annotated Transformer's `make_model` and
#   `nn.Transformer` re-initialise them afterwards; a stack built directly from `nn.TransformerEncoder` starts
#   with equal layers. Proven in {ref}`names-layers`.
# - **embedding scale**: Marian multiplies the embeddings by $\sqrt{d_{model}}$ only with `scale_embedding=True`.
# - **positional encoding**: Marian's table holds the same numbers in another order of the features: all the sines
#   first, then all the cosines. Proven in {ref}`names-layers`.
# - **`encoder_hidden_states`** is the encoder's output where the decoder takes it as an argument, but in a model's
#   *output* it is the tuple of every layer's hidden states (with `output_hidden_states=True`); the encoder's output
#   is `encoder_last_hidden_state` there. Proven in {ref}`names-config`.
# - **`Generator`** ends with `log_softmax`, so the Annotated Transformer's loss takes log-probabilities; this
#   book's `generator` and Hugging Face's `lm_head` give logits, which `F.cross_entropy` takes.

# %% [markdown]
# ## Training and decoding
#
# | concept (paper) | this book | Annotated Transformer |
# |---|---|---|
# | decoder input and target (teacher forcing) | `tgt_in`, `tgt_out` | `Batch.tgt`, `Batch.tgt_y` |
# | start token | `BOS`, `start_id` | `start_symbol` |
# | positions the loss skips | `pad_id` | `padding_idx` |
# | label smoothing, $\epsilon_{ls}$ (§5.4) | `F.cross_entropy(label_smoothing=)`, `label_smoothed_loss` | ⚠ `LabelSmoothing`: KL divergence, ε/(V − 2) |
# | learning rate (§5.3) | `noam_lambda(d_model, warmup)` | ⚠ `rate(step, model_size, factor, warmup)`: one step later |
# | key/value cache | `KVCache`, `cache=` | — (recomputes the prefix) |
# | greedy decoding | `greedy_decode` | `greedy_decode` |
# | beam search (§6.1) | `beam_search(length_penalty=0.6)`: ÷ ((5 + len)/6)^α | — |
#
# | this book | Hugging Face (Marian) | PyTorch |
# |---|---|---|
# | `tgt_in`, `tgt_out` | `decoder_input_ids`: `labels` shifted right | — |
# | `BOS`, `start_id` | `decoder_start_token_id`; ⚠ Marian's is the pad token | — |
# | `pad_id` | ⚠ `labels` set to −100 | `ignore_index`, −100 by default |
# | `label_smoothed_loss` | `label_smoothing_factor` of the `Trainer` | `F.cross_entropy(label_smoothing=)` |
# | `noam_lambda` | ⚠ `get_inverse_sqrt_schedule`: one step later, 0 at the first | `LambdaLR` |
# | `KVCache`, `cache=` | `past_key_values`; ⚠ `cache` in 5.24 | — |
# | `greedy_decode`; `min_new_tokens=`, `banned=`, `return_scores=True` | `generate(num_beams=1)`; `min_new_tokens=`, `suppress_tokens=`, `output_scores=True` | — |
# | `beam_search`: ÷ ((5 + len)/6)^α; `length_penalty_form="power"`: ÷ len^α | ⚠ `generate(num_beams=4, length_penalty=1.0)`: ÷ len^α | — |
#
# The traps:
#
# - **start token**: Marian starts the decoder with its pad token (`decoder_start_token_id` equals `pad_token_id` in
#   `MarianConfig`'s defaults, checked in {ref}`names-config`): a decoder mask computed as "not the pad token" would
#   hide the start token too.
# - **−100**: Hugging Face's models skip the positions whose label is −100 (the default `ignore_index` of
#   `nn.CrossEntropyLoss`), not the pad token; a batch of labels padded with the pad id is trained on its padding.
# - **label smoothing**: the Annotated Transformer's target gives ε/(V − 2) to each token other than the right one and
#   the pad token; PyTorch's gives ε/V to every token, the right one and the pad token included. The KL-divergence
#   form itself only subtracts a constant; the different target changes the gradients. Proven in
#   {ref}`names-label-smoothing`.
# - **learning rate**: the same formula, counted from a different step. Proven in {ref}`names-schedule`.
# - **cache**: in the `transformers` 5.24 this book pins, the argument and output field `past_key_values` of older
#   versions is called `cache` (the old argument name still works, with a warning).
# - **length penalty**: the same name for two formulas: this book follows Wu et al. (2016) as the paper did
#   (§6.1: beam size 4, α = 0.6); Hugging Face divides the log-probability by the length to the power α (default 1).
#
# The rest of the page proves the mappings that code can check, each with a control that fails.

# %%
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

# Hugging Face's Marian, built from a config with random weights: nothing is
# downloaded. The import takes several seconds; it is done once, here.
from transformers import MarianConfig, MarianMTModel
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.optimization import get_inverse_sqrt_schedule

from transformer_lite import (
    Encoder,
    EncoderLayer,
    MultiHeadAttention,
    PositionalEncoding,
    Transformer,
    TransformerConfig,
    causal_mask,
    make_model,
    noam_lambda,
    padding_mask,
    scaled_dot_product_attention,
    smoothed_target_entropy,
)
from transformer_lite.data import PAD
from transformer_lite.helpers import seeded_randint, seeded_randn

# Everything here runs on the CPU, even where get_device() would find a GPU:
# this page compares conventions, not speed, and on the CPU every number it
# prints is the same on every machine.

# %% [markdown]
# (names-config)=
# ## The sizes, by name
#
# A dictionary turns this book's `TransformerConfig` into Hugging Face's `MarianConfig`. Marian keeps one copy of
# each size per stack, and names dropout three times (on the sublayers' outputs, on the attention weights and after
# the activation), where this book's one `dropout` covers all three. Two settings have no field here and are set to
# the paper's values: ReLU, and embeddings scaled by $\sqrt{d_{model}}$. The Marian model built from it must then
# have our sizes, which the cell reads back from its modules, not from the config.

# %% tags=["export:marian"]
# this book's config field: Marian's (one per stack where Marian has two)
MARIAN_CONFIG = {
    "d_model": ("d_model",),
    "n_heads": ("encoder_attention_heads", "decoder_attention_heads"),
    "d_ff": ("encoder_ffn_dim", "decoder_ffn_dim"),
    "n_layers": ("encoder_layers", "decoder_layers"),
    "dropout": ("dropout", "attention_dropout", "activation_dropout"),
    "max_len": ("max_position_embeddings",),
    "pad_id": ("pad_token_id",),
    "tie_embeddings": ("tie_word_embeddings",),
    "share_embeddings": ("share_encoder_decoder_embeddings",),
}

# %%
ours = TransformerConfig(
    d_model=16, n_heads=4, d_ff=32, n_layers=2, dropout=0.0, max_len=64
)
assert set(MARIAN_CONFIG) | {"norm_first", "eps"} == {
    f.name for f in dataclasses.fields(TransformerConfig)
}  # every field is mapped, but the two Marian cannot change
vocab = 20
marian_settings = {
    **{
        m: getattr(ours, f)
        for f, names in MARIAN_CONFIG.items()
        for m in names
    },
    "vocab_size": vocab,
    "activation_function": "relu",  # Marian's default is "gelu"
    "scale_embedding": True,  # Marian's default is False
    # the special tokens must lie in this small vocabulary
    **{"bos_token_id": 1, "decoder_start_token_id": 1},
    **{"eos_token_id": 2, "forced_eos_token_id": 2},
}
torch.manual_seed(0)
marian = MarianMTModel(MarianConfig(**marian_settings)).eval()

# read the sizes back from the modules that were built
encoder_layers = marian.model.encoder.layers
built = {
    "d_model": marian.model.encoder.embed_tokens.embedding_dim,
    "n_heads": encoder_layers[0].self_attn.num_heads,
    "d_ff": encoder_layers[0].fc1.out_features,
    "n_layers": len(encoder_layers),
    "max_len": marian.model.encoder.embed_positions.num_embeddings,
}
print("Marian's modules:", built)
assert built == {name: getattr(ours, name) for name in built}
assert len(marian.model.decoder.layers) == ours.n_layers
assert marian.model.decoder.layers[0].fc1.out_features == ours.d_ff

# %% [markdown]
# The control: BERT's names. `hidden_size` and `num_attention_heads` are aliases on `MarianConfig`, but
# `num_attention_heads` reaches only the encoder, and `intermediate_size` is not Marian's at all: it is stored as an
# extra attribute, without an error, and the feed-forward layers keep Marian's default width.

# %%
without_ffn = {
    k: v for k, v in marian_settings.items() if not k.endswith("ffn_dim")
}
bert_names = MarianConfig(
    **without_ffn,
    intermediate_size=ours.d_ff,  # BERT's name for d_ff
)
print(
    f"intermediate_size={bert_names.intermediate_size} gives",
    f"encoder_ffn_dim={bert_names.encoder_ffn_dim}",
)
assert bert_names.encoder_ffn_dim != ours.d_ff
aliases = MarianConfig(
    **{
        k: v
        for k, v in marian_settings.items()
        if not k.endswith("attention_heads")
    },
    num_attention_heads=ours.n_heads,
)
print(
    f"num_attention_heads={ours.n_heads} gives",
    f"encoder_attention_heads={aliases.encoder_attention_heads},",
    f"decoder_attention_heads={aliases.decoder_attention_heads}",
)
assert aliases.hidden_size == ours.d_model
assert aliases.encoder_attention_heads == ours.n_heads
assert aliases.decoder_attention_heads != ours.n_heads  # Marian's default
default = MarianConfig()  # Marian's defaults: the start token is the pad
start, pad_token = default.decoder_start_token_id, default.pad_token_id
print(f"MarianConfig(): decoder_start_token_id={start}", end=", ")
print(f"pad_token_id={pad_token}")
assert default.decoder_start_token_id == default.pad_token_id

# %% [markdown]
# The parameters of a layer have names too. Copying a Marian encoder layer's weights into this book's `EncoderLayer`
# by the dictionary below gives the same outputs; `load_state_dict` (strict by default) would refuse a name left
# out. The control is Marian's default activation, GELU: the same weights, other outputs.

# %% tags=["export:marian"]
_ATTENTION = {"w_q": "q_proj", "w_k": "k_proj", "w_v": "v_proj"}
_ATTENTION["w_o"] = "out_proj"
MARIAN_LAYERS = {  # a layer's modules: this book's name, Marian's
    "encoder": {
        **{f"self_attn.{a}": f"self_attn.{b}" for a, b in _ATTENTION.items()},
        "ff.w_1": "fc1",
        "ff.w_2": "fc2",
        "norm1": "self_attn_layer_norm",
        "norm2": "final_layer_norm",
    },
    "decoder": {
        **{f"self_attn.{a}": f"self_attn.{b}" for a, b in _ATTENTION.items()},
        **{
            f"cross_attn.{a}": f"encoder_attn.{b}"
            for a, b in _ATTENTION.items()
        },
        "ff.w_1": "fc1",
        "ff.w_2": "fc2",
        "norm1": "self_attn_layer_norm",
        "norm2": "encoder_attn_layer_norm",
        "norm3": "final_layer_norm",
    },
}


# %%
theirs = encoder_layers[0]
weights = theirs.state_dict()
layer = EncoderLayer(ours.d_model, ours.n_heads, ours.d_ff).eval()
layer.load_state_dict(
    {
        f"{name}.{p}": weights[f"{marian_name}.{p}"]
        for name, marian_name in MARIAN_LAYERS["encoder"].items()
        for p in ("weight", "bias")
    }
)
gelu_settings = {**marian_settings, "activation_function": "gelu"}
gelu = MarianMTModel(MarianConfig(**gelu_settings)).model.encoder.layers[0]
gelu.eval().load_state_dict(weights)

x = seeded_randn(3, 5, ours.d_model, seed=1)  # (B, S, D)
with torch.no_grad():
    ours_out, marian_out = layer(x), theirs(x, attention_mask=None)
    gelu_out = gelu(x, attention_mask=None)
torch.testing.assert_close(ours_out, marian_out)
difference = (gelu_out - ours_out).abs().max().item()
print(f"this book vs Marian, ReLU: equal; with GELU: up to {difference:.3f}")
assert difference > 1e-3

# %% [markdown]
# And the outputs. In a `MarianMTModel`'s output, `encoder_hidden_states` is a tuple, the embeddings and then each
# encoder layer's output, and the encoder's output (this book's `memory`) is `encoder_last_hidden_state`; the cache
# is the field `cache`, no longer `past_key_values`.

# %%
src = torch.tensor([[5, 6, 7, 8, 0], [9, 10, 11, 0, 0]])  # (B, S), 0 = pad
with torch.no_grad():
    out = marian(
        input_ids=src,
        attention_mask=(src != ours.pad_id).long(),
        decoder_input_ids=torch.tensor([[1, 12], [1, 13]]),
        output_hidden_states=True,
    )
states = out.encoder_hidden_states
print(f"encoder_hidden_states: a {type(states).__name__} of {len(states)}")
assert len(states) == ours.n_layers + 1
torch.testing.assert_close(states[-1], out.encoder_last_hidden_state)
fields = {f.name for f in dataclasses.fields(Seq2SeqLMOutput)}
assert "cache" in fields and "past_key_values" not in fields

# %% [markdown]
# (names-padding)=
# ## One padding mask, three spellings
#
# This book's `padding_mask` is True where a token may be attended to; Hugging Face's `attention_mask` is 1 there
# (the Transformers documentation's glossary describes it as marking, with 1, the tokens the model should attend to
# and, with 0, the padding); PyTorch's `key_padding_mask` is True where a token must be *ignored*. So from one bool
# mask `real` (B, S): `real.long()` for Hugging Face and `~real` for PyTorch.
#
# What "right" means is a property that can fail: the outputs at the real positions must not change when the tokens
# at the padded positions change. The changed batch puts other tokens where the padding was, under the same mask.
# Every sentence below has some padding: under a mask read the wrong way round, a sentence without any would have
# nothing to attend to, and the control would print NaN instead of a number. Three modules are checked: this book's encoder, PyTorch's
# `nn.MultiheadAttention` (over an embedding of the tokens) and the tiny Marian's encoder. The controls pass each
# library the mask in another library's convention, or none.

# %%
pad = ours.pad_id
tokens = torch.tensor(
    [[5, 6, 7, 8, pad], [9, 10, 11, pad, pad], [12, pad, pad, pad, pad]]
)
changed = tokens.masked_fill(tokens == pad, 13)  # other tokens at the pads
mask = padding_mask(tokens, pad)  # (B, 1, 1, S), True = attend
real = mask[:, 0, 0]  # (B, S): the same, as Hugging Face and PyTorch want it
print("real:", real.int().tolist())

torch.manual_seed(0)
book = Transformer(vocab, vocab, ours).eval()
mha = nn.MultiheadAttention(ours.d_model, ours.n_heads, batch_first=True)
mha.eval()
table = seeded_randn(vocab, ours.d_model, seed=2)  # token embeddings
hf_encoder = marian.get_encoder()


def torch_mha(t, key_padding_mask):
    x = table[t]  # (B, S, D)
    return mha(x, x, x, key_padding_mask=key_padding_mask)[0]


runs = {  # each: tokens -> (B, S, D) outputs
    "this book, mask": lambda t: book.encode(t, mask),
    "nn.MHA, ~real": lambda t: torch_mha(t, ~real),
    "Marian, real.long()": lambda t: (
        hf_encoder(input_ids=t, attention_mask=real.long()).last_hidden_state
    ),
    "control: nn.MHA, real": lambda t: torch_mha(t, real),
    "control: Marian, (~real).long()": lambda t: (
        hf_encoder(
            input_ids=t, attention_mask=(~real).long()
        ).last_hidden_state
    ),
    "control: Marian, no mask": lambda t: (
        hf_encoder(input_ids=t).last_hidden_state
    ),
}
print("largest change at the real positions when the pads change:")
with torch.no_grad():
    for name, run in runs.items():
        change = (run(tokens) - run(changed))[real].abs().max().item()
        print(f"  {name:32} {change:.2g}")
        assert (change < 1e-6) == (not name.startswith("control"))

# %% [markdown]
# Invariance says each module ignores the padding; it does not yet say that this book and PyTorch compute the same
# thing. `MultiHeadAttention.from_torch` (chapter 4) copies `nn.MultiheadAttention`'s weights: with our mask on one
# side and `~real` on the other, the outputs are equal, and with the mask unconverted they are not.

# %%
ours_mha = MultiHeadAttention.from_torch(mha).eval()
x = table[tokens]  # (B, S, D)
with torch.no_grad():
    torch.testing.assert_close(
        ours_mha(x, x, x, mask=mask), torch_mha(tokens, ~real)
    )
    wrong = torch_mha(tokens, real)  # the mask passed as it is
    gap = (ours_mha(x, x, x, mask=mask) - wrong)[real].abs().max().item()
print("this book = nn.MultiheadAttention with ~real")
print(f"with real (unconverted): apart by {gap:.3f}")
assert gap > 1e-3

# %% [markdown]
# (names-causal)=
# ## The causal mask
#
# The Annotated Transformer's `subsequent_mask(size)` zeroes the part above the diagonal and compares with 0: True on
# and below the diagonal, with a leading dimension of 1. Re-typed here, it equals this book's `causal_mask` (position
# $t$ sees $1 \ldots t$, itself included: {ref}`ch3-causal`). PyTorch's `nn.Transformer.generate_square_subsequent_mask`
# is the same pattern as floats to add, 0 and −∞. The control is the reading "$t$ sees $1 \ldots t-1$", which hides
# the diagonal.


# %%
def subsequent_mask(size: int) -> torch.Tensor:
    """The Annotated Transformer's causal mask, re-typed: (1, size, size),
    True on and below the diagonal."""
    above = torch.triu(torch.ones(1, size, size), diagonal=1)
    return above == 0


for size in (1, 4, 9):
    ours_causal = causal_mask(size)  # (T, T), True = may attend
    assert torch.equal(subsequent_mask(size), ours_causal[None])
    additive = nn.Transformer.generate_square_subsequent_mask(size)
    blocked = torch.zeros(size, size).masked_fill(~ours_causal, -math.inf)
    assert torch.equal(additive, blocked)
hides_diagonal = torch.ones(4, 4, dtype=torch.bool).tril(diagonal=-1)
assert not torch.equal(hides_diagonal, causal_mask(4))
print(
    "causal_mask(4) = subsequent_mask(4)[0]:", causal_mask(4).int().tolist()
)
print("the t-1 reading hides the diagonal:   ", hides_diagonal.int().tolist())

# %% [markdown]
# Given to `nn.MultiheadAttention` as a bool `attn_mask`, the causal mask must be inverted too. Unconverted, every
# query sees only its *future*, and the last query, which may see everything, sees nothing: NaN.

# %%
T = 4
y = seeded_randn(1, T, ours.d_model, seed=3)  # (1, T, D)
with torch.no_grad():
    ours_causal_out = ours_mha(y, y, y, mask=causal_mask(T))
    right = mha(y, y, y, attn_mask=~causal_mask(T))[0]
    unconverted = mha(y, y, y, attn_mask=causal_mask(T))[0]
torch.testing.assert_close(ours_causal_out, right)
equal_rows = torch.isclose(unconverted, ours_causal_out, atol=1e-5).all(-1)
nan_rows = unconverted.isnan().any(-1)
print("unconverted, rows equal to ours:", equal_rows[0].tolist())
print("unconverted, rows with NaN:     ", nan_rows[0].tolist())
assert not equal_rows.any() and nan_rows[0].tolist() == [False] * 3 + [True]

# %% [markdown]
# (names-minus-1e9)=
# ## −1e9 or −∞
#
# The Annotated Transformer fills blocked scores with −1e9 before its softmax; this book fills them with −∞ and gives
# a row that may attend to nothing all-zero weights ({doc}`chapter 3 <03_masks>`, section "A query with nothing to
# attend to", has the whole story). On a left-padded sentence under the causal mask, the first two rows (pads that
# see only pads) have nothing to attend to. On every other row the weights are equal; on those two, −1e9 gives
# uniform weights and this book zeros, and that difference is the control.

# %%
left_padded = torch.tensor([[pad, pad, 4, 7, 3]])
both = causal_mask(5) & padding_mask(left_padded, pad)  # (1, 1, 5, 5)
q, k, v = (seeded_randn(1, 1, 5, 8, seed=s) for s in (4, 5, 6))
_, ours_weights = scaled_dot_product_attention(q, k, v, mask=both)
scores = q @ k.transpose(-2, -1) / math.sqrt(8)
annotated = scores.masked_fill(both == 0, -1e9).softmax(dim=-1)

has_keys = both.any(-1)[0, 0]  # (5,): rows with something to attend to
print("rows with something to attend to:", has_keys.tolist())
torch.testing.assert_close(
    annotated[..., has_keys, :], ours_weights[..., has_keys, :]
)
for name, w in [("-1e9", annotated), ("this book", ours_weights)]:
    first = [round(p, 2) for p in w[0, 0, 0].tolist()]
    print(f"row 0 (nothing to attend to), {name:9}: {first}")
assert not torch.allclose(annotated[0, 0, 0], ours_weights[0, 0, 0])

try:  # -1e9 is beyond float16's range (largest magnitude 65504)
    scores.half().masked_fill(both == 0, -1e9)
except RuntimeError:
    print(
        "float16: -1e9 cannot be stored; finfo(float16).min =",
        torch.finfo(torch.float16).min,
    )
else:
    raise AssertionError("expected float16 to refuse -1e9")

# %% [markdown]
# Hugging Face's eager attention adds `torch.finfo(dtype).min`, the most negative number the dtype holds, which fits
# every dtype.
#
# (names-layers)=
# ## Three layer-level traps
#
# **Positional encodings, in another order.** Marian's sinusoidal table holds the paper's numbers with the sines in
# the first half of the features and the cosines in the second; this book and the Annotated Transformer alternate
# them (sine in the even features, cosine in the odd). A model trained from scratch does not care; moving weights or
# encodings between the two does. The control is the table compared feature by feature, without reordering.

# %%
ours_table = PositionalEncoding(ours.d_model, max_len=ours.max_len).table
marian_table = marian.model.encoder.embed_positions.weight  # (max_len, D)
halves = torch.cat([ours_table[:, 0::2], ours_table[:, 1::2]], dim=-1)
torch.testing.assert_close(marian_table, halves)
assert not torch.allclose(marian_table, ours_table)
print(
    "position 1, this book:",
    [round(p, 2) for p in ours_table[1, :4].tolist()],
    "... Marian:",
    [round(p, 2) for p in marian_table[1, :4].tolist()],
)

# %% [markdown]
# **The Annotated Transformer's LayerNorm** computes $(x - \mu) / (\sigma + \epsilon)$ with the *unbiased* standard
# deviation (dividing by $D - 1$) and $\epsilon = 10^{-6}$ outside the root; `nn.LayerNorm` divides by
# $\sqrt{\mathrm{Var}(x) + \epsilon}$ with the biased variance (dividing by $D$) and $\epsilon = 10^{-5}$. The
# outputs differ by the factor $\sqrt{(D-1)/D}$: 3% at $D = 16$, 0.1% at $D = 512$. The learned gain absorbs it in
# training, but weights moved from one to the other do not give the same outputs. The control is the same formula
# with the biased deviation, which matches `nn.LayerNorm` to within the two ε.


# %%
def annotated_layer_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The Annotated Transformer's LayerNorm with gain 1 and bias 0,
    re-typed."""
    mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True)
    return (x - mean) / (std + eps)


for width in (16, 512):
    x = seeded_randn(8, width, seed=7) * 3 + 1  # (N, D)
    theirs_ln, torch_ln = annotated_layer_norm(x), F.layer_norm(x, (width,))
    factor = math.sqrt((width - 1) / width)
    torch.testing.assert_close(theirs_ln, torch_ln * factor)
    assert not torch.allclose(theirs_ln, torch_ln)
    # the control: the biased deviation gives nn.LayerNorm's outputs
    centred = x - x.mean(-1, keepdim=True)
    biased = centred / centred.std(-1, keepdim=True, correction=0)
    torch.testing.assert_close(biased, torch_ln, rtol=1e-4, atol=1e-4)
    ratio = (theirs_ln.norm() / torch_ln.norm()).item()
    print(f"D={width:3}: Annotated / nn.LayerNorm = {ratio:.4f}")

# %% [markdown]
# **Deep copies in PyTorch's stacks.** `nn.TransformerEncoder(layer, num_layers)` deep-copies `layer`, as the
# Annotated Transformer's `clones` does, so its layers start equal. `nn.Transformer` re-initialises every matrix after
# building its stacks, as the Annotated Transformer's `make_model` does; this book builds each layer fresh.

# %%
torch.manual_seed(0)
sizes = (ours.d_model, ours.n_heads, ours.d_ff)
torch_stack = nn.TransformerEncoder(
    nn.TransformerEncoderLayer(*sizes, batch_first=True),
    num_layers=2,
    enable_nested_tensor=False,
)
full = nn.Transformer(
    *sizes[:2],
    num_encoder_layers=2,
    num_decoder_layers=2,
    dim_feedforward=ours.d_ff,
    batch_first=True,
)
fresh = Encoder(*sizes, n_layers=2)
stacks = {
    "nn.TransformerEncoder": [m.linear1.weight for m in torch_stack.layers],
    "nn.Transformer": [m.linear1.weight for m in full.encoder.layers],
    "this book's Encoder": [m.ff.w_1.weight for m in fresh.layers],
}
for name, (first, second) in stacks.items():
    print(
        f"{name:21}: layers 1 and 2 start equal: {torch.equal(first, second)}"
    )
assert [torch.equal(*w) for w in stacks.values()] == [True, False, False]

# %% [markdown]
# (names-label-smoothing)=
# ## Label smoothing as a KL divergence
#
# The Annotated Transformer computes label smoothing as `nn.KLDivLoss(reduction="sum")` between the model's
# log-probabilities and a smoothed target $q$, divided by the number of real tokens. Since
# $\mathrm{KL}(q \,\|\, p) = -\sum_v q_v \log p_v - H(q)$, the KL form is the cross-entropy against the same $q$
# minus its entropy $H(q)$, a constant: the loss is lower by $H(q)$ (its floor is 0, not $H(q)$ as in
# {ref}`ch7-loss-floor`) and the gradients are the same.
#
# But its $q$ is not PyTorch's. It gives $1 - \epsilon$ to the right token, $\epsilon / (V - 2)$ to each token that
# is neither the right one nor the pad token, and 0 to the pad token; PyTorch's `label_smoothing=` gives
# $1 - \epsilon + \epsilon / V$ to the right token and $\epsilon / V$ to every other, the pad token included
# ({ref}`ch7-label-smoothing`). The two targets below are re-typed from those definitions: with PyTorch's target,
# the KL form plus `smoothed_target_entropy` equals `F.cross_entropy(label_smoothing=0.1)` for any logits and the
# gradients agree; with the Annotated Transformer's target (the control), the gradients differ, by exactly the
# difference of the two targets, whatever the model predicts.


# %%
def smoothed(
    target: torch.Tensor, vocab: int, eps: float, pad_id: int, annotated: bool
) -> torch.Tensor:
    """The smoothed target q (B, T, V): the Annotated Transformer's
    (annotated=True) or PyTorch's; zero rows where the target is padding."""
    if annotated:  # eps spread over all but the right token and <pad>
        q = torch.full((*target.shape, vocab), eps / (vocab - 2))
        q.scatter_(-1, target[..., None], 1 - eps)
        q[..., pad_id] = 0.0
    else:  # eps spread over every token
        q = torch.full((*target.shape, vocab), eps / vocab)
        q.scatter_add_(-1, target[..., None], torch.full_like(q, 1 - eps))
    return q.masked_fill((target == pad_id)[..., None], 0.0)


def kl_loss(logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Summed KL(q || p) over the positions, divided by the real tokens
    (the Annotated Transformer's LabelSmoothing and SimpleLossCompute)."""
    log_probs = logits.log_softmax(-1)  # what its Generator returns
    real_tokens = (q.sum(-1) > 0).sum()
    return F.kl_div(log_probs, q, reduction="sum") / real_tokens


# %%
V, eps = 11, 0.1
target = seeded_randint(1, V, 4, 6, seed=8)  # (B, T), no pad yet
target[1, 4:] = pad
target[3, 2:] = pad
floor = smoothed_target_entropy(V, eps)


def loss_and_grad(loss_fn, logits):
    logits = logits.clone().requires_grad_()
    loss = loss_fn(logits)
    loss.backward()
    return loss.item(), logits.grad


def cross_entropy(logits):
    return F.cross_entropy(
        logits.transpose(1, 2), target, ignore_index=pad, label_smoothing=eps
    )


q_torch = smoothed(target, V, eps, pad, annotated=False)
q_annotated = smoothed(target, V, eps, pad, annotated=True)
real_tokens = (target != pad).sum()
for seed in (9, 10):  # two different models' logits
    logits = seeded_randn(4, 6, V, seed=seed) * 2  # (B, T, V)
    ce, ce_grad = loss_and_grad(cross_entropy, logits)
    kl, kl_grad = loss_and_grad(lambda z: kl_loss(z, q_torch), logits)
    at, at_grad = loss_and_grad(lambda z: kl_loss(z, q_annotated), logits)
    assert math.isclose(kl + floor, ce, rel_tol=1e-5)
    torch.testing.assert_close(kl_grad, ce_grad)
    # the control: another target, other gradients, apart by a constant
    gap = (at_grad - ce_grad).abs().max().item()
    torch.testing.assert_close(
        at_grad - ce_grad, (q_torch - q_annotated) / real_tokens
    )
    assert gap > 1e-4
    print(
        f"logits {seed}: cross-entropy {ce:.4f} = KL {kl:.4f} + {floor:.4f}"
    )
    print(
        f"  the Annotated Transformer's target: gradients apart by {gap:.5f}"
    )

# %% [markdown]
# The gap is small, at most ε/V divided by the number of real tokens, and it does not depend on the logits: the
# Annotated Transformer's loss trains the model towards its own target, one that gives `<pad>` probability 0. Its
# reported loss is a KL divergence, lower than a cross-entropy by the entropy of its target, so its numbers cannot be
# compared with this book's.
#
# (names-schedule)=
# ## The learning-rate schedule, one step apart
#
# The paper's rate at step $s$ is $d_{model}^{-0.5} \min(s^{-0.5}, s \cdot warmup^{-1.5})$, with $s$ counted from 1.
# PyTorch's `LambdaLR` calls the schedule with the number of optimizer steps taken so far, starting at 0, so each
# implementation decides what step 0 means:
#
# - this book's `noam_lambda` uses the paper's step $n + 1$ at call $n$ ({ref}`ch7-schedule`);
# - the Annotated Transformer's `rate` replaces step 0 by step 1 and otherwise uses step $n$: its first two updates
#   use the same rate, and from then on it is one step behind;
# - Hugging Face's `get_inverse_sqrt_schedule` (the `Trainer`'s `"inverse_sqrt"`) rises linearly from **0** over
#   `num_warmup_steps`, then decays as $1/\sqrt{n}$; with the optimizer's rate set to the paper's peak,
#   $(d_{model} \cdot warmup)^{-0.5}$, it equals the paper's formula at step $n$, except that its first update has
#   rate 0 and changes nothing.
#
# The Annotated Transformer's `rate` is re-typed below; the control is comparing it with ours at the same call.


# %%
def rate(step: int, model_size: int, factor: float, warmup: int) -> float:
    """The Annotated Transformer's schedule, re-typed: step 0 counts as 1."""
    step = max(step, 1)
    return factor * model_size**-0.5 * min(step**-0.5, step * warmup**-1.5)


d_model, warmup = 512, 4000


def paper(s: int) -> float:
    """The paper's formula (§5.3), s counted from 1."""
    return d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)


book_rate = noam_lambda(d_model, warmup)
optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
hf_factor = get_inverse_sqrt_schedule(optimizer, warmup).lr_lambdas[0]
peak = (d_model * warmup) ** -0.5


def hf_rate(n: int) -> float:
    return peak * hf_factor(n)


calls = range(20_000)
assert all(math.isclose(book_rate(n), paper(n + 1)) for n in calls)
assert all(
    math.isclose(rate(n, d_model, 1, warmup), paper(n)) for n in calls[1:]
)
assert all(math.isclose(hf_rate(n), paper(n)) for n in calls[1:])
assert rate(0, d_model, 1, warmup) == paper(1) and hf_rate(0) == 0.0
same_call = [
    math.isclose(rate(n, d_model, 1, warmup), book_rate(n)) for n in calls
]
print("calls where the Annotated Transformer's rate equals ours:", end=" ")
print([n for n in calls if same_call[n]])
assert same_call == [True] + [False] * (len(calls) - 1)  # the control

schedules = {
    "this book": book_rate,
    "Annotated": lambda n: rate(n, d_model, 1, warmup),
    "Hugging Face": hf_rate,
}
print("LambdaLR call n:" + "".join(f"{n:>10}" for n in range(4)), end="")
print("  highest at")
for name, schedule in schedules.items():
    values = "".join(f"{schedule(n):10.2e}" for n in range(4))
    highest = max(calls, key=schedule)
    print(f"{name:15}{values}  call {highest}")


# %% [markdown]
# One step in 100,000 does not change a trained model; what matters is knowing which step a printed rate belongs to,
# and that Hugging Face's first update is spent with a rate of 0.

# %% [markdown]
# (names-convert)=
# ## A whole model, converted both ways
#
# The dictionaries above, completed, are a converter. `to_marian(model)` builds the Hugging Face `MarianMTModel`
# with this book's sizes and copies every weight into it; `from_marian(marian)` goes the other way, for any Marian
# model this book's code can express. (Not yet the published opus-mt translation models: they use the swish
# activation, which this book's feed-forward layer does not have, and `from_marian` says so. Nothing on this page
# downloads anything.) Three things need care:
#
# - **positions**: Marian stores its table as weights, in its own feature order. `to_marian` writes this book's
#   table into them; `from_marian` copies Marian's table into the model's buffer, so a converted model adds the
#   same numbers to the same features;
# - **the output bias**: this book's generator has a bias; Marian's is a buffer, `final_logits_bias`;
# - **what Marian cannot be**: pre-norm (`norm_first=True`), another LayerNorm epsilon; and what this book cannot
#   be: GELU, unscaled embeddings, stacks of different sizes. Each is refused with an error that names it.


# %% tags=["export:marian", "hide-input"]
from transformer_lite.decoder import Transformer, TransformerConfig


def _transformers():
    """Hugging Face's transformers, or an ImportError that says so."""
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "the Marian converter needs Hugging Face's transformers: "
            "pip install transformers"
        ) from None
    return transformers


def _weight_names(n_layers: int) -> dict[str, str]:
    """This book's name of every weight: Marian's name of it."""
    names = {
        "src_embed.table.weight": "model.encoder.embed_tokens.weight",
        "tgt_embed.table.weight": "model.decoder.embed_tokens.weight",
        "generator.weight": "lm_head.weight",
    }
    for stack, layer in MARIAN_LAYERS.items():
        for i in range(n_layers):
            for ours, theirs in layer.items():
                for p in ("weight", "bias"):
                    key = f"layers.{i}.{ours}.{p}"
                    names[f"{stack}.{key}"] = (
                        f"model.{stack}.layers.{i}.{theirs}.{p}"
                    )
    return names


# %% tags=["export:marian", "hide-input"]
def marian_config(model: Transformer):
    """The ``MarianConfig`` of a Marian model with ``model``'s sizes: ReLU,
    embeddings scaled by sqrt(d_model), post-norm. Special tokens: this
    book's (<pad> 0, <s> 1, </s> 2; the decoder starts with <s>)."""
    c = model.config
    if c.norm_first:
        raise ValueError(
            "Marian is post-norm only: a model with norm_first=True has no "
            "Marian equivalent"
        )
    if c.eps != 1e-5:
        raise ValueError(
            f"Marian's LayerNorm eps is 1e-5; this model's is {c.eps}"
        )
    sizes = {m: getattr(c, f) for f, ms in MARIAN_CONFIG.items() for m in ms}
    return _transformers().MarianConfig(
        **sizes,
        vocab_size=model.src_embed.table.num_embeddings,
        decoder_vocab_size=model.tgt_embed.table.num_embeddings,
        activation_function="relu",  # Marian's default is GELU
        scale_embedding=True,  # Marian's default leaves them unscaled
        **{"bos_token_id": 1, "decoder_start_token_id": 1},
        **{"eos_token_id": 2, "forced_eos_token_id": 2},
    )


def to_marian(model: Transformer):
    """A Hugging Face ``MarianMTModel`` that computes what ``model`` does:
    its sizes, its weights copied, and this book's positional table."""
    marian = _transformers().MarianMTModel(marian_config(model))
    ours = model.state_dict()
    n_layers = model.config.n_layers
    weights = {m: ours[o] for o, m in _weight_names(n_layers).items()}
    if model.config.share_embeddings:
        weights["model.shared.weight"] = ours["src_embed.table.weight"]
    weights["final_logits_bias"] = ours["generator.bias"][None]
    for stack in ("encoder", "decoder"):  # this book's order of features
        weights[f"model.{stack}.embed_positions.weight"] = model.pos.table
    marian.load_state_dict(weights)  # strict: no weight left out
    return marian.train(model.training)


# %% tags=["export:marian", "hide-input"]
def from_marian(marian) -> Transformer:
    """This book's ``Transformer`` computing what the ``MarianMTModel``
    ``marian`` does in eval mode, with its weights and its positional table.
    This book has one dropout rate where Marian has three: the model takes
    Marian's ``dropout``, so in training mode the two can differ."""
    m = marian.config
    problems = []
    if m.activation_function != "relu":
        problems.append(f"activation_function={m.activation_function!r}")
    if not m.scale_embedding:
        problems.append("scale_embedding=False")
    for field, names in MARIAN_CONFIG.items():
        values = {getattr(m, name) for name in names}
        if len(values) > 1 and field != "dropout":
            problems.append(f"{' and '.join(names)} differ")
    if problems:
        raise ValueError(
            "this book's Transformer is ReLU, scales its embeddings and has "
            f"stacks of one size; this Marian has {', '.join(problems)}"
        )
    config = TransformerConfig(
        **{f: getattr(m, names[0]) for f, names in MARIAN_CONFIG.items()}
    )
    src_vocab = m.vocab_size
    tgt_vocab = m.decoder_vocab_size or src_vocab
    model = Transformer(src_vocab, tgt_vocab, config)
    theirs = marian.state_dict()
    weights = {
        o: theirs[t] for o, t in _weight_names(m.encoder_layers).items()
    }
    weights["generator.bias"] = theirs["final_logits_bias"][0]
    model.load_state_dict(weights)  # strict: no weight left out
    table = theirs["model.encoder.embed_positions.weight"]  # (max_len, D)
    model.pos.table = table.detach().clone().to(model.pos.table.dtype)
    return model.train(marian.training)


# %% [markdown]
# Three models, with separate, tied, and tied and shared embeddings, go to Marian and come back. Marian's logits
# must be this book's (within $10^{-6}$ here; on the CPU, `tests/test_marian.py` checks every bit), and the round trip must
# return every weight unchanged. The generator's bias is set to random numbers first, so that it is checked too.

# %%
src = seeded_randint(3, 16, 2, 7, seed=2)  # (B, S), a padded row
src[1, 5:] = PAD
tgt = seeded_randint(3, 16, 2, 5, seed=3)  # (B, T)
tgt[1, 4:] = PAD
real = tgt != PAD
for tie, share in [(False, False), (True, False), (True, True)]:
    torch.manual_seed(0)
    sizes = {"d_model": 16, "n_heads": 4, "d_ff": 32, "n_layers": 2}
    embeddings = {"tie_embeddings": tie, "share_embeddings": share}
    model = make_model(20, 20 if share else 16, **sizes, **embeddings)
    model.eval()
    with torch.no_grad():
        model.generator.bias.normal_()
    converted = to_marian(model).eval()
    with torch.no_grad():
        ours_logits = model(src, tgt)
        marian_logits = converted(
            input_ids=src,
            attention_mask=(src != PAD).long(),
            decoder_input_ids=tgt,
            decoder_attention_mask=real.long(),
        ).logits
    gap = (ours_logits - marian_logits)[real].abs().max().item()
    back = from_marian(converted).state_dict()
    same = all(torch.equal(back[k], v) for k, v in model.state_dict().items())
    print(f"tie={tie!s:5} share={share!s:5}: logits within 1e-6:", gap < 1e-6)
    assert gap < 1e-6 and same
print("back from Marian: every weight equal")

# %% [markdown]
# A Marian model made by Hugging Face, not by `to_marian`, keeps its own positional table. `from_marian` copies
# that table too, so the converted model matches it. The control: the same weights with this book's own table give
# other logits.

# %%
their_model = MarianMTModel(MarianConfig(**marian_settings)).eval()
converted = from_marian(their_model).eval()
with torch.no_grad():
    theirs = their_model(
        input_ids=src,
        attention_mask=(src != PAD).long(),
        decoder_input_ids=tgt,
        decoder_attention_mask=real.long(),
    ).logits[real]
    gap = (converted(src, tgt)[real] - theirs).abs().max()
    converted.pos.table = PositionalEncoding(16, max_len=64).table
    control = (converted(src, tgt)[real] - theirs).abs().max()
print(f"Marian's table copied: within 1e-5: {gap.item() < 1e-5}")
print(
    f"this book's table instead: off by more than 0.1: {control.item() > 0.1}"
)
assert gap < 1e-5 and control > 0.1

# %% [markdown]
# And what cannot be converted is refused, with the reason:

# %%
gelu_model = MarianMTModel(MarianConfig(**gelu_settings))
unscaled_settings = {**marian_settings, "scale_embedding": False}
unscaled = MarianMTModel(MarianConfig(**unscaled_settings))
pre_norm = make_model(20, 20, **sizes, norm_first=True)
for convert, model in [
    (from_marian, gelu_model),
    (from_marian, unscaled),
    (to_marian, pre_norm),
]:
    try:
        convert(model)
    except ValueError as error:
        print(f"{convert.__name__}: {error}")
    else:
        raise AssertionError("converted what cannot be")

# %% [markdown]
# ## What this page proved
#
# | mapping | the check | the control that fails |
# |---|---|---|
# | `TransformerConfig` ↔ `MarianConfig`, and a layer's weights | a Marian built from our sizes has them; the layer gives our outputs | `intermediate_size` ignored; `num_attention_heads` only for the encoder; GELU |
# | `padding_mask` ↔ `attention_mask` ↔ `key_padding_mask` | real positions ignore the pads, in all three | a mask in another library's convention, or none |
# | `causal_mask` ↔ `subsequent_mask` ↔ `generate_square_subsequent_mask` | equal tensors; equal attention with `~` | the diagonal hidden; the mask not inverted |
# | −∞ and zero rows ↔ −1e9 | equal weights wherever a row has keys | the rows with none; float16 |
# | positional encodings, LayerNorm, stacks | Marian's table reordered; the factor $\sqrt{(D-1)/D}$ | the table unordered; the biased deviation; fresh layers |
# | `F.cross_entropy(label_smoothing=)` ↔ `LabelSmoothing` | KL form + $H(q)$ = cross-entropy, equal gradients | the Annotated Transformer's own $q$ |
# | `noam_lambda` ↔ `rate` ↔ `get_inverse_sqrt_schedule` | equal to the paper's formula, each at its own step | the same call, one step apart |
# | `to_marian` ↔ `from_marian` | a whole model both ways: equal logits, every weight back | this book's positional table in a Hugging Face Marian |
