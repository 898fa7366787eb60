"""Export a trained run for TF Serving: `python -m brainage_tf.export --run RUN_DIR [--version N]`.

Writes `RUN_DIR/export/<version>/` with `brainage_tf.serving.export.export_run`: the
SavedModel with its `serving_default` and `predict_examples` signatures, the run's
calibration and the preprocessing its data carried. An existing version is never
overwritten. See docs/serving.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.console import add_verbose_argument, entry_point
from brainage_tf.errors import UsageError
from brainage_tf.training.run_directory import CHECKPOINTS


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m brainage_tf.export", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="Run directory to export.")
    parser.add_argument("--version", type=int, help="Version folder (default: 1 + the largest existing).")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best", help="Model to export.")
    add_verbose_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.export`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from brainage_tf.serving.export import export_run

    try:
        target = export_run(args.run, args.version, args.checkpoint)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"exported: {target}\n  signatures: serving_default (volume), predict_examples (examples)")
    return 0


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
