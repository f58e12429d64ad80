"""How the benchmarks measure: timings summarised as median/min/max, peak memory of one
call, the machine line, and the fp32 matmul ceiling."""

import datetime
import gc
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch.profiler import ProfilerActivity, profile

from transformer_lite.helpers import time_calls

MiB = 2**20


@dataclass
class Timing:
    """Seconds of one call: median, min and max over ``runs`` timed runs."""

    median: float
    min: float
    max: float
    runs: int

    @classmethod
    def of(cls, times: list[float]) -> "Timing":
        return cls(
            statistics.median(times), min(times), max(times), len(times)
        )

    def as_dict(self) -> dict:
        return asdict(self)


def time_in_turns(
    *fns: Callable[[], object], repeats: int, warmup: int = 1
) -> list[Timing]:
    """Each function's Timing; the functions run in turns (see ``time_calls``)."""
    return [
        Timing.of(t) for t in time_calls(*fns, repeats=repeats, warmup=warmup)
    ]


def peak_mib(
    fn: Callable[[], object],
    device: torch.device,
    before: Callable[[], object] | None = None,
) -> float:
    """The most memory (MiB) that ``fn()`` held at once on ``device``, beyond what was
    allocated before it started.

    On a GPU this is ``torch.cuda.max_memory_allocated``. The CPU has no such counter, so
    the profiler records every allocation and free during the call, and the peak is the
    largest running sum. Either way the caller's tensors that exist beforehand are not
    counted; tensors the call creates and keeps (e.g. new ``.grad``) are.

    ``before()``, if given, runs first, outside the measurement: it must free what the
    call would otherwise free at its start (e.g. the previous run's gradients), or the
    freed memory would be subtracted from the call's own.
    """
    if before is not None:
        before()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / MiB
    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        fn()
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    ]
    events.sort(key=lambda e: e.start_ns())
    held = peak = 0
    for event in events:  # on the CPU every allocation is a host allocation
        held += event.nbytes()
        peak = max(peak, held)
    return peak / MiB


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device`` now: the GPU's free memory, or the system's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device, precision: str) -> dict:
    """What the figures were measured on: a dict, and ``line``, one line for people."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else None,
        "precision": precision,
    }
    where = info["gpu"] or f"{info['cpu']}, {info['cpu_count']} cores"
    info["line"] = (
        f"{where}; torch {info['torch']}, {info['torch_threads']} threads; "
        f"{precision}; {info['date']}"
    )
    return info


# where a step's time goes, by the profiler's op names: matrix products, dropout's random
# numbers, the optimizer (its whole step), copies
BREAKDOWN = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
    "dropout random numbers": ("aten::bernoulli_",),
    "optimizer": ("Optimizer.step#Adam.step",),
    "copies": ("aten::copy_",),
}


def breakdown_ms(fn: Callable[[], object]) -> dict[str, float]:
    """Milliseconds of one ``fn()`` call spent in each group of ``BREAKDOWN``, and in total,
    from the profiler's CPU times (self time for operations, whole time for the optimizer's
    step, which contains operations). Meaningful on a CPU only: for GPU work the profiler's
    CPU times are launch times."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    found = {"total": total}
    for group, names in BREAKDOWN.items():
        if group == "optimizer":
            found[group] = (
                sum(e.cpu_time_total for e in events if e.key in names) / 1e3
            )
        else:
            found[group] = (
                sum(e.self_cpu_time_total for e in events if e.key in names)
                / 1e3
            )
    return found
