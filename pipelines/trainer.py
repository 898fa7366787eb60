"""Trainer's work: `brainage_tf.training.train_lib.train` on ExampleGen's dataset, into the store.

The output is the run directory (config.json, history.csv, results.json,
best_model.keras, checkpoints/, tensorboard/); its artifact metadata holds the
run's config and its best validation MAE. `train_args` are the flags of
`python -m brainage_tf.train`, parsed by its own parser into the same TrainConfig,
so every flag and preset works here unchanged and is checked in one place; a bad
one is a UsageError, reported as this component's error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brainage_tf.errors import ComponentError
from pipelines.store import OutputStore, StoredOutput

COMPONENT = "Trainer"
# Set by the component from its input artifact and its store folder, never by the caller.
OWNED_FLAGS = ("--dataset", "--data_dir", "--data-dir", "--out", "--resume")


def run(
    store_dir: str,
    examples_path: str,
    examples_metadata: Mapping[str, Any],
    model: str,
    preset: str,
    train_args: Sequence[str] = (),
) -> StoredOutput:
    """Trains (or reuses) one run on the examples.

    Args:
        store_dir: The output store.
        examples_path: ExampleGen's TFDS data dir.
        examples_metadata: ExampleGen's artifact metadata (`dataset`, `content_fingerprint`).
        model: A registered model name: "slice_lstm" or "resnet3d".
        preset: "demo" or "paper".
        train_args: More `python -m brainage_tf.train` flags, e.g. ["--epochs", "5"].

    Returns:
        The `model` output: the run directory and its metadata.

    Raises:
        ComponentError: A flag this component sets, a bad flag, or a request training refuses.
    """
    owned = [arg for arg in train_args if arg.split("=")[0] in OWNED_FLAGS]
    if owned:
        raise ComponentError(f"train_args may not set {', '.join(owned)}: the Trainer sets them itself.")
    parameters = {"model": model, "preset": preset, "train_args": list(train_args)}
    dataset = examples_metadata["dataset"]

    def train(folder: Path) -> dict:
        from brainage_tf.errors import UsageError
        from brainage_tf.training.flags import config_from_args, parse_flags
        from brainage_tf.training.train_lib import train as train_run

        argv = ["--dataset", dataset, "--data_dir", examples_path, "--model", model, "--preset", preset]
        try:
            args = parse_flags([*argv, *train_args])
            # No export: the Evaluator calibrates and the Pusher exports the blessed model.
            result = train_run(
                config_from_args(args),
                folder,
                export=False,
                logical_cpus=args.logical_cpus,
                verbose=args.verbose,
            )
        except UsageError as error:
            raise ComponentError(f"training refused: {error}") from None
        results = result.results
        details = {
            "config": result.config.to_json(),
            "best_val_mae": results["best_val_mae"],
            "mean_predictor_val_mae": results["mean_predictor_val_mae"],
            "dataset": dataset,
            "framework": "keras",
        }
        return {"model": (".", details)}

    inputs = {"examples": examples_metadata["content_fingerprint"]}
    return OutputStore(store_dir).run_or_reuse(COMPONENT, parameters, inputs, train)["model"]
