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


def training(settings: Settings, ceiling_gflops: float | None) -> dict:
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
        ours_t, theirs_t = time_in_turns(
            *steps.values(), repeats=settings.repeats, warmup=2
        )
        tokens = c["batch"] * c["length"]
        record = {
            "config": name,
            "sizes": c,
            "dropout": DROPOUT,
            "flops_per_step": flops,
        }
        for side, timing in [("ours", ours_t), ("torch", theirs_t)]:
            gflops = flops / timing.median / 1e9
            record[side] = {
                "seconds": timing.as_dict(),
                "tokens_per_s": tokens / timing.median,
                "gflops": gflops,
                "ceiling_share": gflops / ceiling_gflops
                if ceiling_gflops
                else None,
            }
            if settings.device.type == "cpu":  # where one step's time goes
                record[side]["profile_ms"] = breakdown_ms(steps[side])
        record["speedup"] = theirs_t.median / ours_t.median
        share = (
            f" ({record['ours']['ceiling_share']:.0%} vs "
            f"{record['torch']['ceiling_share']:.0%} of the matmul ceiling)"
            if ceiling_gflops
            else ""
        )
        print(
            f"  {name:>5}  ours {record['ours']['tokens_per_s']:8.0f} tok/s, nn.Transformer "
            f"{record['torch']['tokens_per_s']:8.0f} tok/s: {record['speedup']:.2f}x{share}"
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


def decoding(settings: Settings) -> dict:
    """Greedy decoding of 64 tokens with the key/value cache against recomputing the whole
    prefix at every step (chapter 6), small model; the tokens must be the same."""
    new_tokens = 64
    rows = []
    cases = (
        [("small", 1)]
        if settings.quick
        else [("small", 1), ("small", 64), ("base", 1)]
    )
    for name, batch in cases:
        c = CONFIGS[name]
        model = our_model(c, dropout=0.0).to(settings.device).eval()
        src = seeded_randint(
            3, c["vocab"], batch, 32, seed=batch, device=settings.device
        )
        # no token has id `vocab`: no row ever ends, every run makes exactly 64 tokens
        decode = {
            use_cache: partial(
                tl.greedy_decode,
                model,
                src,
                start_id=1,
                end_id=c["vocab"],
                max_len=new_tokens,
                use_cache=use_cache,
            )
            for use_cache in (True, False)
        }
        with settings.autocast():
            cached_tokens, recomputed_tokens = decode[True](), decode[False]()
            if cached_tokens.shape != (batch, new_tokens):
                raise AssertionError(
                    f"expected {new_tokens} new tokens per row, got {cached_tokens.shape}"
                )
            same_tokens = torch.equal(cached_tokens, recomputed_tokens)
            if not same_tokens:
                raise AssertionError(
                    "cached and recomputed decoding made different tokens"
                )
            cached, recomputed = time_in_turns(
                decode[True], decode[False], repeats=settings.repeats
            )
            # why a step costs what it costs: how many ATen operations run per new
            # token, and the time per operation that makes
            ops = {
                use_cache: count_ops(decode[use_cache])
                for use_cache in (True, False)
            }
        speedup = recomputed.median / cached.median
        rows.append(
            {
                "config": name,
                "batch": batch,
                "new_tokens": cached_tokens.size(1),
                "same_tokens": same_tokens,
                "cached": {
                    "seconds": cached.as_dict(),
                    "ops_per_token": ops[True] / new_tokens,
                    "us_per_op": cached.median / ops[True] * 1e6,
                },
                "recompute": {
                    "seconds": recomputed.as_dict(),
                    "ops_per_token": ops[False] / new_tokens,
                    "us_per_op": recomputed.median / ops[False] * 1e6,
                },
                "speedup": speedup,
            }
        )
        print(
            f"  {name:>5} batch {batch:3d}: cached {_ms(cached)} | recompute "
            f"{_ms(recomputed)} | {speedup:.1f}x; {ops[True] / new_tokens:.0f} ATen ops "
            f"per token, {cached.median / ops[True] * 1e6:.1f} µs each (cached)"
        )
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
