"""Chapter 7's controls: the date task trained with the chapter's settings
(linear warm-up and decay, label smoothing 0.1) and with one factor changed
at a time: the paper's schedule ("noam"), no decay after the warm-up
("constant"), no label smoothing ("no smoothing").

Each run records held-out exact match every ``eval_every`` steps, the
training loss (mean over each block of ``loss_every`` steps) and the final
exact match on the full held-out set. ``record`` writes it all, with the
date and the machine, as JSON.
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import platform
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from transformer_lite import TrainConfig, Trainer, small_model_config

# one factor changed at a time against the chapter's settings
CONTROLS = {
    "linear": {},  # the chapter's: warm-up to 2e-3, linear decay to 0
    "noam": {"schedule": "noam", "lr": 1.0},  # the paper's §5.3 rate
    "constant": {"schedule": "constant"},  # warm-up, then no decay
    "no smoothing": {"label_smoothing": 0.0},
}
RESULTS = Path(__file__).parent / "results" / "ch7_controls.json"


def run_one(job: dict) -> dict:
    """Train one control and return its record (runs in a worker process)."""
    torch.set_num_threads(job.get("threads", 1))
    config = TrainConfig(
        task="dates",
        steps=job["steps"],
        batch_size=job["batch_size"],
        eval_every=job["eval_every"],
        eval_size=job["eval_size"],
        seed=job["seed"],
        **CONTROLS[job["name"]],
    )
    model_config = small_model_config(**job.get("model", {}))
    trainer = Trainer(config, model_config, device=job["device"])
    trainer.fit(progress=False)
    every = job["loss_every"]
    losses = trainer.losses
    blocks = [
        round(sum(losses[i : i + every]) / len(losses[i : i + every]), 4)
        for i in range(0, len(losses), every)
    ]
    return {
        "name": job["name"],
        "seed": job["seed"],
        "train_config": {
            k: v
            for k, v in vars(config).items()
            if k in ("schedule", "lr", "warmup", "label_smoothing", "steps")
        },
        "exact_match": [
            [r["step"], round(r["exact_match"], 4)] for r in trainer.history
        ],
        "loss_every": every,
        "loss": blocks,
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "final_exact_match": round(
            trainer.evaluate(job["final_eval_size"]), 4
        ),
        "seconds": round(trainer.seconds, 1),
    }


def machine(device: str) -> str:
    """The machine in words: the GPU's name, or the CPU and its cores."""
    version = f"torch {torch.__version__}"
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)} (CUDA), {version}"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {version}"


def record(
    out: Path = RESULTS,
    steps: int = 1500,
    seeds: tuple[int, ...] = (0, 1, 2),
    names: tuple[str, ...] = tuple(CONTROLS),
    batch_size: int = 128,
    eval_every: int = 100,
    eval_size: int = 1000,
    final_eval_size: int = 5400,
    loss_every: int = 50,
    device: str | None = None,
    jobs: int = 1,
    model: dict | None = None,
) -> dict:
    """Run every control for every seed (``jobs`` at a time); write the
    JSON."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    job_list = [
        {
            "name": name,
            "seed": seed,
            "steps": steps,
            "batch_size": batch_size,
            "eval_every": eval_every,
            "eval_size": eval_size,
            "final_eval_size": final_eval_size,
            "loss_every": loss_every,
            "device": device,
            "model": model or {},
            # one thread per run when several run at once
            "threads": 1 if jobs > 1 else torch.get_num_threads(),
        }
        for name in names
        for seed in seeds
    ]
    if jobs == 1:
        runs = [run_one(job) for job in job_list]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            runs = list(pool.map(run_one, job_list))
    result = {
        "what": "chapter 7 controls: the date task with one factor changed",
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "machine": machine(device),
        "settings": {
            "steps": steps,
            "batch_size": batch_size,
            "seeds": list(seeds),
            "eval_every": eval_every,
            "eval_size": eval_size,
            "final_eval_size": final_eval_size,
            "model": dict(small_model_config(**(model or {})).__dict__),
        },
        "controls": {name: CONTROLS[name] for name in names},
        "runs": runs,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return result
