"""Command line of the synthetic cohort generator.

Usage::

    python -m brainage_tf.synthetic --out DIR --subjects N [--min-age A] [--max-age B]
        [--profile discovery|replication] [--seed S] [--sessions K] [--workers W]
        [--voxel-scale F] [--age-distribution log_uniform|nihpd] [--exterior fixed|varied]
        [--no-progress]

Bad arguments print a one-line ``error:`` and exit with status 2 before anything is written.
On a terminal, the package's progress bar counts the subjects written, as it counts an epoch's steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from brainage_tf.console import add_verbose_argument, entry_point
from brainage_tf.errors import UsageError
from brainage_tf.progress import on_terminal
from brainage_tf.synthetic.cohort import generate_cohort
from brainage_tf.synthetic.exterior import EXTERIOR_OPTIONS
from brainage_tf.synthetic.sampling import AGE_DISTRIBUTIONS
from brainage_tf.synthetic.sites import PROFILES
from brainage_tf.synthetic.spec import CohortSpec, check_workers


def _build_parser() -> argparse.ArgumentParser:
    """The flags; each flag of a CohortSpec field is stored under the field's name, with its default."""
    spec = CohortSpec
    parser = argparse.ArgumentParser(
        prog="python -m brainage_tf.synthetic",
        description="Write a synthetic developmental T1w cohort as a BIDS dataset.",
    )
    parser.add_argument("--out", required=True, help="dataset root directory")
    parser.add_argument(
        "--subjects", dest="n_subjects", metavar="N", type=int, required=True, help="number of participants"
    )
    parser.add_argument(
        "--min-age",
        type=float,
        default=spec.min_age,
        help=f"youngest first-visit age in years (default {spec.min_age:g})",
    )
    parser.add_argument(
        "--max-age", type=float, default=spec.max_age, help=f"oldest age in years (default {spec.max_age:g})"
    )
    parser.add_argument(
        "--profile", choices=PROFILES, default=spec.profile, help=f"site profile (default {spec.profile})"
    )
    parser.add_argument("--seed", type=int, default=spec.seed, help=f"cohort seed (default {spec.seed})")
    parser.add_argument(
        "--sessions", type=int, default=spec.sessions, help=f"visits per subject (default {spec.sessions})"
    )
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: all CPUs)")
    parser.add_argument(
        "--voxel-scale",
        type=float,
        default=spec.voxel_scale,
        help="multiply voxel sizes, e.g. 2 for quick tests",
    )
    parser.add_argument(
        "--age-distribution",
        choices=AGE_DISTRIBUTIONS,
        default=spec.age_distribution,
        help=f"first-visit ages (default {spec.age_distribution}): log_uniform, or nihpd, an NIH-PD-shaped "
        "infant arm (0-4.5 y, visits 3-12 months apart) and school-age arm (4.5-18.5 y, visits about "
        "2 years apart)",
    )
    parser.add_argument(
        "--exterior",
        choices=EXTERIOR_OPTIONS,
        default=spec.exterior,
        help=f"the head outside the brain (default {spec.exterior}): fixed, every site the template's skull "
        "and scalp; varied, each site its own skull and scalp thickness, fat brightness and neck coverage",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (drawn only on a terminal)"
    )
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
        spec = CohortSpec(
            **{field.name: getattr(args, field.name) for field in dataclasses.fields(CohortSpec)}
        )
        check_workers(args.workers)
    except UsageError as error:
        parser.error(str(error))
    progress = on_terminal() and not args.no_progress
    participants = generate_cohort(args.out, spec, workers=args.workers, progress=progress)
    print(f"wrote {len(participants)} subjects to {args.out}")
    return 0


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
