"""Evaluator's work: `brainage_tf.evaluation.run_evaluation` on one split, and a blessing.

The model is blessed when its MAE on the split is at most `max_mae` and no worse
than the MAE of the currently pushed model (the newest version in the serving
folder holding another model) on the same scans. A pushed model that cannot take
the split's volumes (another grid) cannot be compared, and the candidate is then
not blessed. Outputs, in the store folder:

```
run/        the run's config.json, best_model.keras, results.json, plus calibration.json (evaluation's)
eval/       predictions.csv, metrics.json, report.md and the plots (python -m brainage_tf.evaluate's)
blessing/   BLESSED or NOT_BLESSED, blessing.json, calibration.json (what the Pusher exports with)
```
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from brainage_tf.errors import ComponentError, UsageError
from pipelines.pusher import BLESSED, CALIBRATION, NOT_BLESSED, RUN_FILES, serving_baseline
from pipelines.store import OutputStore, StoredOutput

COMPONENT = "Evaluator"
# Figures of metrics.json copied into the Metrics artifact's metadata.
METRIC_KEYS = ("mae", "rmse", "r2", "pearson_r", "n")


def served_mae(export_dir: Path, dataset: str, split: str, data_dir: str, ages: tuple[float, float]) -> float:
    """MAE of a served export on the scans of a split aged within `ages`.

    Raises:
        ValueError: The export cannot take the split's volumes (its message says why).
    """
    from brainage_tf import data
    from brainage_tf.evaluation import metrics
    from brainage_tf.evaluation.inference import PREDICTION_BATCH_SIZE
    from brainage_tf.serving.exported_model import ExportedModel

    exported = ExportedModel(export_dir)
    source = data.tfds_source(dataset, split, data_dir)
    if tuple(source.volume_shape) != exported.grid_shape:
        raise ValueError(
            f"it takes volumes of shape {exported.grid_shape}, {dataset} has {source.volume_shape}"
        )
    selection = data.Selection(ages[0], ages[1], 0.0)
    true_ages, predicted = [], []
    for volumes, labels in data.prediction_dataset(source, selection, "all", PREDICTION_BATCH_SIZE):
        predicted.append(exported.predict(volumes.numpy()[..., 0])["predicted_age"])
        true_ages.append(labels["age"].numpy())
    return metrics.evaluation_metrics(np.concatenate(true_ages), np.concatenate(predicted))["mae"]


def blessing_reasons(
    mae: float,
    max_mae: float,
    baseline_version: int | None = None,
    baseline_mae: float | None = None,
    baseline_error: str | None = None,
) -> list[str]:
    """Why a candidate is not blessed; an empty list blesses it.

    Args:
        mae: The candidate's MAE (years) on the split.
        max_mae: Largest MAE blessed.
        baseline_version: Pushed version compared with (None: no other model serves).
        baseline_mae: That version's MAE on the same scans.
        baseline_error: Why that version could not be evaluated on them.

    Example:
        >>> blessing_reasons(1.2, 3.0, 4, 1.1)
        ['MAE 1.200 y is worse than pushed version 4 (1.100 y)']
    """
    reasons = [f"MAE {mae:.3f} y is above the maximum {max_mae:g} y"] if not mae <= max_mae else []
    if baseline_error is not None:
        reasons.append(f"cannot compare with pushed version {baseline_version}: {baseline_error}")
    elif baseline_mae is not None and not mae <= baseline_mae:
        reasons.append(
            f"MAE {mae:.3f} y is worse than pushed version {baseline_version} ({baseline_mae:.3f} y)"
        )
    return reasons


def run(
    store_dir: str,
    model_path: str,
    model_metadata: Mapping[str, Any],
    examples_path: str,
    examples_metadata: Mapping[str, Any],
    split: str,
    max_mae: float,
    serving_dir: str,
) -> dict[str, StoredOutput]:
    """Evaluates (or reuses the evaluation of) a run on one split of the examples and decides its blessing.

    Args:
        store_dir: The output store.
        model_path: Trainer's run directory.
        model_metadata: Trainer's artifact metadata.
        examples_path: ExampleGen's TFDS data dir.
        examples_metadata: ExampleGen's artifact metadata.
        split: Split to evaluate, e.g. "test" or "replication".
        max_mae: Largest MAE (years) that is blessed.
        serving_dir: The Pusher's serving folder, whose newest other model is the baseline.

    Returns:
        Outputs `metrics` (metrics.json), `report` (report.md) and `blessing` (the folder).

    Raises:
        ComponentError: An unknown split, no scan in the run's age range, or another grid.
    """
    dataset = examples_metadata["dataset"]
    model_fingerprint = model_metadata["content_fingerprint"]
    baseline = serving_baseline(serving_dir, model_fingerprint)
    parameters = {"split": split, "max_mae": float(max_mae)}
    inputs = {
        "model": model_fingerprint,
        "examples": examples_metadata["content_fingerprint"],
        "baseline": baseline[2] if baseline else "",
    }

    def evaluate_and_bless(folder: Path) -> dict:
        from brainage_tf.evaluation.run_evaluation import EvaluationRequest, evaluate

        run_copy = folder / "run"
        run_copy.mkdir()
        for name in RUN_FILES:  # evaluation writes calibration.json into the run: never into Trainer's
            shutil.copy2(Path(model_path) / name, run_copy / name)
        request = EvaluationRequest(
            run_dir=run_copy, dataset=dataset, split=split, data_dir=examples_path, out_dir=folder / "eval"
        )
        try:
            evaluate(request)
        except UsageError as error:
            raise ComponentError(str(error)) from None
        summary = json.loads((folder / "eval" / "metrics.json").read_text())
        mae, ages = summary["mae"], tuple(summary["evaluated"]["ages"])
        baseline_mae = baseline_error = None
        if baseline:
            try:
                baseline_mae = served_mae(baseline[1], dataset, split, examples_path, ages)
            except ValueError as error:  # UsageError and DatasetError are ValueErrors too
                baseline_error = str(error)
        reasons = blessing_reasons(
            mae, max_mae, baseline[0] if baseline else None, baseline_mae, baseline_error
        )
        blessing = {
            "blessed": not reasons,
            "reasons": reasons,
            "mae": mae,
            "max_mae": float(max_mae),
            "baseline_version": baseline[0] if baseline else None,
            "baseline_mae": baseline_mae,
            "model_fingerprint": model_fingerprint,
            "dataset": dataset,
            "split": split,
        }
        blessing_folder = folder / "blessing"
        blessing_folder.mkdir()
        (blessing_folder / (NOT_BLESSED if reasons else BLESSED)).touch()
        (blessing_folder / "blessing.json").write_text(json.dumps(blessing, indent=2) + "\n")
        shutil.copy2(run_copy / CALIBRATION, blessing_folder / CALIBRATION)
        verdict = "blessed" if not reasons else f"not blessed ({'; '.join(reasons)})"
        print(f"{COMPONENT}: MAE {mae:.3f} y on {dataset}:{split}: {verdict}")
        where = {"dataset": dataset, "split": split}
        return {
            "metrics": ("eval/metrics.json", {**where, **{key: summary.get(key) for key in METRIC_KEYS}}),
            "report": ("eval/report.md", where),
            "blessing": ("blessing", blessing),
        }

    return OutputStore(store_dir).run_or_reuse(COMPONENT, parameters, inputs, evaluate_and_bless)
