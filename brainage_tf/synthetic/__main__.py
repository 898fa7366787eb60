"""Command line of the synthetic cohort generator.

Usage::

    python -m brainage_tf.synthetic --out DIR --subjects N [--min-age A] [--max-age B]
        [--profile discovery|replication] [--seed S] [--sessions K] [--workers W]
        [--voxel-scale F] [--age-distribution log_uniform|nihpd] [--no-progress]

Bad arguments print a one-line ``error:`` and exit with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from brainage_tf.console import add_verbose_argument, entry_point
from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS
from brainage_tf.synthetic.cohort import generate_cohort, validate_arguments
from brainage_tf.synthetic.sampling import AGE_DISTRIBUTIONS, DEFAULT_AGE_DISTRIBUTION
from brainage_tf.synthetic.sites import PROFILES


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brainage_tf.synthetic",
        description="Write a synthetic developmental T1w cohort as a BIDS dataset.",
    )
    parser.add_argument("--out", required=True, help="dataset root directory")
    parser.add_argument("--subjects", type=int, required=True, help="number of participants")
    parser.add_argument(
        "--min-age",
        type=float,
        default=MIN_AGE_YEARS,
        help=f"youngest first-visit age in years (default {MIN_AGE_YEARS:g})",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=MAX_AGE_YEARS,
        help=f"oldest age in years (default {MAX_AGE_YEARS:g})",
    )
    parser.add_argument(
        "--profile", choices=PROFILES, default="discovery", help="site profile (default discovery)"
    )
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--sessions", type=int, default=1, help="visits per subject (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: all CPUs)")
    parser.add_argument(
        "--voxel-scale", type=float, default=1.0, help="multiply voxel sizes, e.g. 2 for quick tests"
    )
    parser.add_argument(
        "--age-distribution",
        choices=AGE_DISTRIBUTIONS,
        default=DEFAULT_AGE_DISTRIBUTION,
        help="first-visit ages: log_uniform (default) or nihpd, an NIH-PD-shaped infant arm (0-4.5 y, "
        "visits 3-12 months apart) and school-age arm (4.5-18.5 y, visits about 2 years apart)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_verbose_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        Process exit code (argparse exits with 2 on bad arguments).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        validate_arguments(
            args.subjects,
            args.min_age,
            args.max_age,
            args.profile,
            args.seed,
            args.sessions,
            args.workers,
            args.voxel_scale,
            args.age_distribution,
        )
    except ValueError as error:
        parser.error(str(error))
    participants = generate_cohort(
        args.out,
        n_subjects=args.subjects,
        min_age=args.min_age,
        max_age=args.max_age,
        profile=args.profile,
        seed=args.seed,
        sessions=args.sessions,
        workers=args.workers,
        voxel_scale=args.voxel_scale,
        progress=not args.no_progress,
        age_distribution=args.age_distribution,
    )
    print(f"wrote {len(participants)} subjects to {args.out}")
    return 0


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
