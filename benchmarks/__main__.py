"""python -m benchmarks [--quick] [--out FILE] [--only NAME ...] [--wall] [--device D] [--bf16]

Runs the benchmark suite (benchmarks/suite.py), prints each figure as it is measured, then
the goals, and writes everything as JSON to --out (atomically: a run that fails leaves the
old file as it was).
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks import suite
from benchmarks.measure import machine

SECTIONS = ["matmul", "attention", "mha", "training", "peer", "decoding"]


def goals(results: dict) -> list[dict]:
    """The issue's goals, each with the measured value and whether it is met. Reported,
    never asserted: a benchmark informs, a timed test would only be flaky."""
    found = []

    def goal(
        text: str, value: float | None, met: bool | None, shown: str
    ) -> None:
        found.append(
            {"goal": text, "value": value, "met": met, "measured": shown}
        )

    for row in results.get("training", {}).get("rows", []):
        target = 1.2 if row["config"] == "small" else 1.0
        goal(
            f"training step, {row['config']}: >= {target}x nn.Transformer's tokens/s",
            row["speedup"],
            row["speedup"] >= target,
            f"{row['speedup']:.2f}x",
        )
        share = row["ours"]["ceiling_share"]
        if row["config"] == "base" and share is not None:
            goal(
                "training step, base: >= 55% of the matmul ceiling (timed in turns)",
                share,
                share >= 0.55,
                f"{share:.0%}",
            )
    for row in results.get("peer", {}).get("rows", []):
        if row["config"] == "small":
            goal(
                "training step, small: >= 1.3x Marian's tokens/s",
                row["speedup"],
                row["speedup"] >= 1.3,
                f"{row['speedup']:.2f}x",
            )
    mha = [
        r
        for r in results.get("mha", {}).get("rows", [])
        if "skipped" not in r
    ]
    if mha:
        worst = max(r["time_ratio"] for r in mha)
        goal(
            "MultiHeadAttention <= 1.0x nn.MultiheadAttention's time at every L",
            worst,
            worst <= 1.0,
            f"worst {worst:.2f}x",
        )
        # linear memory: the slope of log(peak) against log(L) is 1 for linear growth, 2 for
        # quadratic (fitted from L = 256 on, where fixed costs such as weight gradients no
        # longer dominate; single peaks are noisy, so no pair of sizes decides alone)
        long = [r for r in mha if r["L"] >= 256]
        if len(long) >= 2:
            xs = [math.log(r["L"]) for r in long]
            ys = [math.log(r["ours"]["peak_mib"]) for r in long]
            slope = statistics.linear_regression(xs, ys).slope
            goal(
                "MultiHeadAttention memory grows linearly in L",
                slope,
                slope <= 1.2,
                f"peak ∝ L^{slope:.2f}",
            )
    floor_targets = {"small": 0.4, "base": 0.5}
    for row in results.get("decoding", {}).get("rows", []):
        where = f"{row['config']}, batch {row['batch']}"
        packed = row["packed"]
        if row["batch"] == 1:
            target = floor_targets[row["config"]]
            goal(
                f"packed greedy decoding, {where}: >= {target:.0%} of the "
                "weight-streaming floor",
                packed["floor_share"],
                packed["floor_share"] >= target,
                f"{packed['floor_share']:.0%} "
                f"({packed['tokens_per_s']:.0f} of {row['floor_tokens_per_s']:.0f} tok/s)",
            )
        target = 2.0 if row["batch"] == 1 else 1.3
        goal(
            f"packed greedy decoding, {where}: >= {target}x Marian's generate",
            packed["vs_marian"],
            packed["vs_marian"] >= target,
            f"{packed['vs_marian']:.2f}x (plain path {row['plain']['vs_marian']:.2f}x)",
        )
    long = results.get("decoding", {}).get("long")
    if long:
        goal(
            f"cached greedy decoding of {long['new_tokens']} tokens, batch 1: "
            ">= 5x recomputation",
            long["speedup"],
            long["speedup"] >= 5,
            f"{long['speedup']:.1f}x (packed path {long['packed_speedup']:.1f}x)",
        )
    test = results.get("wall", {}).get("make test")
    if test:
        seconds, passed = test["seconds"], test["exit_code"] == 0
        goal(
            "make test <= 5 minutes (and passes)",
            seconds,
            passed and seconds <= 300,
            f"{seconds / 60:.1f} min"
            + ("" if passed else f", exit code {test['exit_code']}"),
        )
    return found


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file, so the file is never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(data, file, indent=1)
            file.write("\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="transformer_lite against PyTorch's own modules, measured in turns.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes only: a smoke run"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("_build/bench/results.json"),
        help="JSON file to write",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=SECTIONS,
        metavar="NAME",
        help=f"run only these sections ({', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        help="also time `make test` and `make book` (minutes)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu or cuda (default: cuda if present)",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="run under bf16 autocast"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per figure (>= 5)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error(
            f"--repeats must be at least 5 (medians of fewer runs mislead), got {args.repeats}"
        )
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device")
    if args.out.exists() and args.out.is_dir():
        parser.error(f"--out {args.out} is a directory; give a file name")
    folder = next(
        (p for p in args.out.absolute().parents if p.exists()), None
    )
    if (
        folder is None
        or not folder.is_dir()
        or not os.access(folder, os.W_OK)
    ):
        parser.error(
            f"--out {args.out}: cannot create or write files under {folder}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = suite.Settings(
        device=torch.device(args.device),
        bf16=args.bf16,
        repeats=args.repeats,
        quick=args.quick,
    )
    info = machine(settings.device, "bf16 autocast" if args.bf16 else "fp32")
    print(info["line"])
    results: dict = {}
    if args.wall:  # first, while the machine is otherwise idle and the old results are in place
        print("7. wall time of the project's commands")
        results["wall"] = suite.wall_times()
    runs = {
        "matmul": (
            "1. matmul throughput: the ceiling",
            lambda: suite.matmul(settings),
        ),
        "attention": (
            "2. attention core, forward+backward: written out (ours, and on chapter 1's "
            "softmax) vs F.scaled_dot_product_attention",
            lambda: suite.attention_core(settings),
        ),
        "mha": (
            "3. MultiHeadAttention vs nn.MultiheadAttention(need_weights=False), forward+backward",
            lambda: suite.multi_head(settings),
        ),
        "training": (
            "4. training step vs nn.Transformer (forward, loss, backward, Adam; dropout 0.1)",
            lambda: suite.training(settings),
        ),
        "peer": (
            "5. training step vs Hugging Face's MarianMTModel, same weights (dropout 0.1)",
            lambda: suite.peer_training(settings),
        ),
        "decoding": (
            "6. greedy decoding, 64 tokens: plain and packed paths vs Marian's generate, "
            "the weight-streaming floor; 256 tokens: cache vs recomputation",
            lambda: suite.decoding(settings),
        ),
    }
    for name in SECTIONS:
        if name in args.only:
            title, run = runs[name]
            print(title)
            results[name] = run()
    found = goals(results)
    if found:
        print("goals (reported, not asserted)")
        for g in found:
            print(
                f"  [{'met' if g['met'] else 'MISSED'}] {g['goal']}: {g['measured']}"
            )
    write_json(
        args.out,
        {
            "machine": info,
            "quick": args.quick,
            "results": results,
            "goals": found,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
