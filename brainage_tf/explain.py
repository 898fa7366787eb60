"""Explain predicted brain ages: `python -m brainage_tf.explain --model EXPORT_DIR SCAN ... --out DIR`.

    python -m brainage_tf.explain --model runs/X/export/1 sub-01_T1w.nii.gz --out explain/
    python -m brainage_tf.explain --model runs/X/export/1 --bids BIDS_DIR --out explain/ --samples 16

Every scan goes through the export's preprocessing (as predict) and gets a folder
`DIR/<scan>/` with its saliency maps on the model grid and in the scan's own
voxels (NIfTI, each with a JSON sidecar), the slab occlusion table and plot, a
montage, and last the completion marker `explained.json`; `DIR/explain.csv` lists
every scan with its predicted age, status and reason. A killed or interrupted run
continues with `--resume`, which keeps the finished folders and remakes unfinished
ones. Exit code: 0, 1 when any scan failed, 2 for a usage error, 128 + the signal
when interrupted. See docs/explain.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.console import entry_point
from brainage_tf.defaults import SLICE_AXES
from brainage_tf.errors import UsageError
from brainage_tf.explanation.saliency import METHODS, SaliencySettings
from brainage_tf.serving.cli import OneLineParser, add_scan_arguments, checked_scans, run_batch_command
from brainage_tf.serving.explanations import SUMMARY_CSV, explain_items, slab_settings


def build_parser() -> OneLineParser:
    """The command-line interface."""
    defaults = SaliencySettings()
    parser = OneLineParser(prog="python -m brainage_tf.explain", description=__doc__.splitlines()[0])
    # One worker preprocesses ahead; the gradients in this process use the cores.
    add_scan_arguments(parser, default_workers=1)
    add = parser.add_argument
    add("--out", required=True, type=Path, metavar="DIR", help="Output folder (created).")
    add("--method", choices=METHODS, default=defaults.method, help="Saliency method (default %(default)s).")
    add("--samples", type=int, default=defaults.samples, help="Noisy copies or path steps (%(default)s).")
    add("--noise", type=float, default=defaults.noise, help="SmoothGrad noise, share of the intensity range.")
    add("--seed", type=int, default=defaults.seed, help="SmoothGrad noise seed.")
    add("--slab-axis", choices=SLICE_AXES, help="Axis of the occluded slabs (default: the export's).")
    add("--slab-size", type=int, help="Slices per occluded slab (default: the export's pool size).")
    return parser


def report(index: int, row: dict) -> None:
    """One line per finished scan."""
    outcome = row["reason"] or f"{row['predicted_age']:.2f} y ({row['seconds']:.1f} s)"
    print(f"{row.get('output_dir') or row['path']}: {row['status']} {outcome}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.explain`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def work() -> dict[str, int]:
        try:
            settings = SaliencySettings(args.method, args.samples, args.noise, seed=args.seed)
        except ValueError as error:
            raise UsageError(str(error)) from None
        items = checked_scans(args)
        from brainage_tf.serving.exported_model import ExportedModel

        model = ExportedModel(args.model, max_voxels=args.max_voxels, skull_strip=args.skull_strip)
        slabs = slab_settings(model.metadata, args.slab_axis, args.slab_size)
        args.out.mkdir(exist_ok=True)
        return explain_items(model, items, settings, slabs, args.out, args.workers, args.resume, report)

    return run_batch_command(parser.prog, argv, work, "explained", args.out / SUMMARY_CSV)


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
