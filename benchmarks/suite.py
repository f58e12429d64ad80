"""The benchmarks: transformer_lite against PyTorch's own modules, both measured in the same
process, in turns, so that their ratio holds on a noisy machine.

Each function returns a JSON-ready dict and prints one line per measurement.
"""

import contextlib
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import transformer_lite as tl
from benchmarks.measure import (
    Timing,
    available_bytes,
    breakdown_ms,
    peak_mib,
    time_in_turns,
)
from transformer_lite.helpers import seeded_randint, seeded_randn

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Settings:
    """What every benchmark needs to know: where, in what precision, how many runs."""

    device: torch.device
    bf16: bool = False
    repeats: int = 5
    quick: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when asked for, else nothing."""
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def _randn(
    *shape: int, seed: int, settings: Settings, grad: bool = False
) -> Tensor:
    x = seeded_randn(*shape, seed=seed, device=settings.device)
    return x.requires_grad_(grad)


def _ms(timing: Timing) -> str:
    return f"{timing.median * 1e3:9.2f} ms [{timing.min * 1e3:.2f}, {timing.max * 1e3:.2f}]"


# 1. the matmul ceiling ---------------------------------------------------------------


def matmul(settings: Settings) -> dict:
    """fp32 (or bf16) matrix products of n x n squares: the most arithmetic per second this
    device does in a PyTorch op; the ceiling the training steps are measured against."""
    dtype = torch.bfloat16 if settings.bf16 else torch.float32
    rows = []
    for n in [512] if settings.quick else [512, 1024, 2048]:
        a = _randn(n, n, seed=1, settings=settings).to(dtype)
        b = _randn(n, n, seed=2, settings=settings).to(dtype)
        (timing,) = time_in_turns(
            lambda a=a, b=b: a @ b, repeats=settings.repeats
        )
        gflops = 2 * n**3 / timing.median / 1e9
        rows.append({"n": n, "seconds": timing.as_dict(), "gflops": gflops})
        print(f"  matmul {n:5d}²  {_ms(timing)}  {gflops:7.1f} GFLOP/s")
    return {
        "rows": rows,
        "ceiling_gflops": max(row["gflops"] for row in rows),
    }


# 2 and 3. attention ------------------------------------------------------------------

BATCH, HEADS, D_K = 8, 8, 64


def _lengths(settings: Settings) -> list[int]:
    return (
        [64, 256] if settings.quick else [64, 128, 256, 512, 1024, 2048, 4096]
    )


def _fwd_bwd(
    fn: Callable[[], Tensor], inputs: list[Tensor], settings: Settings
):
    """A closure that runs fn() forward and backward, from fresh gradients."""

    def clear() -> None:
        for x in inputs:
            x.grad = None

    def run() -> None:
        clear()
        with settings.autocast():
            out = fn()
        out.float().sum().backward()

    run.clear = (
        clear  # peak_mib frees the old gradients before it starts counting
    )
    return run


def _compare(
    sides: dict[str, Callable[[], None]], settings: Settings, label: str
) -> dict:
    """Time the sides in turns, then measure each one's peak memory; ``time_ratio`` is
    ours / torch (below 1: transformer_lite is faster)."""
    timings = time_in_turns(*sides.values(), repeats=settings.repeats)
    row = {}
    for (name, run), timing in zip(sides.items(), timings, strict=True):
        row[name] = {
            "seconds": timing.as_dict(),
            "peak_mib": peak_mib(run, settings.device, before=run.clear),
        }
    ratio = None
    if "ours" in row and "torch" in row:
        ratio = (
            row["ours"]["seconds"]["median"]
            / row["torch"]["seconds"]["median"]
        )
    row["time_ratio"] = ratio
    shown = " | ".join(
        f"{name} {_ms(Timing(**row[name]['seconds']))} {row[name]['peak_mib']:7.1f} MiB"
        for name in sides
    )
    print(
        f"  {label:>8}  {shown}"
        + (f" | ours/torch {ratio:.2f}" if ratio else "")
    )
    return row


def _fits(need: int, settings: Settings) -> str | None:
    """None if ``need`` bytes fit in 70% of the free memory, else why not."""
    free = available_bytes(settings.device)
    if need <= 0.7 * free:
        return None
    return f"needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"


def attention_with_chapter1_softmax(
    q: Tensor, k: Tensor, v: Tensor
) -> Tensor:
    """Chapter 2's attention as it was first written, on chapter 1's softmax: scale the
    scores, then six passes of amax, subtract, exp, sum and divide."""
    scores = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
    return tl.softmax(scores) @ v


def attention_core(settings: Settings) -> dict:
    """The written-out scaled_dot_product_attention of chapter 2 against
    F.scaled_dot_product_attention: forward + backward, B=8, H=8, d_k=64."""
    rows = []
    for length in _lengths(settings):
        shape = (BATCH, HEADS, length, D_K)
        row: dict = {"L": length}
        qkv = [
            _randn(*shape, seed=s, settings=settings, grad=True)
            for s in (1, 2, 3)
        ]
        functions = {
            "ours": lambda q, k, v: tl.scaled_dot_product_attention(q, k, v)[
                0
            ],
            "chapter1_softmax": attention_with_chapter1_softmax,
            "torch": F.scaled_dot_product_attention,
        }
        sides = {}
        for name, fn in functions.items():
            # how many (B, H, L, L) fp32 tensors each side holds at its peak (measured)
            squares = {"ours": 3.2, "chapter1_softmax": 7.0, "torch": 0.0}[
                name
            ]
            skipped = _fits(
                int(squares * 4 * BATCH * HEADS * length**2), settings
            )
            if skipped:
                row[name] = {"skipped": skipped}
                print(f"  {f'L={length}':>8}  {name} skipped: {skipped}")
            else:
                sides[name] = _fwd_bwd(partial(fn, *qkv), qkv, settings)
        rows.append(row | _compare(sides, settings, f"L={length}"))
    return {"batch": BATCH, "heads": HEADS, "d_k": D_K, "rows": rows}


def multi_head(settings: Settings) -> dict:
    """MultiHeadAttention (chapter 4) against nn.MultiheadAttention(need_weights=False):
    self-attention, forward + backward, d_model = 8 heads x 64."""
    d_model = HEADS * D_K
    ours_module = tl.MultiHeadAttention(d_model, HEADS).to(settings.device)
    torch_module = nn.MultiheadAttention(d_model, HEADS, batch_first=True).to(
        settings.device
    )
    params = list(ours_module.parameters()) + list(torch_module.parameters())
    rows = []
    for length in _lengths(settings):
        x = _randn(
            BATCH, length, d_model, seed=length, settings=settings, grad=True
        )
        sides = {
            "ours": lambda x=x: ours_module(x, x, x),
            "torch": lambda x=x: torch_module(x, x, x, need_weights=False)[0],
        }
        sides = {
            name: _fwd_bwd(fn, [x, *params], settings)
            for name, fn in sides.items()
        }
        row = {"L": length} | _compare(sides, settings, f"L={length}")
        if settings.device.type == "cpu":  # where each side's time goes
            for name, run in sides.items():
                run.clear()
                row[name]["profile_ms"] = breakdown_ms(run)
        rows.append(row)
    return {"batch": BATCH, "heads": HEADS, "d_model": d_model, "rows": rows}


# 4. a training step ------------------------------------------------------------------

CONFIGS = {
    # d_model, heads, layers per stack, d_ff, vocab, batch, length
    "small": dict(
        d_model=128,
        n_heads=4,
        n_layers=2,
        d_ff=512,
        vocab=1000,
        batch=64,
        length=32,
    ),
    "base": dict(
        d_model=512,
        n_heads=8,
        n_layers=6,
        d_ff=2048,
        vocab=10000,
        batch=8,
        length=64,
    ),
}
DROPOUT = 0.1
PAD = 0


def our_model(c: dict, dropout: float) -> tl.Transformer:
    """transformer_lite's model with the sizes of a CONFIGS entry, seeded."""
    torch.manual_seed(0)
    return tl.make_model(
        c["vocab"],
        c["vocab"],
        d_model=c["d_model"],
        n_heads=c["n_heads"],
        n_layers=c["n_layers"],
        d_ff=c["d_ff"],
        dropout=dropout,
        pad_id=PAD,
        max_len=1024,
    )


class TorchSeq2Seq(nn.Module):
    """nn.Transformer with what it leaves out, built like transformer_lite's model:
    embeddings times √d_model, the same sinusoidal positions and dropout, an output layer."""

    def __init__(
        self, vocab: int, d_model: int, n_heads: int, n_layers: int, d_ff: int
    ):
        super().__init__()
        self.scale = math.sqrt(d_model)
        self.src_embed = nn.Embedding(vocab, d_model)
        self.tgt_embed = nn.Embedding(vocab, d_model)
        self.pos = tl.PositionalEncoding(
            d_model, max_len=1024, dropout=DROPOUT
        )
        self.transformer = nn.Transformer(
            d_model,
            n_heads,
            n_layers,
            n_layers,
            d_ff,
            DROPOUT,
            batch_first=True,
        )
        self.generator = nn.Linear(d_model, vocab)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        length = tgt.size(
            1
        )  # bool masks throughout; for PyTorch True means "blocked"
        causal = torch.ones(
            length, length, dtype=torch.bool, device=tgt.device
        ).triu(1)
        src_pad, tgt_pad = (
            src == PAD,
            tgt == PAD,
        )  # True = padding, PyTorch's rule
        x = self.transformer(
            self.pos(self.src_embed(src) * self.scale),
            self.pos(self.tgt_embed(tgt) * self.scale),
            tgt_mask=causal,
            src_key_padding_mask=src_pad,
            tgt_key_padding_mask=tgt_pad,
            memory_key_padding_mask=src_pad,
            tgt_is_causal=True,
        )
        return self.generator(x)


def _training_step(
    model: nn.Module, src: Tensor, tgt_in: Tensor, tgt_out: Tensor, settings
):
    # the optimizer of transformer_lite's Trainer (chapter 7), for both models
    optimizer = torch.optim.Adam(
        model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with settings.autocast():
            logits = model(src, tgt_in)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1),
            tgt_out.flatten(),
            label_smoothing=0.1,
        )
        loss.backward()
        optimizer.step()

    return step


def _step_flops(
    model: nn.Module, src: Tensor, tgt_in: Tensor, tgt_out: Tensor
) -> int:
    """Floating-point operations of one forward + backward, counted by PyTorch's
    FlopCounterMode (matrix products only) with attention on its plain-matmul path, which
    the counter can see into."""
    with (
        FlopCounterMode(display=False) as counter,
        sdpa_kernel(SDPBackend.MATH),
    ):
        logits = model(src, tgt_in)
        F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten()).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


CEILING_N = 1024  # the matrix product timed in turns with the training steps


def _time_steps(
    steps: dict[str, Callable[[], None]],
    flops: int,
    tokens: int,
    settings: Settings,
) -> tuple[dict, float]:
    """Time training steps in turns together with an n x n matrix product, the ceiling:
    a slow moment of the machine falls on the steps and on the ceiling alike, so the share
    of the ceiling is a ratio measured in one run, like every other. Returns each side's
    record and the ceiling in GFLOP/s."""
    n = 512 if settings.quick else CEILING_N
    dtype = torch.bfloat16 if settings.bf16 else torch.float32
    a = _randn(n, n, seed=1, settings=settings).to(dtype)
    b = _randn(n, n, seed=2, settings=settings).to(dtype)
    *timings, reference = time_in_turns(
        *steps.values(), lambda: a @ b, repeats=settings.repeats, warmup=2
    )
    ceiling = 2 * n**3 / reference.median / 1e9
    sides = {}
    for side, timing in zip(steps, timings, strict=True):
        gflops = flops / timing.median / 1e9
        sides[side] = {
            "seconds": timing.as_dict(),
            "tokens_per_s": tokens / timing.median,
            "gflops": gflops,
            "ceiling_share": gflops / ceiling,
        }
        if settings.device.type == "cpu":  # where one step's time goes
            sides[side]["profile_ms"] = breakdown_ms(steps[side])
    return sides, ceiling


def training(settings: Settings) -> dict:
    """One training step (forward, label-smoothed loss, backward, Adam), dropout 0.1:
    transformer_lite's model against nn.Transformer of the same sizes."""
    results = []
    for name in ["small"] if settings.quick else ["small", "base"]:
        c = CONFIGS[name]
        ours = our_model(c, DROPOUT).to(settings.device)
        theirs = TorchSeq2Seq(
            c["vocab"], c["d_model"], c["n_heads"], c["n_layers"], c["d_ff"]
        ).to(settings.device)
        shape = (c["batch"], c["length"])
        src, tgt_in, tgt_out = (
            seeded_randint(
                1, c["vocab"], *shape, seed=s, device=settings.device
            )
            for s in (1, 2, 3)
        )
        flops = _step_flops(ours, src, tgt_in, tgt_out)
        steps = {
            "ours": _training_step(ours, src, tgt_in, tgt_out, settings),
            "torch": _training_step(theirs, src, tgt_in, tgt_out, settings),
        }
        sides, ceiling = _time_steps(
            steps, flops, c["batch"] * c["length"], settings
        )
        record = {
            "config": name,
            "sizes": c,
            "dropout": DROPOUT,
            "flops_per_step": flops,
            "ceiling_gflops": ceiling,
            **sides,
        }
        record["speedup"] = (
            sides["torch"]["seconds"]["median"]
            / sides["ours"]["seconds"]["median"]
        )
        print(
            f"  {name:>5}  ours {record['ours']['tokens_per_s']:8.0f} tok/s, nn.Transformer "
            f"{record['torch']['tokens_per_s']:8.0f} tok/s: {record['speedup']:.2f}x "
            f"({record['ours']['ceiling_share']:.0%} vs {record['torch']['ceiling_share']:.0%} "
            f"of a {CEILING_N}² matmul's {ceiling:.0f} GFLOP/s, timed in turns)"
        )
        results.append(record)
    return {"rows": results}


# 5. decoding -------------------------------------------------------------------------


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations (kernels, views included) that run inside it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> int:
    with OpCounter() as counter:
        fn()
    return counter.count


# the peer a practitioner would pick instead: Hugging Face's MarianMTModel, the paper's
# post-norm architecture, built from a config with the same sizes and given the same weights
PEER_CONFIGS = {
    "small": dict(d_model=256, n_heads=4, n_layers=3, d_ff=1024),
    "base": dict(d_model=512, n_heads=8, n_layers=6, d_ff=2048),
}
PEER_VOCAB, SOURCE_LENGTH, NEW_TOKENS = 8000, 32, 64
START, END = 1, 2  # the book's <s> and </s>; PAD is 0


def peer_models(name: str, dropout: float, settings: Settings):
    """transformer_lite's model of a PEER_CONFIGS size (seeded) and the MarianMTModel
    computing the same function, with its weights copied (transformer_lite.marian)."""
    from transformers.utils import logging

    from transformer_lite.marian import to_marian

    logging.set_verbosity_error()  # no generation-config advice in the output
    torch.manual_seed(0)
    ours = tl.make_model(
        PEER_VOCAB,
        PEER_VOCAB,
        **PEER_CONFIGS[name],
        dropout=dropout,
        pad_id=PAD,
        max_len=1024,
    )
    marian = to_marian(ours)
    return ours.to(settings.device), marian.to(settings.device)


def stream_gbps(settings: Settings) -> float:
    """How fast this machine's memory feeds a matrix-vector product: one row times a
    128 MiB matrix (4x a large last-level cache), both ways round, the faster one."""
    rows = 2**13  # x (1, 4096) @ (4096, 8192) and the (8192, 4096).T layout
    best = 0.0
    for transposed in (False, True):
        w = _randn(4096, rows, seed=3, settings=settings)
        if transposed:
            w = w.t().contiguous().t()
        x = _randn(1, 4096, seed=4, settings=settings)
        (timing,) = time_in_turns(
            lambda w=w, x=x: x @ w, repeats=settings.repeats
        )
        best = max(best, w.numel() * 4 / timing.median / 1e9)
        del w
    return best


def layouts(settings: Settings) -> list[dict]:
    """GB/s of one row times each matrix shape of the base decoder, stored as nn.Linear
    stores it, (out, in), and transposed, (in, out): 48 different matrices in turn, more
    than the last-level cache holds, so every product reads its weights from memory."""
    rows = []
    shapes = [
        (512, 512),
        (512, 1536),
        (512, 2048),
        (2048, 512),
        (512, PEER_VOCAB),
    ]
    for d_in, d_out in [(512, 64)] if settings.quick else shapes:
        x = _randn(1, d_in, seed=5, settings=settings)
        row = {"in": d_in, "out": d_out}
        for layout in ("out_in", "in_out"):
            count = 8 if settings.quick else 48
            ws = [
                _randn(d_out, d_in, seed=s, settings=settings)
                for s in range(count)
            ]
            if layout == "in_out":
                ws = [w.t().contiguous() for w in ws]

            def run(ws=ws, layout=layout, x=x):
                for w in ws:
                    x @ (w if layout == "in_out" else w.t())

            (timing,) = time_in_turns(run, repeats=settings.repeats)
            row[layout] = d_in * d_out * 4 * count / timing.median / 1e9
        rows.append(row)
        print(
            f"  ({d_in:4d} -> {d_out:4d}): stored (out, in) {row['out_in']:5.1f} GB/s, "
            f"(in, out) {row['in_out']:5.1f} GB/s"
        )
    return rows


def bytes_per_token(model: tl.Transformer) -> int:
    """The weight bytes one cached decoding step reads: every decoder weight except the
    cross-attention keys' and values' projections (used once, on the encoder memory),
    and the output projection."""
    skipped = {
        id(p)
        for layer in model.decoder.layers
        for linear in (layer.cross_attn.w_k, layer.cross_attn.w_v)
        for p in linear.parameters()
    }
    weights = [*model.decoder.parameters(), *model.generator.parameters()]
    return sum(
        p.numel() * p.element_size() for p in weights if id(p) not in skipped
    )


def _marian_generate(marian, src: Tensor, new_tokens: int) -> Tensor:
    """Marian's greedy generate under the book's rules: exactly ``new_tokens`` tokens
    (the end token held back), never <pad> or <s>; the start token dropped."""
    return marian.generate(
        input_ids=src,
        attention_mask=(src != PAD).long(),
        num_beams=1,
        do_sample=False,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        suppress_tokens=[PAD, START],
        forced_eos_token_id=None,
    )[:, 1:]


def _exactly(model: tl.Transformer, src: Tensor, new_tokens: int) -> partial:
    """Greedy decoding of exactly ``new_tokens`` tokens (the end token held back, as
    ``_marian_generate`` holds back Marian's); options such as ``packed=True`` may follow."""
    return partial(
        tl.greedy_decode,
        model,
        src,
        START,
        END,
        max_len=new_tokens,
        min_new_tokens=new_tokens,
    )


def _side(timing: Timing, tokens: int, steps: int, ops: int | None) -> dict:
    side = {
        "seconds": timing.as_dict(),
        "tokens_per_s": tokens / timing.median,
    }
    if ops is not None:  # why a step costs what it costs
        side["ops_per_step"] = ops / steps
        side["us_per_op"] = timing.median / ops * 1e6
    return side


def decoding(settings: Settings) -> dict:
    """Greedy decoding, 64 new tokens from 32-token sources: the plain cached path of
    chapter 6, its packed path, and Marian's generate on the same weights, which must all
    write the same tokens; and the weight-streaming floor that a batch-1 step cannot beat.
    Then a long generation: 256 tokens with the cache against recomputing the prefix."""
    gbps = stream_gbps(settings)
    print(f"  memory feeds a matrix-vector product at {gbps:.1f} GB/s")
    weight_layouts = layouts(settings)
    new_tokens = 16 if settings.quick else NEW_TOKENS
    cases = (
        [("small", 1)]
        if settings.quick
        else [("small", 1), ("small", 32), ("base", 1), ("base", 32)]
    )
    rows = []
    for name, batch in cases:
        ours, marian = peer_models(name, 0.0, settings)
        ours.eval(), marian.eval()
        src = seeded_randint(
            3,
            PEER_VOCAB,
            batch,
            SOURCE_LENGTH,
            seed=batch,
            device=settings.device,
        )
        decode = _exactly(ours, src, new_tokens)
        sides = {
            "plain": decode,
            "packed": partial(decode, packed=True),
            "marian": partial(_marian_generate, marian, src, new_tokens),
        }
        with settings.autocast():
            written = {side: run() for side, run in sides.items()}
            if written["plain"].shape != (batch, new_tokens):
                raise AssertionError(
                    f"expected {new_tokens} new tokens per row, got "
                    f"{tuple(written['plain'].shape)}"
                )
            agree = {
                side: (written[side] == written["plain"])
                .float()
                .mean()
                .item()
                for side in ("packed", "marian")
            }
            for side, share in agree.items():
                # in fp32 the paths differ only in rounding: any other token is
                # a bug; under bf16 autocast near-ties may fall either way
                if share < 1 and not settings.bf16:
                    raise AssertionError(
                        f"{side} decoding wrote other tokens"
                    )
            timings = time_in_turns(*sides.values(), repeats=settings.repeats)
            ops = {
                side: count_ops(sides[side]) for side in ("plain", "packed")
            }
        made = batch * new_tokens
        row = {
            "config": name,
            "sizes": PEER_CONFIGS[name] | {"vocab": PEER_VOCAB},
            "batch": batch,
            "new_tokens": new_tokens,
            "same_tokens": min(agree.values()) == 1,  # asserted in fp32
            "token_agreement": agree,
            "weight_bytes_per_step": bytes_per_token(ours),
        }
        for side, timing in zip(sides, timings, strict=True):
            row[side] = _side(timing, made, new_tokens, ops.get(side))
        marian_s = row["marian"]["seconds"]["median"]
        for side in ("plain", "packed"):
            row[side]["vs_marian"] = marian_s / row[side]["seconds"]["median"]
        if (
            batch == 1
        ):  # a step reads every weight once: the floor of one token's time
            floor = gbps * 1e9 / row["weight_bytes_per_step"]
            row["floor_tokens_per_s"] = floor
            for side in sides:
                row[side]["floor_share"] = row[side]["tokens_per_s"] / floor
        rows.append(row)
        shown = " | ".join(
            f"{side} {row[side]['tokens_per_s']:7.0f} tok/s"
            + (
                f" ({row[side]['floor_share']:.0%} of floor)"
                if batch == 1
                else ""
            )
            for side in sides
        )
        print(
            f"  {name:>5} batch {batch:2d}: {shown}; packed/Marian "
            f"{row['packed']['vs_marian']:.2f}x, plain/Marian {row['plain']['vs_marian']:.2f}x"
        )
    return {
        "stream_gbps": gbps,
        "layouts": weight_layouts,
        "source_length": SOURCE_LENGTH,
        "rows": rows,
        "long": long_generation(settings),
    }


def long_generation(settings: Settings) -> dict:
    """256 new tokens at batch 1, small size: the plain cache and the packed path
    against recomputing the whole prefix at every step, whose cost grows with the
    square of the length."""
    new_tokens = 32 if settings.quick else 256
    ours, _ = peer_models("small", 0.0, settings)
    ours.eval()
    src = seeded_randint(
        3, PEER_VOCAB, 1, SOURCE_LENGTH, seed=5, device=settings.device
    )
    decode = _exactly(ours, src, new_tokens)
    sides = {
        "cached": decode,
        "packed": partial(decode, packed=True),
        "recompute": partial(decode, use_cache=False),
    }
    with settings.autocast():
        written = {side: run() for side, run in sides.items()}
        for side in ("packed", "recompute"):
            if not torch.equal(written[side], written["cached"]):
                raise AssertionError(f"{side} decoding wrote other tokens")
        timings = time_in_turns(*sides.values(), repeats=settings.repeats)
    row = {
        "config": "small",
        "batch": 1,
        "new_tokens": new_tokens,
        "same_tokens": True,  # asserted above
    }
    for side, timing in zip(sides, timings, strict=True):
        row[side] = {"seconds": timing.as_dict()}
    recompute = row["recompute"]["seconds"]["median"]
    row["speedup"] = recompute / row["cached"]["seconds"]["median"]
    row["packed_speedup"] = recompute / row["packed"]["seconds"]["median"]
    print(
        f"  small, {new_tokens} tokens, batch 1: cached {_ms(timings[0])} | packed "
        f"{_ms(timings[1])} | recompute {_ms(timings[2])} | {row['speedup']:.1f}x "
        f"cached, {row['packed_speedup']:.1f}x packed"
    )
    return row


class MarianLogits(nn.Module):
    """A MarianMTModel called as transformer_lite's model is, (src, tgt) -> logits,
    with the book's padding rule for both attention masks."""

    def __init__(self, marian: nn.Module):
        super().__init__()
        self.marian = marian

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        return self.marian(
            input_ids=src,
            attention_mask=(src != PAD).long(),
            decoder_input_ids=tgt,
            decoder_attention_mask=(tgt != PAD).long(),
        ).logits


def peer_training(settings: Settings) -> dict:
    """One training step (32 x 64 tokens, dropout and label smoothing 0.1, fused Adam):
    transformer_lite's model against MarianMTModel with the same weights."""
    rows = []
    for name in ["small"] if settings.quick else ["small", "base"]:
        ours, marian = peer_models(name, DROPOUT, settings)
        theirs = MarianLogits(marian)
        shape = (32, 64)
        src, tgt_in, tgt_out = (
            seeded_randint(
                1, PEER_VOCAB, *shape, seed=s, device=settings.device
            )
            for s in (1, 2, 3)
        )
        ours.eval(), theirs.eval()  # the same function, before timing
        with torch.no_grad():
            if not torch.allclose(
                ours(src, tgt_in), theirs(src, tgt_in), atol=1e-4, rtol=1e-4
            ):
                raise AssertionError(
                    "the two models compute different logits"
                )
        ours.train(), theirs.train()
        flops = _step_flops(ours, src, tgt_in, tgt_out)
        steps = {
            "ours": _training_step(ours, src, tgt_in, tgt_out, settings),
            "marian": _training_step(theirs, src, tgt_in, tgt_out, settings),
        }
        sides, ceiling = _time_steps(
            steps, flops, shape[0] * shape[1], settings
        )
        row = {
            "config": name,
            "sizes": PEER_CONFIGS[name],
            "batch": shape,
            "flops_per_step": flops,
            "ceiling_gflops": ceiling,
            **sides,
        }
        row["speedup"] = (
            sides["marian"]["seconds"]["median"]
            / sides["ours"]["seconds"]["median"]
        )
        print(
            f"  {name:>5}  ours {row['ours']['tokens_per_s']:8.0f} tok/s, Marian "
            f"{row['marian']['tokens_per_s']:8.0f} tok/s: {row['speedup']:.2f}x"
        )
        rows.append(row)
    return {"rows": rows}


# 6. the project's own commands -------------------------------------------------------


def wall_times() -> dict:
    """Wall time of ``make test`` and of ``make book`` (from a clean HTML build), one run."""
    results = {}
    for target in ["test", "book"]:
        if (
            target == "book"
        ):  # a build from scratch, not an update of the last one
            for built in ["_build/html", "_build/.doctrees"]:
                shutil.rmtree(ROOT / built, ignore_errors=True)
        start = time.perf_counter()
        done = subprocess.run(
            ["make", target], cwd=ROOT, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        results[f"make {target}"] = {
            "seconds": seconds,
            "exit_code": done.returncode,
        }
        print(
            f"  make {target}: {seconds:.0f} s (exit code {done.returncode})"
        )
    return results
