"""Benchmarks of transformer_lite against PyTorch's own modules: python -m benchmarks."""

import os

# the profiler (used to measure peak memory on a CPU) otherwise logs two lines per use
os.environ.setdefault("KINETO_LOG_LEVEL", "99")
