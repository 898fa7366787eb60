"""Time the synthetic cohort generator: subjects, workers, seconds, subjects per second.

Usage: python benchmarks/synthetic_generation.py [--subjects 200] [--workers 2]
       [--profile discovery replication]
The issue's budget is 200 subjects in under 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from brainage_tf.synthetic import PROFILES, CohortSpec, generate_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--profile", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    for profile in args.profile:
        for workers in args.workers:
            scratch = Path(tempfile.mkdtemp(prefix="synthetic_benchmark_"))
            try:
                start = time.perf_counter()
                spec = CohortSpec(args.subjects, profile=profile, seed=args.seed)
                generate_cohort(scratch, spec, workers=workers, progress=True)
                seconds = time.perf_counter() - start
                size_mb = sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file()) / 1e6
            finally:
                shutil.rmtree(scratch)
            rows.append((profile, args.subjects, workers, seconds, args.subjects / seconds, size_mb))

    print(f"{'profile':<12} {'subjects':>8} {'workers':>7} {'seconds':>8} {'subjects/s':>10} {'MB':>7}")
    for profile, subjects, workers, seconds, rate, size_mb in rows:
        print(f"{profile:<12} {subjects:>8} {workers:>7} {seconds:>8.1f} {rate:>10.2f} {size_mb:>7.0f}")


if __name__ == "__main__":
    main()
