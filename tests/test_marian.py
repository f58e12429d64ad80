"""The Marian converter: this book's Transformer and Hugging Face's MarianMTModel, both ways.

Random weights only (nothing is downloaded). A converted model must give the same logits
(on the CPU, equal to the last bit), greedy decoding must give the same tokens as Marian's
``generate``, a round trip must return every weight, and what one side cannot express must
be refused with an error that names it.
"""

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformer_lite import make_model  # noqa: E402
from transformer_lite.decoder import beam_search, greedy_decode  # noqa: E402
from transformer_lite.marian import from_marian, to_marian  # noqa: E402

PAD = 0


def spread(model):
    """Random weights far from their initialisation, so that greedy decoding
    does not repeat one token and logits are not all alike."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(
                torch.randn(parameter.shape, generator=generator) * 0.3
            )
    return model


def batch(vocab: int):
    generator = torch.Generator().manual_seed(2)
    src = torch.randint(3, vocab, (3, 9), generator=generator)
    src[1, 6:] = PAD
    tgt = torch.randint(3, vocab, (3, 7), generator=generator)
    tgt[2, 3:] = PAD
    return src, tgt


def marian_logits(marian, src, tgt):
    return marian(
        input_ids=src,
        attention_mask=(src != PAD).long(),
        decoder_input_ids=tgt,
        decoder_attention_mask=(tgt != PAD).long(),
    ).logits


SIZES = [
    {"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
    {"d_model": 32, "n_heads": 4, "d_ff": 48, "n_layers": 3},
]
EMBEDDINGS = [
    {"tie_embeddings": False, "share_embeddings": False},
    {"tie_embeddings": True, "share_embeddings": False},
    {"tie_embeddings": True, "share_embeddings": True},
]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("embeddings", EMBEDDINGS)
def test_to_marian_gives_the_same_logits_and_comes_back(sizes, embeddings):
    torch.manual_seed(0)
    tgt_vocab = 40 if embeddings["share_embeddings"] else 33
    model = spread(make_model(40, tgt_vocab, **sizes, **embeddings)).eval()
    marian = to_marian(model).eval()
    src, tgt = batch(33)
    real = tgt != PAD
    with torch.no_grad():
        ours, theirs = model(src, tgt), marian_logits(marian, src, tgt)
    assert torch.equal(ours[real], theirs[real])
    back = from_marian(marian).state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(back[name], value), name
    # the control: Marian's own positional table gives other logits
    own = transformers.MarianMTModel(marian.config).eval()
    own.load_state_dict(
        {
            k: v
            for k, v in marian.state_dict().items()
            if "embed_positions" not in k
        },
        strict=False,
    )
    with torch.no_grad():
        control = marian_logits(own, src, tgt)
    assert not torch.allclose(control[real], ours[real], atol=1e-3)


def test_from_marian_keeps_marians_own_positions():
    torch.manual_seed(0)
    config = transformers.MarianConfig(
        vocab_size=30,
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=PAD,
        decoder_start_token_id=1,
        bos_token_id=1,
        eos_token_id=2,
        forced_eos_token_id=2,
        activation_function="relu",
        scale_embedding=True,
    )
    marian = transformers.MarianMTModel(config).eval()
    model = from_marian(marian).eval()
    src, tgt = batch(30)
    real = tgt != PAD
    with torch.no_grad():
        ours, theirs = model(src, tgt), marian_logits(marian, src, tgt)
    assert torch.allclose(ours[real], theirs[real], atol=1e-5)
    assert model.pos.table.shape == (64, 16)


@pytest.fixture(scope="module")
def copy_model():
    """A briefly trained copy model: an untrained one repeats a single token."""
    from transformer_lite.train import (
        TrainConfig,
        Trainer,
        small_model_config,
    )

    config = TrainConfig(task="copy", steps=60, eval_size=20, warmup=20)
    sizes = small_model_config(d_model=32, d_ff=64)
    model = Trainer(config, sizes, device="cpu").fit(progress=False).model
    return model.eval()


def test_greedy_decoding_gives_marians_tokens(copy_model):
    model = copy_model
    marian = to_marian(model).eval()
    src = torch.randint(
        4, 14, (3, 9), generator=torch.Generator().manual_seed(2)
    )
    src[1, 6:] = PAD
    ours = greedy_decode(model, src, 1, 2, max_len=12)
    theirs = marian.generate(
        input_ids=src,
        attention_mask=(src != PAD).long(),
        num_beams=1,
        do_sample=False,
        max_new_tokens=12,
        forced_eos_token_id=None,
    )[:, 1:]  # Marian's output starts with the start token
    assert len(set(ours.flatten().tolist())) >= 4  # not one token repeated
    # both fill a row with <pad> after its </s>
    assert torch.equal(ours, theirs[:, : ours.size(1)])
    assert not theirs[:, ours.size(1) :].any()


def refused(convert, model, *words):
    with pytest.raises(ValueError) as error:
        convert(model)
    for word in words:
        assert word in str(error.value), str(error.value)


def test_what_cannot_be_converted_is_refused_with_its_reason():
    settings = {
        "vocab_size": 20,
        "d_model": 8,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 16,
        "decoder_ffn_dim": 16,
        "pad_token_id": PAD,
        "decoder_start_token_id": 1,
        "activation_function": "relu",
        "scale_embedding": True,
    }

    def marian(**changes):
        config = transformers.MarianConfig(**{**settings, **changes})
        return transformers.MarianMTModel(config)

    refused(from_marian, marian(activation_function="gelu"), "gelu")
    refused(from_marian, marian(scale_embedding=False), "scale_embedding")
    refused(from_marian, marian(decoder_layers=2), "decoder_layers differ")
    sizes = {"d_model": 8, "n_heads": 2, "d_ff": 16, "n_layers": 1}
    refused(
        to_marian, make_model(20, 20, **sizes, norm_first=True), "post-norm"
    )
    refused(to_marian, make_model(20, 20, **sizes, eps=1e-6), "eps")
    assert from_marian(marian()) is not None  # the control: accepted


def marian_greedy(marian, src, new_tokens, **options):
    return marian.generate(
        input_ids=src,
        attention_mask=(src != PAD).long(),
        num_beams=1,
        do_sample=False,
        max_new_tokens=new_tokens,
        forced_eos_token_id=None,
        **options,
    )


@pytest.mark.parametrize("packed", [False, True])
def test_exactly_n_tokens_and_banned_tokens_as_marian(copy_model, packed):
    # <s> made likely, so that banning it matters; the end token held back
    # past where the copy ends, so both sides write exactly 12 tokens
    model = copy.deepcopy(copy_model)
    with torch.no_grad():
        model.generator.bias[1] += 4.0
    marian = to_marian(model).eval()
    src = torch.randint(
        4, 14, (3, 9), generator=torch.Generator().manual_seed(4)
    )
    ours = greedy_decode(
        model, src, 1, 2, max_len=12, min_new_tokens=12, packed=packed
    )
    theirs = marian_greedy(
        marian, src, 12, min_new_tokens=12, suppress_tokens=[PAD, 1]
    )[:, 1:]
    assert ours.shape == (3, 12) and len(set(ours.flatten().tolist())) >= 4
    assert torch.equal(ours, theirs)
    # the controls: unbanned, <s> is written; unheld, the end token is
    assert (marian_greedy(marian, src, 12, min_new_tokens=12) == 1).any()
    early = marian_greedy(marian, src, 12, suppress_tokens=[PAD, 1])
    assert (early == 2).any()


def test_greedy_scores_are_marians_transition_scores(copy_model):
    marian = to_marian(copy_model).eval()
    src = torch.randint(
        4, 14, (3, 9), generator=torch.Generator().manual_seed(3)
    )
    tokens, scores = greedy_decode(
        copy_model, src, 1, 2, max_len=12, banned=[], return_scores=True
    )
    out = marian_greedy(
        marian, src, 12, output_scores=True, return_dict_in_generate=True
    )
    theirs = marian.compute_transition_scores(
        out.sequences, out.scores, normalize_logits=True
    )
    assert torch.equal(tokens, out.sequences[:, 1 : tokens.size(1) + 1])
    real = tokens != PAD
    torch.testing.assert_close(
        scores[real], theirs[:, : tokens.size(1)][real]
    )


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_gives_marians_n_best_and_scores(copy_model, alpha):
    # Hugging Face's rules: length ** alpha, stop once beam_size sentences
    # ended, no token banned (its processors would not renormalise)
    marian = to_marian(copy_model).eval()
    src = torch.randint(
        4, 14, (3, 9), generator=torch.Generator().manual_seed(5)
    )
    src[2, 7:] = PAD
    tokens, scores = beam_search(
        copy_model,
        src,
        1,
        2,
        beam_size=4,
        max_len=16,
        length_penalty=alpha,
        length_penalty_form="power",
        banned=[],
        n_best=2,
    )
    out = marian.generate(
        input_ids=src,
        attention_mask=(src != PAD).long(),
        num_beams=4,
        num_return_sequences=2,
        length_penalty=alpha,
        early_stopping=True,
        do_sample=False,
        max_new_tokens=16,
        forced_eos_token_id=None,
        output_scores=True,
        return_dict_in_generate=True,
    )
    theirs = out.sequences[:, 1:]  # without the start token
    # Marian fills after the end token with more end tokens (its fill value
    # is `pad_token_id or eos_token_id`, and <pad> is 0): make them <pad>
    ended = (theirs == 2).long().cumsum(1) - (theirs == 2).long() > 0
    theirs = theirs.masked_fill(ended, PAD)
    width = max(tokens.size(1), theirs.size(1))
    pad = torch.nn.functional.pad
    assert torch.equal(
        pad(tokens, (0, width - tokens.size(1))),
        pad(theirs, (0, width - theirs.size(1))),
    )
    torch.testing.assert_close(scores, out.sequences_scores)
    assert not torch.equal(tokens[0::2], tokens[1::2])  # two different bests
