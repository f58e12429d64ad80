"""Chapter 6: decoder layer parity, the full model (config, tying, masks, causality),
the key/value cache, greedy and beam-search decoding, and clear errors."""

import pytest
import torch
from torch import nn

from transformer_lite import (
    DecoderLayer,
    KVCache,
    PackedDecoder,
    TransformerConfig,
    beam_search,
    causal_mask,
    greedy_decode,
    make_model,
    padding_mask,
)
from transformer_lite.decoder import _append
from transformer_lite.helpers import seeded_randn

D, H, F = 32, 4, 64
SMALL = {
    "d_model": 32,
    "n_heads": 4,
    "d_ff": 64,
    "n_layers": 2,
    "dropout": 0.0,
}


def ids(shape, seed, low=3, high=40):
    return torch.randint(
        low, high, shape, generator=torch.Generator().manual_seed(seed)
    )


@pytest.fixture
def model():
    torch.manual_seed(0)
    return make_model(40, 40, **SMALL).eval()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_decoder_layer_parity(norm_first, bias):
    src_tokens = torch.tensor([[4, 5, 6, 7, 8, 3], [4, 5, 6, 0, 0, 0]])
    tgt_tokens = torch.tensor([[1, 9, 8, 7, 2], [1, 9, 2, 0, 0]])
    memory, x = seeded_randn(2, 6, D, seed=1), seeded_randn(2, 5, D, seed=2)
    torch.manual_seed(0)
    theirs = nn.TransformerDecoderLayer(
        D, H, F, batch_first=True, norm_first=norm_first, bias=bias
    ).eval()
    ours = DecoderLayer.from_torch(theirs).eval()
    expected = theirs(
        x,
        memory,
        tgt_mask=~causal_mask(5),
        tgt_key_padding_mask=tgt_tokens == 0,
        memory_key_padding_mask=src_tokens == 0,
    )
    tgt_mask = causal_mask(5) & padding_mask(tgt_tokens, 0)
    out = ours(
        x, memory, tgt_mask=tgt_mask, memory_mask=padding_mask(src_tokens, 0)
    )
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_decoder_layer_from_torch_type():
    with pytest.raises(
        TypeError, match="expected nn.TransformerDecoderLayer"
    ):
        DecoderLayer.from_torch(nn.TransformerEncoderLayer(D, H, F))


@pytest.mark.parametrize("norm_first", [False, True])
def test_causality_of_the_full_model(norm_first):
    torch.manual_seed(0)
    model = make_model(40, 40, **SMALL, norm_first=norm_first).eval()
    src, tgt = ids((3, 9), 1), ids((3, 8), 2)
    for t in range(7):
        changed = tgt.clone()
        changed[:, t + 1 :] = ids((3, 7 - t), 3 + t)
        with torch.no_grad():
            a, b = model(src, tgt), model(src, changed)
        torch.testing.assert_close(
            a[:, : t + 1], b[:, : t + 1], atol=1e-6, rtol=0
        )


def test_source_padding_does_not_leak(model):
    src = torch.tensor([[5, 6, 7, 0, 0]])
    tgt = ids((1, 4), 4)
    with torch.no_grad():
        padded = model(src, tgt)
        longer = model(
            torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1), tgt
        )
        trimmed = model(src[:, :3], tgt)
    torch.testing.assert_close(padded, longer, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded, trimmed, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_cache_equals_recompute_at_every_step(norm_first):
    torch.manual_seed(1)
    model = make_model(40, 40, **SMALL, norm_first=norm_first).eval()
    src = torch.tensor([[5, 6, 7, 8, 9, 0], [4, 5, 6, 7, 8, 9]])
    tgt = ids((2, 9), 5)
    src_mask = padding_mask(src, 0)
    with torch.no_grad():
        memory = model.encode(src)
        cache = model.new_cache()
        for step in range(tgt.size(1)):
            full = model.decode(tgt[:, : step + 1], memory, src_mask)[:, -1]
            one = model.decode(
                tgt[:, step : step + 1], memory, src_mask, cache=cache
            )[:, 0]
            torch.testing.assert_close(one, full, atol=1e-5, rtol=1e-5)
            assert cache.length == step + 1


def test_cache_takes_chunks(model):
    src, tgt = ids((2, 6), 6), ids((2, 7), 7)
    with torch.no_grad():
        memory = model.encode(src)
        full = model.decode(tgt, memory, padding_mask(src, 0))
        cache = model.new_cache()
        first = model.decode(
            tgt[:, :4], memory, padding_mask(src, 0), cache=cache
        )
        rest = model.decode(
            tgt[:, 4:], memory, padding_mask(src, 0), cache=cache
        )
    torch.testing.assert_close(
        torch.cat([first, rest], 1), full, atol=1e-5, rtol=1e-5
    )


def test_cache_refuses_a_target_mask(model):
    memory = model.encode(ids((1, 3), 8))
    with pytest.raises(
        ValueError,
        match="with a cache the decoder builds its own causal mask",
    ):
        model.decoder(
            torch.zeros(1, 1, 32),
            memory,
            tgt_mask=causal_mask(1),
            cache=model.new_cache(),
        )


def test_kv_cache_reorder():
    cache = KVCache(2)
    _append(cache.layers[0], "k", torch.arange(3.0).view(3, 1, 1, 1))
    _append(cache.layers[1], "v", torch.arange(3.0).view(3, 1, 1, 1))
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache.layers[0]["k"].flatten().tolist() == [2.0, 2.0, 0.0]
    assert cache.layers[1]["v"].flatten().tolist() == [2.0, 2.0, 0.0]
    assert cache.length == 1
    # later writes land in the reordered buffer
    _append(cache.layers[0], "k", torch.full((3, 1, 1, 1), 9.0))
    assert cache.layers[0]["k"][:, 0, :, 0].tolist() == [
        [2, 9],
        [2, 9],
        [0, 9],
    ]


def test_kv_cache_grows_by_doubling_and_keeps_every_position():
    layer: dict = {}
    buffers = set()
    for t in range(40):
        _append(layer, "k", torch.full((2, 1, 1, 3), float(t)))
        buffers.add(layer["k_buffer"].data_ptr())
    assert layer["k"].shape == (2, 1, 40, 3)
    assert layer["k"][0, 0, :, 0].tolist() == list(range(40))
    assert layer["k_buffer"].size(2) == 64  # 16, 32, 64: three buffers
    assert len(buffers) == 3


def test_greedy_equals_no_cache_and_beam_of_one():
    for seed in range(3):
        torch.manual_seed(seed)
        model = make_model(30, 30, **SMALL).eval()
        src = ids((5, 6), 10 + seed, high=30)
        greedy = greedy_decode(model, src, 1, 2, max_len=10)
        assert torch.equal(
            greedy,
            greedy_decode(model, src, 1, 2, max_len=10, use_cache=False),
        )
        beam, _ = beam_search(model, src, 1, 2, beam_size=1, max_len=10)
        assert torch.equal(greedy, beam)


def test_decoding_stops_at_end_token_and_pads(model):
    with torch.no_grad():
        model.generator.bias[2] = 100.0  # the end token always wins
    src = ids((3, 5), 11)
    assert greedy_decode(model, src, 1, 2, max_len=10).tolist() == [
        [2],
        [2],
        [2],
    ]
    tokens, _ = beam_search(model, src, 1, 2, beam_size=3, max_len=10)
    assert tokens.tolist() == [[2], [2], [2]]


def test_decoders_never_emit_padding_or_the_start_token(model):
    with torch.no_grad():
        model.generator.bias[:2] += (
            5.0  # make padding and <s> the most likely tokens
        )
    src = ids((4, 6), 21)
    try:
        cached = greedy_decode(model, src, 1, 2, max_len=8)
        assert torch.equal(
            cached,
            greedy_decode(model, src, 1, 2, max_len=8, use_cache=False),
        )
        beam, _ = beam_search(model, src, 1, 2, beam_size=3, max_len=8)
        for row in [*cached.tolist(), *beam.tolist()]:
            body = row[: row.index(2) + 1] if 2 in row else row
            assert 0 not in body and 1 not in body
    finally:
        with torch.no_grad():
            model.generator.bias[:2] -= 5.0


@pytest.mark.parametrize("norm_first", [False, True])
def test_from_torch_keeps_the_dtype(norm_first):
    layer = nn.TransformerDecoderLayer(
        D, H, F, batch_first=True, norm_first=norm_first
    ).double()
    ours = DecoderLayer.from_torch(layer.eval()).eval()
    assert {p.dtype for p in ours.parameters()} == {torch.float64}
    x, memory = (
        seeded_randn(2, 3, D, seed=1).double(),
        seeded_randn(2, 4, D, seed=2).double(),
    )
    torch.testing.assert_close(ours(x, memory), layer(x, memory))


def test_greedy_pads_finished_rows(model):
    src = ids((4, 5), 12)
    out = greedy_decode(model, src, 1, 2, max_len=15)
    for row in out.tolist():
        if 2 in row:
            assert all(t == 0 for t in row[row.index(2) + 1 :])


def sequence_log_prob(model, src, tokens, start, pad):
    """Sum of log-probabilities of tokens (up to and with the end token) under teacher forcing."""
    tgt_in = torch.cat(
        [torch.full((tokens.size(0), 1), start), tokens[:, :-1]], 1
    )
    with torch.no_grad():
        logits = model(src, tgt_in)
        logits[..., [pad, start]] = float(
            "-inf"
        )  # the decoders never generate these
        log_probs = torch.log_softmax(logits, -1)
    picked = log_probs.gather(-1, tokens[..., None])[..., 0]
    return (picked * (tokens != pad)).sum(-1)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_score_is_the_normalised_log_prob(model, alpha):
    src = ids((3, 6), 13)
    tokens, scores = beam_search(
        model, src, 1, 2, beam_size=3, max_len=8, length_penalty=alpha
    )
    for b in range(3):
        row = tokens[b : b + 1]
        length = int((row != 0).sum())
        log_prob = sequence_log_prob(
            model, src[b : b + 1], row[:, :length], 1, 0
        )
        expected = log_prob.item() / ((5 + length) / 6) ** alpha
        assert abs(scores[b].item() - expected) < 1e-3


def test_wider_beam_is_no_worse_without_length_penalty(model):
    src = ids((4, 6), 14)
    _, narrow = beam_search(
        model, src, 1, 2, beam_size=1, max_len=6, length_penalty=0.0
    )
    _, wide = beam_search(
        model, src, 1, 2, beam_size=8, max_len=6, length_penalty=0.0
    )
    # not a theorem for every input, but with k=8 over 6 steps of a 40-token vocabulary the
    # greedy path survives in the beam here, so the best score cannot be lower
    assert (wide >= narrow - 1e-5).all()


def test_tied_and_shared_embeddings_are_one_tensor():
    model = make_model(
        50, 50, **SMALL, tie_embeddings=True, share_embeddings=True
    )
    assert model.generator.weight is model.tgt_embed.table.weight
    assert model.src_embed is model.tgt_embed
    n_params = sum(p.numel() for p in model.parameters())
    untied = make_model(50, 50, **SMALL)
    assert (
        sum(p.numel() for p in untied.parameters()) == n_params + 2 * 50 * 32
    )
    before = model.generator.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model(ids((2, 4), 15, high=50), ids((2, 3), 16, high=50)).logsumexp(
        -1
    ).mean().backward()
    opt.step()
    assert not torch.equal(model.tgt_embed.table.weight, before)
    assert model.generator.weight is model.tgt_embed.table.weight


@pytest.mark.parametrize("tie", [True, False])
def test_a_loss_on_the_generator_alone_reaches_the_embedding_only_if_tied(
    tie,
):
    torch.manual_seed(0)
    model = make_model(50, 50, **SMALL, tie_embeddings=tie)
    src, tgt = ids((2, 4), 17, high=50), ids((2, 3), 18, high=50)
    with torch.no_grad():  # the decoder's output, with no graph behind it
        x = model.pos(model.tgt_embed(tgt))
        h = model.decoder(x, model.encode(src), causal_mask(3))
    model.generator(h).logsumexp(-1).mean().backward()
    grad = model.tgt_embed.table.weight.grad
    assert (grad is not None and grad.abs().max() > 0) == tie
    shared = (
        model.generator.weight.data_ptr()
        == model.tgt_embed.table.weight.data_ptr()
    )
    assert shared == tie


def test_base_model_parameter_count():
    model = make_model(
        37000, 37000, tie_embeddings=True, share_embeddings=True
    )
    d, f, v = 512, 2048, 37000
    attention, ff, norm = 4 * d * d + 4 * d, 2 * d * f + f + d, 2 * d
    expected = (
        v * d
        + v
        + 6 * (attention + ff + 2 * norm)
        + 6 * (2 * attention + ff + 3 * norm)
    )
    assert sum(p.numel() for p in model.parameters()) == expected


def test_config_defaults_are_the_papers_base():
    c = TransformerConfig()
    assert (c.d_model, c.n_heads, c.d_ff, c.n_layers, c.dropout) == (
        512,
        8,
        2048,
        6,
        0.1,
    )
    assert c.norm_first is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 510}, "d_model=510 is not divisible by n_heads=8"),
        ({"d_model": 6, "n_heads": 2}, None),
        ({"d_model": 9, "n_heads": 3}, "d_model=9 must be even"),
        ({"n_layers": 0}, "n_layers must be a positive int, got 0"),
        ({"d_ff": 2.5}, "d_ff must be a positive int"),
        ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\)"),
        ({"norm_first": "yes"}, "norm_first must be True or False"),
        ({"pad_id": -1}, "pad_id must be a token id"),
        ({"eps": 0.0}, "eps must be positive"),
        ({"n_layer": 2}, r"unknown setting\(s\) \['n_layer'\]"),
    ],
)
def test_bad_config(overrides, message):
    if message is None:
        make_model(10, 10, **overrides)
        return
    with pytest.raises(ValueError, match=message):
        make_model(10, 10, **overrides)


def test_bad_vocab_settings():
    with pytest.raises(
        ValueError, match="share_embeddings needs one vocabulary"
    ):
        make_model(10, 12, share_embeddings=True)
    with pytest.raises(
        ValueError, match="pad_id=10 is not a token of src_vocab=10"
    ):
        make_model(10, 12, pad_id=10)
    with pytest.raises(ValueError, match="tgt_vocab must be a positive int"):
        make_model(10, 0)


def test_bad_inputs(model):
    src, tgt = ids((3, 5), 17), ids((3, 4), 18)
    with pytest.raises(
        ValueError, match="source and target batch sizes differ: 3 and 2"
    ):
        model(src, tgt[:2])
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 40\)"):
        model(src, tgt + 40)
    with pytest.raises(
        ValueError, match=r"token ids must be in \[0, 40\).*got \[-3\]"
    ):
        model(src - src - 3, tgt)
    with pytest.raises(
        TypeError, match="tgt must be a tensor of integer token ids"
    ):
        model(src, tgt.float())
    with pytest.raises(
        ValueError, match=r"src must have shape \(batch, length\), got \(5,\)"
    ):
        model(src[0], tgt)
    with pytest.raises(
        ValueError,
        match=r"src must have shape \(batch, length\), got \(0, 5\)",
    ):
        model(src[:0], tgt[:0])
    with pytest.raises(ValueError, match="positions up to 5001 do not fit"):
        model(src, ids((3, 5001), 19))


def test_bad_decoding_arguments(model):
    src = ids((2, 5), 20)
    with pytest.raises(ValueError, match="start_id=0 equals pad_id"):
        greedy_decode(model, src, 0, 2)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, src, 1, 2, max_len=0)
    with pytest.raises(ValueError, match="beam_size must be a positive int"):
        beam_search(model, src, 1, 2, beam_size=0)
    with pytest.raises(ValueError, match="length_penalty must be >= 0"):
        beam_search(model, src, 1, 2, length_penalty=-1.0)


# the decoding options and the packed path


@pytest.mark.parametrize("norm_first", [False, True])
def test_packed_steps_equal_the_plain_cached_steps(norm_first):
    torch.manual_seed(0)
    model = make_model(40, 40, **SMALL, norm_first=norm_first).eval()
    src = ids((4, 7), 30)
    src[1, 4:] = 0  # padding in the source
    mask = padding_mask(src, 0)
    with torch.no_grad():
        memory = model.encode(src, mask)
        cache = model.new_cache()
        step = PackedDecoder.of(model).start(memory, mask, 9)
        last = torch.ones(4, 1, dtype=torch.long)
        for _ in range(9):
            plain = model.decode(last, memory, mask, cache=cache)
            torch.testing.assert_close(
                step(last), plain, atol=1e-5, rtol=1e-5
            )
            last = ids((4, 1), int(plain.sum().abs() * 1000) % 99)
        with pytest.raises(ValueError, match="started for 9 tokens"):
            step(last)


@pytest.mark.parametrize("seed", range(3))
def test_packed_greedy_writes_the_plain_tokens(seed):
    torch.manual_seed(seed)
    model = make_model(30, 30, **SMALL).eval()
    src = ids((5, 6), 40 + seed, high=30)
    plain, plain_scores = greedy_decode(
        model, src, 1, 2, max_len=12, return_scores=True
    )
    packed, packed_scores = greedy_decode(
        model, src, 1, 2, max_len=12, return_scores=True, packed=True
    )
    assert torch.equal(plain, packed)
    torch.testing.assert_close(plain_scores, packed_scores)


def test_packed_copy_is_reused_and_made_again_after_a_change(model):
    src = ids((3, 5), 31)
    first = PackedDecoder.of(model)
    assert PackedDecoder.of(model) is first  # nothing changed: reused
    with torch.no_grad():
        model.generator.bias[7] += 100.0  # token 7 now always wins
    try:
        assert PackedDecoder.of(model) is not first
        packed = greedy_decode(model, src, 1, 2, max_len=4, packed=True)
        assert packed.tolist() == [[7] * 4] * 3
        # the control: the stale copy would still write the old tokens
        memory = model.encode(src)
        stale = first.start(memory, padding_mask(src, 0), 4)
        last = torch.ones(3, 1, dtype=torch.long)
        assert (stale(last)[:, 0].argmax(-1) != 7).all()
    finally:
        with torch.no_grad():
            model.generator.bias[7] -= 100.0


def test_packed_needs_eval_mode_and_the_cache(model):
    src = ids((2, 5), 32)
    with pytest.raises(ValueError, match="call model.eval"):
        greedy_decode(model.train(), src, 1, 2, packed=True)
    model.eval()
    with pytest.raises(ValueError, match="packed=True decodes with its own"):
        greedy_decode(model, src, 1, 2, packed=True, use_cache=False)


def test_min_new_tokens_holds_back_the_end_token(model):
    with torch.no_grad():
        model.generator.bias[2] = 100.0  # the end token always wins
    src = ids((3, 5), 33)
    for packed in (False, True):
        out = greedy_decode(
            model, src, 1, 2, max_len=10, min_new_tokens=4, packed=packed
        )
        assert out.shape == (3, 5)
        assert (out[:, :4] != 2).all() and (out[:, 4] == 2).all()
    # the control: without it, the end token comes first
    assert greedy_decode(model, src, 1, 2, max_len=10).tolist() == [[2]] * 3


def test_banned_tokens_are_never_written(model):
    src = ids((4, 6), 34)
    free = greedy_decode(model, src, 1, 2, max_len=8, banned=[])
    common = free.flatten().mode().values.item()  # a token it does write
    out = greedy_decode(model, src, 1, 2, max_len=8, banned=[0, 1, common])
    assert common not in out.flatten().tolist()
    assert common in free.flatten().tolist()


def test_greedy_scores_are_the_teacher_forced_log_probs(model):
    src = ids((4, 6), 35)
    tokens, scores = greedy_decode(
        model, src, 1, 2, max_len=9, return_scores=True
    )
    assert scores.shape == tokens.shape
    assert (scores[tokens == 0] == 0).all()  # padding after the end
    expected = sequence_log_prob(model, src, tokens, 1, 0)
    torch.testing.assert_close(scores.sum(-1), expected, atol=1e-4, rtol=0)


def test_bad_decoding_options(model):
    src = ids((2, 5), 36)
    with pytest.raises(ValueError, match="min_new_tokens must be an int"):
        greedy_decode(model, src, 1, 2, max_len=5, min_new_tokens=6)
    with pytest.raises(ValueError, match="banned must hold token ids"):
        greedy_decode(model, src, 1, 2, banned=[3, 40])


def test_n_best_returns_each_sources_best_sequences_in_order(model):
    src = ids((3, 6), 37)
    one, one_score = beam_search(model, src, 1, 2, beam_size=4, max_len=8)
    tokens, scores = beam_search(
        model, src, 1, 2, beam_size=4, max_len=8, n_best=3
    )
    assert tokens.shape[0] == 9 and scores.shape == (9,)
    for b in range(3):
        mine = scores[3 * b : 3 * b + 3]
        assert (mine[:-1] >= mine[1:]).all()  # best first
        assert mine[0] == one_score[b]
        row = tokens[3 * b, : one.size(1)]
        assert torch.equal(row, one[b])
        assert (
            len({tuple(r.tolist()) for r in tokens[3 * b : 3 * b + 3]}) == 3
        )


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_power_length_penalty_divides_by_length_to_the_alpha(model, alpha):
    src = ids((3, 6), 38)
    tokens, scores = beam_search(
        model,
        src,
        1,
        2,
        beam_size=3,
        max_len=8,
        length_penalty=alpha,
        length_penalty_form="power",
    )
    for b in range(3):
        row = tokens[b : b + 1]
        length = int((row != 0).sum())
        log_prob = sequence_log_prob(
            model, src[b : b + 1], row[:, :length], 1, 0
        )
        assert abs(scores[b].item() - log_prob.item() / length**alpha) < 1e-3


@pytest.mark.parametrize("alpha", [0.0, 0.6, 3.0])
def test_without_early_stopping_the_search_is_never_worse(alpha):
    differs = 0
    for seed in range(6):
        torch.manual_seed(seed)
        model = make_model(30, 30, **SMALL).eval()
        with torch.no_grad():
            model.generator.bias[2] += 2.0  # sentences end early and often
        src = ids((4, 6), 50 + seed, high=30)
        options = dict(beam_size=2, max_len=10, length_penalty=alpha)
        _, early = beam_search(model, src, 1, 2, **options)
        _, late = beam_search(
            model, src, 1, 2, **options, early_stopping=False
        )
        assert (late >= early - 1e-6).all()
        differs += int((late > early + 1e-6).any())
    if alpha == 3.0:  # the control: rewarding length, searching on wins
        assert differs >= 3


def test_bad_beam_options(model):
    src = ids((2, 5), 39)
    with pytest.raises(ValueError, match="n_best=5 is more than beam_size=4"):
        beam_search(model, src, 1, 2, beam_size=4, n_best=5)
    with pytest.raises(ValueError, match="length_penalty_form must be"):
        beam_search(model, src, 1, 2, length_penalty_form="wu")
    with pytest.raises(ValueError, match="banned must hold token ids"):
        beam_search(model, src, 1, 2, banned=[-1])
