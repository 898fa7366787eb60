"""Train a brain-age model: `python -m brainage_tf.train`.

flags -> TrainConfig (a preset plus the flags given) -> strategy -> Trainer. With no
arguments it builds the embedded `synthetic_cohort/small` TFDS dataset if absent,
trains slice_lstm with the demo preset and prints where the run's outputs are.
See docs/training.md for flags, presets, the run directory and tf.distribute.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.defaults import DEFAULT_DATASET, MAX_AGE_YEARS, MIN_AGE_YEARS, MODEL_NAMES, SLICE_AXES
from brainage_tf.training.config import PRESETS, STRATEGIES, TrainConfig, UsageError
from brainage_tf.training.distribute import make_strategy, split_cpu, worker_role_from_env
from brainage_tf.training.run_directory import LISTING, RunDirectory

# Flags that override a preset's value only when given (their parser default is None).
PRESET_FLAGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "halve_every_epochs",
    "width_multiplier",
    "slice_size",
    "pool_size",
    "validation_fraction",
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m brainage_tf.train",
        description="Train slice_lstm (2D-ResNet18+LSTM) or resnet3d on a TFDS brain-MRI dataset. "
        "With no arguments: the demo run on the embedded synthetic cohort.",
    )
    add = parser.add_argument
    add("--model", choices=MODEL_NAMES, default=MODEL_NAMES[0])
    add("--dataset", default=DEFAULT_DATASET, help="TFDS name/config (default %(default)s, built if absent).")
    add(
        "--data_dir",
        "--data-dir",
        dest="data_dir",
        help="TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets).",
    )
    add("--train-split", default="train")
    add(
        "--train-ages",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        default=(MIN_AGE_YEARS, MAX_AGE_YEARS),
        help="Train on subjects aged MIN-MAX years, inclusive (paper: 0 22 or 0 6).",
    )
    add("--preset", choices=tuple(PRESETS), default="demo", help="Fills every flag below that is not given.")
    add(
        "--validation-fraction",
        type=float,
        help="Share of training subjects held out to pick the best "
        "epoch; 0 trains on all and keeps the final epoch, as the paper did (paper 0, demo 0.2).",
    )
    add("--epochs", type=int)
    add("--batch-size", type=int, help="Per-replica batch size.")
    add("--learning-rate", type=float)
    add("--halve-every-epochs", type=int)
    add("--width-multiplier", type=float)
    add("--slice-axis", choices=SLICE_AXES, default=TrainConfig.slice_axis)
    add("--slice-size", type=int, nargs=2, metavar=("H", "W"))
    add("--pool-size", type=int, help="k of the average pooling over slices.")
    add("--out", type=Path, help="Run directory (default runs/<model>_<UTC time>).")
    add(
        "--resume",
        action="store_true",
        help="Continue the run in --out from its last checkpoint "
        "(its config.json wins; --epochs may extend it).",
    )
    add("--seed", type=int, default=TrainConfig.seed)
    add("--strategy", choices=STRATEGIES, default=TrainConfig.strategy)
    add(
        "--logical-cpus",
        type=int,
        default=0,
        help="Split the CPU into this many logical devices (mirrored without GPUs).",
    )
    add("--jit-compile", action="store_true", help="XLA (GPUs; slower on CPU).")
    add("--verbose", action="store_true", help="Show Beam's and TFDS's INFO logs while building a dataset.")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The chosen preset with every given flag applied, validated."""
    overrides = {name: getattr(args, name) for name in PRESET_FLAGS if getattr(args, name) is not None}
    config = PRESETS[args.preset]().replace(
        model=args.model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        train_split=args.train_split,
        min_age=args.train_ages[0],
        max_age=args.train_ages[1],
        slice_axis=args.slice_axis,
        seed=args.seed,
        strategy=args.strategy,
        jit_compile=args.jit_compile,
        **overrides,
    )
    config.validate()
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.train`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    role = worker_role_from_env()
    interactive = sys.stderr.isatty() and role.is_chief
    try:
        run = RunDirectory(args.out or RunDirectory.default_path(args.model), role)
        if args.resume:
            config = run.read_config().replace(**({"epochs": args.epochs} if args.epochs else {}))
        else:
            config = config_from_args(args)
            run.check_new()
        config.validate()
        if args.logical_cpus > 1:
            split_cpu(args.logical_cpus)
        strategy = make_strategy(config.strategy, role)

        from brainage_tf import data
        from brainage_tf.training.trainer import Trainer
        from tfds_builders.embedded import ensure_prepared

        config.data_dir = config.data_dir or data.default_data_dir()
        try:
            ensure_prepared(config.dataset, config.data_dir, verbose=args.verbose, progress_bar=interactive)
            source = data.tfds_source(config.dataset, config.train_split, config.data_dir)
        except data.DatasetError as error:
            raise UsageError(str(error)) from None
        started = time.perf_counter()
        results = Trainer(config, source, strategy, run, progress_bar=interactive).fit(resume=args.resume)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if role.is_chief:
        print(
            f"done in {time.perf_counter() - started:.0f} s: {closing_figure(results)}\n"
            f"run directory: {run.path.resolve()}\n  {LISTING}"
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


if __name__ == "__main__":
    sys.exit(main())
