"""Train a brain-age model: `python -m brainage_tf.train`.

flags -> TrainConfig (a preset plus the flags given) -> strategy -> Trainer. With no
arguments it builds the embedded `synthetic_cohort/small` TFDS dataset if absent,
trains slice_lstm with the demo preset and prints where the run's outputs are.
See docs/training.md for flags, presets, the run directory and tf.distribute.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from brainage_tf.console import entry_point
from brainage_tf.errors import UsageError
from brainage_tf.progress import on_terminal
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.distribute import worker_role_from_env
from brainage_tf.training.flags import build_parser, config_from_args
from brainage_tf.training.run_directory import LISTING, RunDirectory
from brainage_tf.training.train_lib import resumed_config, train


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.train`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    role = worker_role_from_env()
    try:
        if args.resume:
            out = args.out or RunDirectory.default_path(args.model or TrainConfig.model)
            config = resumed_config(out, args.epochs)
        else:
            config = config_from_args(args)
            out = args.out or RunDirectory.default_path(config.model)
        result = train(
            config,
            out,
            resume=args.resume,
            export=args.export,
            logical_cpus=args.logical_cpus,
            role=role,
            verbose=args.verbose,
            progress_bar=on_terminal() and role.is_chief,
        )
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if role.is_chief:
        print(
            f"done in {result.seconds:.0f} s: {closing_figure(result.results)}\n"
            f"run directory: {result.run_dir.resolve()}\n  {LISTING}"
        )
        if result.export_dir:
            print(
                f"  export for serving: {result.export_dir} "
                f"(python -m brainage_tf.predict --model {result.export_dir} ...)"
            )
    return 0


def closing_figure(results: dict) -> str:
    """The run's headline figure against its baseline."""
    if results["best_val_mae"] is None:
        return (
            f"final-epoch training MAE {results['last_train_mae']:.3f} y "
            "(no validation part: --validation-fraction 0)."
        )
    return (
        f"best validation MAE {results['best_val_mae']:.3f} y vs "
        f"{results['mean_predictor_val_mae']:.3f} y for the training-mean predictor."
    )


# `python -m` and the console script: main with TensorFlow's native log lines off the console.
command = entry_point(main)

if __name__ == "__main__":
    sys.exit(command())
