"""The measurement behind the `finetune` preset: learning rate, epochs and --freeze on a new site.

`nice python benchmarks/finetune_preset.py [--work DIR] [--quick]`

1. Builds the embedded synthetic cohort on the small grid with 100 replication subjects
   instead of 40 (JSON config `finetune_bench`: the `small` config's subjects, generated at
   1.5 mm voxels before the usual resampling to the 3 mm grid), so that each held-out half
   holds 50 site subjects.
2. Trains a parent slice_lstm on the discovery training split with the demo preset,
   shortened to `--parent-epochs`.
3. Fine-tunes it on one half of the replication subjects (`replication[:50%]`, then the
   other half: two folds), for every learning rate and --freeze choice, for `--epochs`
   epochs with the demo's batch and the preset's validation part (by subject, inside the
   fine-tuning half) picking the epoch.
4. Evaluates, on the other half, the model each epoch budget E would have selected (the
   lowest validation MAE among epochs 1..E; the schedule depends on the step only, so a run
   stopped at E is this one's first E epochs).

It prints one table: the held-out MAE of each setting, the mean over both folds (100
held-out subjects), next to the parent without adaptation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from brainage_tf import data  # noqa: E402
from brainage_tf.evaluation.inference import predict  # noqa: E402
from brainage_tf.training.config import TrainConfig  # noqa: E402
from brainage_tf.training.run_directory import RunDirectory  # noqa: E402
from brainage_tf.training.train_lib import train  # noqa: E402
from brainage_tf.training.trainer import Trainer  # noqa: E402
from tfds_builders.prepare import prepare_dataset  # noqa: E402

# The small config's cohorts with 100 replication subjects, generated at 1.5 mm (then resampled to the
# 3 mm grid as always) to build in a third of the time.
COHORT = {
    "name": "finetune_bench",
    "grid": "small",
    "registration": "none",
    "replication_subjects": 100,
    "voxel_scale": 1.5,
}
QUICK_COHORT = {
    "name": "finetune_bench_quick",
    "grid": "tiny",
    "registration": "none",
    "discovery_subjects": 24,
    "replication_subjects": 30,
    "voxel_scale": 3.9,
}
FOLDS = (("replication[:50%]", "replication[50%:]"), ("replication[50%:]", "replication[:50%]"))
FREEZES = ("none", "encoder")


class SnapshotTrainer(Trainer):
    """A Trainer that keeps the weights of every epoch, taken just before its validation."""

    snapshots: list

    def evaluate(self) -> float:
        self.snapshots.append(self.model.get_weights())
        return super().evaluate()


def held_out_mae(model, source: data.ExampleSource) -> float:
    """MAE (years) on every scan of a held-out source."""
    result = predict(model, source, data.Selection(0.0, 100.0, 0.0), "all")
    return float(np.mean(np.abs(result.predicted - result.ages)))


def fine_tune(config: TrainConfig, run_dir: Path, held_out: data.ExampleSource, budgets) -> dict:
    """One fine-tuning run; the held-out MAE of the epoch each budget selects."""
    source = data.tfds_source(config.dataset, config.train_split, config.data_dir)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    trainer = SnapshotTrainer(config, source, strategy, RunDirectory(run_dir), log=lambda line: None)
    trainer.snapshots = []
    started = time.perf_counter()
    trainer.fit()
    validation = [float(row["val_mae"]) for row in trainer.run.read_history()]
    selected = {budget: int(np.argmin(validation[:budget])) for budget in budgets}
    maes = {}
    for epoch in sorted(set(selected.values())):
        trainer.model.set_weights(trainer.snapshots[epoch])
        maes[epoch] = held_out_mae(trainer.model, held_out)
    return {
        "mae": {budget: maes[epoch] for budget, epoch in selected.items()},
        "epoch": {budget: epoch + 1 for budget, epoch in selected.items()},
        "seconds": time.perf_counter() - started,
    }


def table(parent_maes: list[float], results: dict, budgets, learning_rates) -> str:
    """The markdown table: one row per (freeze, learning rate), one column per epoch budget."""
    head = " | ".join(f"E = {budget}" for budget in budgets)
    lines = [
        f"| setting | {head} | epochs selected at E = {budgets[-1]} (fold 1, fold 2) |",
        "|---|" + "---:|" * len(budgets) + "---|",
        "| no adaptation (the parent) |" + f" {np.mean(parent_maes):.3f} |" * len(budgets) + " |",
    ]
    for freeze in FREEZES:
        for learning_rate in learning_rates:
            runs = results[freeze, learning_rate]
            cells = " | ".join(f"{np.mean([run['mae'][budget] for run in runs]):.3f}" for budget in budgets)
            epochs = ", ".join(str(run["epoch"][budgets[-1]]) for run in runs)
            lines.append(f"| --freeze {freeze}, learning rate {learning_rate:g} | {cells} | {epochs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="Work folder, reused (default: a new temporary folder).")
    parser.add_argument("--parent-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10, help="Fine-tuning epochs (the largest budget).")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-4, 1e-4])
    parser.add_argument("--halve-every-epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="A tiny cohort and 2 epochs: checks the script.")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="finetune_preset_"))
    cohort, epochs, parent_epochs = (
        (QUICK_COHORT, 2, 2) if args.quick else (COHORT, args.epochs, args.parent_epochs)
    )
    budgets = sorted({min(5, epochs), min(10, epochs), epochs})
    data_dir = str(work / "tfds")
    dataset = prepare_dataset("synthetic_cohort", json.dumps(cohort), data_dir).name
    print(f"{dataset} ready after {time.perf_counter() - started:.0f} s", flush=True)

    parent_dir = work / "parent"
    base = TrainConfig.demo().replace(dataset=dataset, data_dir=data_dir, strategy="one_device")
    if not (parent_dir / "best_model.keras").is_file():
        train(base.replace(epochs=parent_epochs), parent_dir, export=False, log=lambda line: None)
    print(f"parent trained after {time.perf_counter() - started:.0f} s", flush=True)

    import keras

    parent = keras.models.load_model(parent_dir / "best_model.keras")
    held_out = {split: data.tfds_source(dataset, split, data_dir) for _, split in FOLDS}
    parent_maes = [held_out_mae(parent, held_out[split]) for _, split in FOLDS]
    results = {}
    for freeze in FREEZES:
        for learning_rate in args.learning_rates:
            for fold, (train_split, held_out_split) in enumerate(FOLDS, start=1):
                config = TrainConfig.finetune().replace(
                    dataset=dataset,
                    data_dir=data_dir,
                    train_split=train_split,
                    strategy="one_device",
                    init_from=str(parent_dir),
                    freeze=freeze,
                    epochs=epochs,
                    learning_rate=learning_rate,
                    halve_every_epochs=args.halve_every_epochs,
                    # The quick cohort's halves are too small for a calibration part beside the selection.
                    calibration_fraction=0.0 if args.quick else TrainConfig.calibration_fraction,
                )
                run_dir = work / f"{freeze}_lr{learning_rate:g}_fold{fold}"
                shutil.rmtree(run_dir, ignore_errors=True)  # a reused work folder: fine-tune anew
                run = fine_tune(config, run_dir, held_out[held_out_split], budgets)
                results.setdefault((freeze, learning_rate), []).append(run)
                print(
                    f"--freeze {freeze}, lr {learning_rate:g}, fold {fold}: held-out MAE "
                    + ", ".join(f"E={b} {run['mae'][b]:.3f}" for b in budgets)
                    + f" ({run['seconds']:.0f} s)",
                    flush=True,
                )
    print(table(parent_maes, results, budgets, args.learning_rates))
    print(f"wall time {time.perf_counter() - started:.0f} s; work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
