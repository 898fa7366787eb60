"""Evaluate trained runs: `python -m brainage_tf.evaluate --run RUN_DIR | --compare RUNS | --ensemble RUNS`.

    --run RUN_DIR [--split test]          one run
    --compare RUN_A RUN_B ... --out DIR   several runs side by side on one set
    --ensemble RUN_A RUN_B ... --out DIR  their mean and age-weighted ensembles

`--run` writes RUN_DIR/eval/<dataset>-<split>/ with predictions.csv, metrics.json,
the CS curve and three more plots, and report.md with the paper's tables (MAE per
age group and Average, He et al. ISBI 2020 Tables 1-3). Call it once per evaluated
set, e.g. the discovery `test` split and the `replication` split. `--explain` adds
`explain/`: the mean normalised saliency map per age group (NIfTI) and a montage
comparing the groups (docs/explain.md).

`--compare` evaluates each run on the same dataset and split (writing each run's
own eval folder too) and writes into DIR report.md (one table row per model, paired
Wilcoxon signed-rank tests of the absolute errors), cs_curves.png and metrics.json.
`--ensemble` combines the runs as the paper's conclusion proposes (the mean, and
weights per age group fitted on the runs' validation predictions) and writes
predictions.csv, ensemble_weights.json, metrics.json, cs_curves.png and report.md.
See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.console import add_verbose_argument, entry_point
from brainage_tf.errors import UsageError
from brainage_tf.evaluation.calibration import DEFAULT_CONFORMAL_LEVEL
from brainage_tf.evaluation.metrics import CS_MAX_ALPHA
from brainage_tf.training.run_directory import CHECKPOINTS


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m brainage_tf.evaluate", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--run", type=Path, metavar="RUN_DIR", help="Run directory written by python -m brainage_tf.train."
    )
    what.add_argument("--compare", nargs="+", type=Path, metavar="RUN", help="Compare these runs (--out).")
    what.add_argument("--ensemble", nargs="+", type=Path, metavar="RUN", help="Ensemble these runs (--out).")
    add("--dataset", help="TFDS name/config to evaluate (default: the run's dataset).")
    add(
        "--split",
        default="test",
        help="Split to evaluate (default %(default)s; e.g. replication, or a slice that cuts no subject "
        "apart: 'replication[50%%:]').",
    )
    add("--data_dir", "--data-dir", dest="data_dir", help="TFDS data dir (default: the run's).")
    add("--checkpoint", choices=CHECKPOINTS, default="best", help="best_model.keras or the last checkpoint.")
    add("--ages", nargs=2, type=float, metavar=("MIN", "MAX"), help="Ages evaluated (default: the run's).")
    add("--age-edges", nargs="+", type=float, metavar="EDGE", help="Age-group edges (default: the paper's).")
    add("--cs-max-alpha", type=float, default=CS_MAX_ALPHA, help="Largest CS error level (years).")
    add("--conformal-level", type=float, default=DEFAULT_CONFORMAL_LEVEL, help="Interval coverage aimed at.")
    add("--conformal-by-age-bin", action="store_true", help="One interval width per predicted-age group.")
    add("--explain", action="store_true", help="--run: also saliency maps per age group (explain/).")
    add(
        "--out",
        type=Path,
        help="Output folder (--run: default RUN_DIR/eval/<dataset>-<split>; needed by --compare/--ensemble).",
    )
    add_verbose_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.evaluate`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not 0.0 < args.conformal_level < 1.0:
            raise UsageError(f"--conformal-level must be in (0, 1), got {args.conformal_level}.")
        if args.age_edges is not None and (
            len(args.age_edges) < 2 or sorted(args.age_edges) != args.age_edges
        ):
            raise UsageError(f"--age-edges needs at least two increasing edges, got {args.age_edges}.")
        if args.ages is not None and args.ages[0] > args.ages[1]:
            raise UsageError(f"--ages: minimum {args.ages[0]} is above maximum {args.ages[1]}.")
        runs = args.compare or args.ensemble
        if runs is not None and args.explain:
            raise UsageError("--explain applies to --run only.")
        if runs is not None:
            flag = "--compare" if args.compare else "--ensemble"
            if len(runs) < 2:
                raise UsageError(f"{flag} needs at least two runs, got {len(runs)}.")
            if args.out is None:
                raise UsageError(f"{flag} needs --out DIR for its report.")
        from brainage_tf.evaluation.run_evaluation import EvaluationRequest, evaluate

        request = EvaluationRequest(
            run_dir=args.run,
            dataset=args.dataset,
            split=args.split,
            data_dir=args.data_dir,
            checkpoint=args.checkpoint,
            ages=tuple(args.ages) if args.ages else None,
            age_edges=args.age_edges,
            cs_max_alpha=args.cs_max_alpha,
            conformal_level=args.conformal_level,
            conformal_by_age_bin=args.conformal_by_age_bin,
            out_dir=args.out,
            explain=args.explain,
        )
        if args.compare:
            from brainage_tf.evaluation.compare import compare

            out_dir = compare(args.compare, args.out, request)
        elif args.ensemble:
            from brainage_tf.evaluation.ensemble import ensemble

            out_dir = ensemble(args.ensemble, args.out, request)
        else:
            out_dir = evaluate(request)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    written = sorted(path.name for path in out_dir.iterdir() if path.name != "report.md")
    print(f"report: {out_dir / 'report.md'}\n  {', '.join(written)}")
    return 0


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
