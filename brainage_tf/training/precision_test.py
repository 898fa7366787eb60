"""Tests of what `--precision auto` resolves to, from fake CPU and GPU facts."""

import pytest

from brainage_tf.training import precision
from brainage_tf.training.precision import cpu_flags, resolve_precision

# Trimmed /proc/cpuinfo of a 2-core Sapphire Rapids guest (the flags line is what counts).
CPUINFO_BF16 = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_tile
bogomips\t: 4800.00

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_tile
"""
CPUINFO_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
# aarch64 calls the line Features.
CPUINFO_ARM = "processor\t: 0\nFeatures\t: fp asimd bf16\n"


def test_cpu_flags_read_every_flags_line():
    assert {"avx512_bf16", "amx_tile", "avx2"} <= cpu_flags(CPUINFO_BF16)
    assert "avx512_bf16" not in cpu_flags(CPUINFO_AVX2)
    assert cpu_flags(CPUINFO_ARM) == {"fp", "asimd", "bf16"}


@pytest.mark.parametrize(
    "cpuinfo, gpus, expected",
    [
        (CPUINFO_BF16, [], "mixed_bfloat16"),
        ("flags\t: avx512f amx_bf16 amx_tile\n", [], "mixed_bfloat16"),
        (CPUINFO_AVX2, [], "float32"),
        (CPUINFO_ARM, [], "float32"),
        (CPUINFO_AVX2, [(8, 6)], "mixed_bfloat16"),
        (CPUINFO_BF16, [(7, 5)], "mixed_float16"),
        # One older GPU in the set decides: every replica must run the same policy.
        (CPUINFO_AVX2, [(9, 0), (7, 0)], "mixed_float16"),
    ],
)
def test_auto_resolution(cpuinfo, gpus, expected):
    resolved, reason = resolve_precision("auto", flags=cpu_flags(cpuinfo), gpus=gpus)
    assert resolved == expected and reason


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_an_explicit_policy_is_kept_whatever_the_machine(policy):
    assert resolve_precision(policy, flags=cpu_flags(CPUINFO_AVX2), gpus=[(7, 0)])[0] == policy


def test_auto_reads_proc_cpuinfo_when_not_given_flags(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(CPUINFO_BF16)
    monkeypatch.setattr(precision, "CPUINFO", fake)
    assert resolve_precision("auto", gpus=[])[0] == "mixed_bfloat16"
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
    assert resolve_precision("auto", gpus=[])[0] == "float32"
