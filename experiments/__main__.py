"""python -m experiments: record the runs the chapters read."""

import argparse
import sys
from pathlib import Path

from experiments.ch7_controls import RESULTS, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description="Record chapter 7's controls (Noam vs linear, decay, "
        "label smoothing) into a JSON that the chapter reads.",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--final-eval-size", type=int, default=5400)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--device", default=None, help="cpu or cuda")
    args = parser.parse_args(argv)
    result = record(
        out=args.out,
        steps=args.steps,
        seeds=tuple(args.seeds),
        eval_every=args.eval_every,
        eval_size=args.eval_size,
        final_eval_size=args.final_eval_size,
        device=args.device,
        jobs=args.jobs,
    )
    for run in result["runs"]:
        print(
            f"{run['name']:13} seed {run['seed']}",
            f"final loss {run['final_loss']:.3f}",
            f"exact match {run['final_exact_match']:.2%}",
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
