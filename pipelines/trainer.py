"""Trainer's work: `python -m brainage_tf.train` on ExampleGen's dataset, into the store.

The output is the run directory (config.json, history.csv, results.json,
best_model.keras, checkpoints/, tensorboard/); its artifact metadata holds the
run's config and its best validation MAE. Training flags go through the driver's
own parser, so every flag and preset of `brainage_tf.train` works here unchanged
and is checked in one place.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brainage_tf.errors import ComponentError
from pipelines.store import OutputStore, StoredOutput

COMPONENT = "Trainer"
# Set by the component from its input artifact and its store folder, never by the caller.
OWNED_FLAGS = ("--dataset", "--data_dir", "--data-dir", "--out", "--resume")


def _call_keeping_stderr(main, argv: Sequence[str]) -> tuple[int, str]:
    """Runs a `main(argv) -> int` entry point; returns its exit code and what it wrote to stderr.

    The text still reaches stderr (the task's log); argparse's exit is returned as a code.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            code = main(list(argv))
    except SystemExit as error:  # argparse rejects a flag
        code = error.code if isinstance(error.code, int) else 2
    sys.stderr.write(captured.getvalue())
    return code, captured.getvalue()


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
        model: "slice_lstm" or "resnet3d".
        preset: "demo" or "paper".
        train_args: More `python -m brainage_tf.train` flags, e.g. ["--epochs", "5"].

    Returns:
        The `model` output: the run directory and its metadata.

    Raises:
        ComponentError: A flag this component sets, or training that exits with an error.
    """
    owned = [arg for arg in train_args if arg.split("=")[0] in OWNED_FLAGS]
    if owned:
        raise ComponentError(f"train_args may not set {', '.join(owned)}: the Trainer sets them itself.")
    parameters = {"model": model, "preset": preset, "train_args": list(train_args)}
    dataset = examples_metadata["dataset"]

    def train(folder: Path) -> dict:
        from brainage_tf import train as driver

        argv = ["--dataset", dataset, "--data_dir", examples_path, "--model", model, "--preset", preset]
        argv.append("--no-export")  # the Evaluator calibrates and the Pusher exports the blessed model
        code, errors = _call_keeping_stderr(driver.main, [*argv, *train_args, "--out", str(folder)])
        if code != 0:
            lines = [line for line in errors.splitlines() if line.strip()]
            reason = lines[-1].split(": error: ", 1)[-1] if lines else "no message"
            raise ComponentError(f"training exited with code {code}: {reason}")
        results = json.loads((folder / "results.json").read_text())
        details = {
            "config": json.loads((folder / "config.json").read_text()),
            "best_val_mae": results["best_val_mae"],
            "mean_predictor_val_mae": results["mean_predictor_val_mae"],
            "dataset": dataset,
            "framework": "keras",
        }
        return {"model": (".", details)}

    inputs = {"examples": examples_metadata["content_fingerprint"]}
    return OutputStore(store_dir).run_or_reuse(COMPONENT, parameters, inputs, train)["model"]
