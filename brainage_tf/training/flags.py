"""The command-line flags of `python -m brainage_tf.train`, and how they become a TrainConfig.

A flag that a preset sets (epochs, batch size, ...) overrides the preset only when
it is given; every other flag has its default here. With `--init-from` the model and
its architecture flags come from the parent, and a given one that contradicts it is
refused. No TensorFlow import, so a bad flag is reported at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from brainage_tf.console import add_verbose_argument
from brainage_tf.defaults import DEFAULT_DATASET, MAX_AGE_YEARS, MIN_AGE_YEARS, SLICE_AXES
from brainage_tf.errors import UsageError, one_line
from brainage_tf.model_registry import model_names, model_specs
from brainage_tf.training.config import FREEZE_CHOICES, PRECISIONS, PRESETS, STRATEGIES, TrainConfig
from brainage_tf.training.init_from import inherit_architecture, read_parent

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
# Flags whose parser default is None so that `--init-from` knows whether they were given.
ARCHITECTURE_FLAGS = ("model", "slice_axis")
# The preset of a run without `--preset`: fine-tuning with `--init-from`, else the demo.
DEFAULT_PRESET, DEFAULT_FINETUNE_PRESET = "demo", "finetune"


class _RaisingParser(argparse.ArgumentParser):
    """A parser whose errors are UsageErrors, for callers that are not a command line."""

    def error(self, message: str):
        raise UsageError(message)


def build_parser(
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The command-line interface.

    Args:
        parser_class: ArgumentParser for a command line (usage and exit 2 on a bad flag).
    """
    parser = parser_class(
        prog="python -m brainage_tf.train",
        description="Train a brain-age model on a TFDS brain-MRI dataset. "
        "With no arguments: the demo run on the embedded synthetic cohort.",
    )
    add = parser.add_argument
    add(
        "--model",
        choices=model_names(),
        help="; ".join(f"{spec.name}: {spec.summary}" for spec in model_specs())
        + f" (default {TrainConfig.model}, or the --init-from parent's).",
    )
    add("--dataset", default=DEFAULT_DATASET, help="TFDS name/config (default %(default)s, built if absent).")
    add(
        "--data_dir",
        "--data-dir",
        dest="data_dir",
        help="TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets).",
    )
    add(
        "--train-split",
        default="train",
        help="Split to train on (default %(default)s), or a TFDS slice that cuts no subject apart, "
        "e.g. 'replication[:50%%]'.",
    )
    add(
        "--train-ages",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        default=(MIN_AGE_YEARS, MAX_AGE_YEARS),
        help="Train on subjects aged MIN-MAX years, inclusive (paper: 0 22 or 0 6).",
    )
    add(
        "--train-subjects",
        type=Path,
        metavar="FILE",
        help="Train and validate on these subjects of the split only: one subject id per line "
        "('#' starts a comment), e.g. the N scans of your site to fine-tune on.",
    )
    add(
        "--preset",
        choices=tuple(PRESETS),
        help=f"Fills every flag below that is not given (default {DEFAULT_PRESET}; "
        f"{DEFAULT_FINETUNE_PRESET} with --init-from).",
    )
    add(
        "--init-from",
        metavar="RUN_DIR_OR_EXPORT",
        help="Fine-tune: start from this run directory's best_model.keras or this export version "
        "folder's weights; the model and its architecture flags are the parent's.",
    )
    add(
        "--freeze",
        choices=FREEZE_CHOICES,
        default=TrainConfig.freeze,
        help="With --init-from: what keeps the parent's weights (encoder: the slice or volume "
        "encoder; the sequence model and head train). Default %(default)s.",
    )
    add(
        "--validation-fraction",
        type=float,
        help="Share of training subjects held out to pick the best "
        "epoch; 0 trains on all and keeps the final epoch, as the paper did (paper 0, demo 0.2).",
    )
    add(
        "--calibration-fraction",
        type=float,
        default=TrainConfig.calibration_fraction,
        help="Share of the validation subjects that take no part in picking the epoch and calibrate "
        "the prediction intervals instead (default %(default)s; 0: no intervals).",
    )
    add(
        "--calibration-seed",
        type=int,
        default=TrainConfig.calibration_seed,
        help="Seed of the subject hash that splits validation into selection and calibration.",
    )
    add("--epochs", type=int)
    add("--batch-size", type=int, help="Per-replica batch size.")
    add("--learning-rate", type=float)
    add("--halve-every-epochs", type=int)
    add("--width-multiplier", type=float)
    add("--slice-axis", choices=SLICE_AXES, help=f"Slicing plane (default {TrainConfig.slice_axis}).")
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
    add(
        "--export",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="After training, fit the calibration and export the selected model for serving "
        "(RUN_DIR/calibration.json, RUN_DIR/export/<version>/).",
    )
    add(
        "--precision",
        # Checked by TrainConfig.validate, not argparse, so a bad value is one line, not usage + error.
        metavar="{" + ",".join(PRECISIONS) + "}",
        default=TrainConfig.precision,
        help="Compute dtype policy (default %(default)s). auto: mixed_bfloat16 on CPUs with AVX512_BF16 "
        "or AMX and on GPUs with bf16, mixed_float16 on older GPUs, else float32. The age head, the "
        "loss and the variables stay float32.",
    )
    add_verbose_argument(parser)
    return parser


def parse_flags(argv: Sequence[str]) -> argparse.Namespace:
    """The training flags of a caller that is not a command line (a pipeline component).

    Raises:
        UsageError: An unknown flag or a bad value, in argparse's words.
    """
    return build_parser(_RaisingParser).parse_args(list(argv))


def read_subject_list(path: Path) -> tuple[str, ...]:
    """The subject ids of a `--train-subjects` file: one per line, blank lines and '#' comments ignored.

    Raises:
        UsageError: The file cannot be read or lists no subject.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--train-subjects {path}: cannot read it ({one_line(error)}).") from None
    subjects = tuple(dict.fromkeys(line.split("#", 1)[0].strip() for line in lines))
    subjects = tuple(subject for subject in subjects if subject)
    if not subjects:
        raise UsageError(f"--train-subjects {path}: lists no subject id (one per line).")
    return subjects


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The chosen preset with every given flag applied, and the parent's architecture, validated.

    Raises:
        UsageError: A bad value, or with `--init-from` an unreadable parent or a given
            architecture flag that contradicts it.
    """
    given = {
        name: getattr(args, name)
        for name in (*ARCHITECTURE_FLAGS, *PRESET_FLAGS)
        if getattr(args, name) is not None
    }
    preset = args.preset or (DEFAULT_FINETUNE_PRESET if args.init_from else DEFAULT_PRESET)
    config = PRESETS[preset]().replace(
        dataset=args.dataset,
        data_dir=args.data_dir,
        train_split=args.train_split,
        train_subjects=read_subject_list(args.train_subjects) if args.train_subjects else (),
        min_age=args.train_ages[0],
        max_age=args.train_ages[1],
        seed=args.seed,
        calibration_fraction=args.calibration_fraction,
        calibration_seed=args.calibration_seed,
        strategy=args.strategy,
        jit_compile=args.jit_compile,
        precision=args.precision,
        init_from=args.init_from,
        freeze=args.freeze,
        **given,
    )
    if args.init_from:
        config = inherit_architecture(config, read_parent(args.init_from), given)
    config.validate()
    return config
