"""What `--precision auto` means on this machine: the Keras dtype policy a run trains in.

bfloat16 keeps float32's exponent range, so it needs no loss scaling; it is fast on
CPUs with AVX512_BF16 or AMX and on GPUs from compute capability 8.0 (Ampere).
Older GPUs have fast float16 only, which needs loss scaling (the trainer wraps
Adam in `keras.optimizers.LossScaleOptimizer`). Anything else trains in float32.
The CPU facts come from /proc/cpuinfo, so resolution itself imports nothing heavy;
the GPU facts come from TensorFlow, imported only when asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

# /proc/cpuinfo flags of x86 CPUs with native bfloat16 dot products (AVX512_BF16, AMX).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# bfloat16 tensor cores start with Ampere.
BF16_GPU_COMPUTE_CAPABILITY = (8, 0)
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags listed in /proc/cpuinfo (empty where there is no such file).

    Args:
        cpuinfo: The text of a cpuinfo file; None reads /proc/cpuinfo.
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """(major, minor) compute capability of every visible GPU; (0, 0) where TensorFlow does not say."""
    import tensorflow as tf

    return [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def resolve_precision(
    precision: str,
    flags: Iterable[str] | None = None,
    gpus: Sequence[tuple[int, int]] | None = None,
) -> tuple[str, str]:
    """The dtype policy a `--precision` value stands for here, and why.

    Args:
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        flags: CPU feature flags (None: read /proc/cpuinfo).
        gpus: Compute capabilities of the GPUs training runs on (None: ask TensorFlow).

    Returns:
        (policy name, reason); an explicit policy is returned unchanged.

    Example:
        >>> resolve_precision("auto", flags={"avx512f", "avx512_bf16"}, gpus=[])
        ('mixed_bfloat16', 'CPU has avx512_bf16')
    """
    if precision != "auto":
        return precision, "requested"
    gpus = gpu_compute_capabilities() if gpus is None else list(gpus)
    if gpus:
        oldest = min(gpus)
        if oldest >= BF16_GPU_COMPUTE_CAPABILITY:
            return "mixed_bfloat16", f"GPU compute capability {oldest[0]}.{oldest[1]} has bfloat16"
        return "mixed_float16", f"GPU compute capability {oldest[0]}.{oldest[1]} has float16 but no bfloat16"
    found = sorted(set(BF16_CPU_FLAGS) & set(cpu_flags() if flags is None else flags))
    if found:
        return "mixed_bfloat16", f"CPU has {', '.join(found)}"
    return "float32", f"neither a GPU nor a CPU with {' or '.join(BF16_CPU_FLAGS)}"
