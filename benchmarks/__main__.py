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

SECTIONS = ["matmul", "attention", "mha", "training", "decoding"]


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
                "training step, base: >= 50% of the matmul ceiling",
                share,
                share >= 0.5,
                f"{share:.0%}",
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
    for row in results.get("decoding", {}).get("rows", []):
        if row["batch"] == 1 and row["config"] == "small":
            goal(
                "cached greedy decoding >= 5x faster than recomputation at batch 1 (small)",
                row["speedup"],
                row["speedup"] >= 5,
                f"{row['speedup']:.1f}x",
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
    ceiling = None
    if args.wall:  # first, while the machine is otherwise idle and the old results are in place
        print("6. wall time of the project's commands")
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
            lambda: suite.training(settings, ceiling),
        ),
        "decoding": (
            "5. greedy decoding, 64 tokens: key/value cache vs recomputing the prefix",
            lambda: suite.decoding(settings),
        ),
    }
    for name in SECTIONS:
        if name in args.only:
            title, run = runs[name]
            print(title)
            results[name] = run()
            if name == "matmul":
                ceiling = results[name]["ceiling_gflops"]
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
