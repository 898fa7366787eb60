"""The one timer of the benchmarks, and the process's peak memory.

Every figure of `benchmarks/run.py` comes from `time_calls`: the first call (tracing,
compilation, allocation) is reported apart from the median of the calls after it.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds of the first call and the median of the `calls` calls after it."""

    first: float
    median: float
    calls: int

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


def time_calls(function: Callable[[], object], calls: int) -> Timing:
    """Calls `function` 1 + `calls` times; the function must block until its work is done."""
    durations = []
    for _ in range(calls + 1):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return Timing(durations[0], statistics.median(durations[1:]), calls)


def matmul_gflops(framework: str, dtype: str, size: int, calls: int) -> float:
    """GFLOP/s of a square matmul in "tf" or "torch", dtype "float32" or "bfloat16" (median of `calls`)."""
    if framework == "torch":
        import torch

        generator = torch.Generator().manual_seed(0)
        a, b = (torch.randn(size, size, generator=generator).to(getattr(torch, dtype)) for _ in range(2))
        timing = time_calls(lambda: float(torch.mm(a, b).float().sum()), calls)
    else:
        import tensorflow as tf

        a, b = (tf.cast(tf.random.normal((size, size), seed=seed), dtype) for seed in (1, 2))
        product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32)))
        timing = time_calls(lambda: product().numpy(), calls)
    return 2 * size**3 / timing.median / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
