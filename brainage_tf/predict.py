"""Predict brain ages of T1 scans with an export: `python -m brainage_tf.predict --model EXPORT_DIR ...`.

    python -m brainage_tf.predict --model runs/X/export/1 scan1.nii.gz scan2.nii.gz --out predictions.csv
    python -m brainage_tf.predict --model runs/X/export/1 --bids BIDS_DIR --out predictions.csv
    python -m brainage_tf.predict --model runs/X/export/1 --manifest scans.csv --out ages.csv [--resume]
    python -m brainage_tf.predict --model runs/X/export/1 --manifest scans.csv --out ages.csv \
        --runner PortableRunner --beam_pipeline_options "job_endpoint=embed,environment_type=EXTERNAL,..."
    python -m brainage_tf.predict --model runs/X/export/1 --bids BIDS_DIR --out ages.csv --report report/

Every scan goes through the preprocessing the export records, in worker processes
(`brainage_tf.serving`), and each row reaches `OUT.partial` as its scan finishes;
`OUT` is written at the end. A killed or interrupted run continues with `--resume`,
which keeps the finished scans. A scan that fails, or whose worker dies, gets a
"failed" row with its reason. With `--runner` (or a runner in `--beam_pipeline_options`)
the scans go through a Beam job instead (`brainage_tf.serving.beam_predict`), which writes
the same CSV; `--workers` is then unused. Exit code: 0, 1 when any scan failed, 2 for a usage
error, 128 + the signal when interrupted. See docs/serving.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.console import entry_point
from brainage_tf.errors import UsageError
from brainage_tf.preprocessing import GRIDS
from brainage_tf.serving.cli import OneLineParser, add_scan_arguments, checked_scans, run_batch_command


def build_parser() -> OneLineParser:
    """The command-line interface."""
    parser = OneLineParser(prog="python -m brainage_tf.predict", description=__doc__.splitlines()[0])
    add_scan_arguments(parser, default_workers=min(os.cpu_count() or 1, 4))
    parser.add_argument("--out", required=True, type=Path, metavar="CSV", help="Predictions CSV to write.")
    parser.add_argument("--grid", choices=tuple(GRIDS), help="Fail unless the export is on this grid.")
    parser.add_argument(
        "--runner",
        metavar="NAME",
        help="Predict in a Beam job on this runner (DirectRunner, PortableRunner, FlinkRunner, "
        "DataflowRunner...) instead of the local process pool.",
    )
    parser.add_argument(
        "--beam_pipeline_options",
        default="",
        metavar="K=V,...",
        help="Beam pipeline options, as `tfds build` takes them, e.g. "
        '"direct_running_mode=multi_processing,direct_num_workers=2".',
    )
    parser.add_argument(
        "--rows_dir",
        metavar="DIR_OR_URL",
        help="With a runner: where workers write finished rows (default: beside --out; e.g. gs://BUCKET/tmp "
        "for workers that do not mount --out's folder).",
    )
    parser.add_argument(
        "--report", type=Path, metavar="DIR", help="Also write an HTML page per scan and an index into DIR."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.predict`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def work() -> dict[str, int]:
        if args.report is not None and (args.runner or args.beam_pipeline_options):
            raise UsageError("--report is written by the local predict only; drop --runner to write it")
        items = checked_scans(args)
        from brainage_tf.serving.exported_model import ExportedModel
        from brainage_tf.serving.predictions import predict_to_csv

        model = ExportedModel(args.model, args.grid, args.max_voxels, args.skull_strip)
        if args.runner or args.beam_pipeline_options:
            from brainage_tf.serving.beam_predict import predict_on_beam
            from tfds_builders.prepare import parse_beam_options

            runner = [f"--runner={args.runner}"] if args.runner else []
            beam_args = [*parse_beam_options(args.beam_pipeline_options), *runner]
            return predict_on_beam(model, items, args.out, beam_args, args.resume, args.rows_dir)
        if args.report is None:
            return predict_to_csv(model, items, args.out, args.workers, args.resume, sys.stderr.isatty())
        from brainage_tf.report.writer import report_writer  # matplotlib loads only for a report

        report = report_writer(args.report, items, model)
        counts = predict_to_csv(model, items, args.out, args.workers, args.resume, sys.stderr.isatty(),
                                on_scan=report.montages)  # fmt: skip
        report.write(args.out)
        return counts

    return run_batch_command(parser.prog, argv, work, "predicted", args.out)


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
