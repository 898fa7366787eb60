"""Recalibrate an export on a site's controls: `python -m brainage_tf.calibrate --model EXPORT_DIR ...`.

    python -m brainage_tf.calibrate --model runs/X/export/1 --bids controls/ --out runs/X/export
    python -m brainage_tf.calibrate --model runs/X/export/1 --manifest controls.csv --out site_export

The controls (scans with known ages, none the model trained on) are preprocessed as
`predict` preprocesses scans, and the export's model predicts them. Their bias line,
conformal intervals and out-of-distribution ranges replace the export's in a new version
`OUT/<next version>/`, with the same weights, bit for bit; a scan that fails is left out
and named. Exit code: 0, 1 when any control failed (the version is written), 2 for a
usage error (also: too few usable controls), 128 + the signal when interrupted. See
docs/evaluation.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.console import entry_point
from brainage_tf.errors import UsageError
from brainage_tf.evaluation.calibration import DEFAULT_CONFORMAL_LEVEL
from brainage_tf.serving.cli import OneLineParser, add_scan_arguments, checked_scans, run_batch_command


def build_parser() -> OneLineParser:
    """The command-line interface."""
    parser = OneLineParser(prog="python -m brainage_tf.calibrate", description=__doc__.splitlines()[0])
    add_scan_arguments(parser, default_workers=min(os.cpu_count() or 1, 4), ages_required=True)
    add = parser.add_argument
    add("--out", required=True, type=Path, metavar="BASE_DIR",
        help="Model folder the new version goes into, e.g. the parent's RUN_DIR/export.")  # fmt: skip
    add("--conformal-level", type=float, default=DEFAULT_CONFORMAL_LEVEL, help="Interval coverage aimed at.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.calibrate`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    written = []

    def left_out(index: int, row: dict) -> None:
        from brainage_tf.serving.recalibration import left_out_reason

        reason = left_out_reason(row)
        if reason:
            print(f"left out: {reason}", file=sys.stderr)

    def work() -> dict[str, int]:
        if not 0.0 < args.conformal_level < 1.0:
            raise UsageError(f"--conformal-level must be in (0, 1), got {args.conformal_level}")
        items = checked_scans(args)
        from brainage_tf.serving.recalibration import check_controls, recalibrate

        listed = {"bids": args.bids} if args.bids else {"manifest": args.manifest}
        (kind, path), level = next(iter(listed.items())), args.conformal_level
        check_controls(items, level, path)
        from brainage_tf.serving.exported_model import ExportedModel

        model = ExportedModel(args.model, None, args.max_voxels, args.skull_strip)
        source = {kind: str(Path(path).resolve())}
        result = recalibrate(
            model, items, args.out, source, level, args.workers, sys.stderr.isatty(), left_out
        )
        fits = result.fits
        print(
            f"recalibrated on {fits.scans} scans of {fits.subjects} subjects aged {fits.age_range[0]:.1f}-"
            f"{fits.age_range[1]:.1f} y: bias line slope {fits.bias_correction.slope:.3f}, intercept "
            f"{fits.bias_correction.intercept:.2f} y; {level:.0%} interval: predicted age +- "
            f"{fits.conformal.global_half_width:.2f} y"
        )
        written.append(result.target)
        return {"ok": fits.scans, "failed": len(result.failed)}

    return run_batch_command(parser.prog, argv, work, "used", lambda: written[0])


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
