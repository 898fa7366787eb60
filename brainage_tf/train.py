"""Train a brain-age model: `python -m brainage_tf.train`.

flags -> TrainConfig (a preset plus the flags given) -> strategy -> Trainer. With no
arguments it builds the embedded `synthetic_cohort/small` TFDS dataset if absent,
trains slice_lstm with the demo preset and prints where the run's outputs are.
See docs/training.md for flags, presets, the run directory and tf.distribute.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from brainage_tf.errors import DatasetError, UsageError
from brainage_tf.progress import on_terminal
from brainage_tf.training.distribute import make_strategy, split_cpu, worker_role_from_env
from brainage_tf.training.flags import build_parser, config_from_args
from brainage_tf.training.run_directory import LISTING, RunDirectory


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.train`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        # TensorFlow's C++ INFO lines, here and in Beam's worker processes, which inherit it.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    role = worker_role_from_env()
    interactive = on_terminal() and role.is_chief
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
        except DatasetError as error:
            raise UsageError(str(error)) from None
        started = time.perf_counter()
        results = Trainer(config, source, strategy, run, progress_bar=interactive).fit(resume=args.resume)
        trained = time.perf_counter() - started
        exported = export_for_serving(run) if args.export and role.is_chief else None
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if role.is_chief:
        print(
            f"done in {trained:.0f} s: {closing_figure(results)}\n"
            f"run directory: {run.path.resolve()}\n  {LISTING}"
        )
        if exported:
            print(f"  export for serving: {exported} (python -m brainage_tf.predict --model {exported} ...)")
    return 0


def export_for_serving(run: RunDirectory):
    """Fits the run's calibration, then exports its selected model; returns the export folder."""
    from brainage_tf.evaluation.run_evaluation import calibrate_run
    from brainage_tf.serving.export import export_run

    calibrate_run(run.path)
    return export_run(run.path).resolve()


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
