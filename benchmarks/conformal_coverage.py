"""Coverage of the conformal intervals end to end, over several seeds of the tiny synthetic cohort.

`python benchmarks/conformal_coverage.py [--seeds 5] [--epochs 4] [--work DIR]`

For each seed s: generate the synthetic cohort with seed s on the tiny grid (coarse
generation: the 8 mm grid needs no finer scans), ingest it through the builders' Beam
pipeline, train a short slice_lstm (seed s, calibration seed s, the demo's validation and
calibration fractions), calibrate it as training's export does and evaluate it on the
cohort's test split, whose subjects took part in nothing. The table gives, per seed, the
calibration subjects n, the coverage of the 90 % intervals on the test subjects and their
mean width; then the coverage the intervals would have had if calibrated on the selection
subjects, which chose the epoch (the failure mode of issue 19). Split conformal promises a
mean coverage between 0.9 and 0.9 + 1/(n+1) over draws of calibration and test subjects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainage_tf import data, train  # noqa: E402
from brainage_tf.evaluation.calibration import DEFAULT_CONFORMAL_LEVEL, ConformalIntervals, coverage  # noqa: E402
from brainage_tf.evaluation.held_out import one_scan_per_subject  # noqa: E402
from brainage_tf.evaluation.run_evaluation import EvaluationRequest, evaluate  # noqa: E402
from brainage_tf.training.run_directory import RunDirectory  # noqa: E402
from brainage_tf.training.trainer import selection_of  # noqa: E402
from tfds_builders.prepare import prepare_dataset  # noqa: E402

# The tiny config's grid with more discovery subjects (40 test, about 20 calibration subjects).
DISCOVERY_SUBJECTS = 200
TRAINING = "--batch-size 4 --width-multiplier 0.125 --slice-size 40 40 --pool-size 2 --strategy one_device"


def cohort(seed: int, data_dir: Path) -> str:
    """Builds the seed's cohort (reused when built); returns its TFDS name."""
    config = {
        "name": f"coverage_seed{seed}",
        "grid": "tiny",
        "registration": "none",
        "discovery_subjects": DISCOVERY_SUBJECTS,
        "replication_subjects": 1,
        "seed": seed,
        "voxel_scale": 2.0,
    }
    return prepare_dataset("synthetic_cohort", json.dumps(config), str(data_dir)).name


def selection_coverage(run_dir: Path, test: pd.DataFrame, level: float) -> tuple[float, float]:
    """Coverage and width of intervals calibrated on the selection subjects (those that chose the epoch)."""
    run = RunDirectory(run_dir)
    selection = selection_of(run.read_config())
    validation = pd.read_csv(
        run_dir / "validation_predictions.csv", dtype={"subject_id": str, "session": str}
    )
    labels = data.Labels(validation["age"].to_numpy(np.float32), validation["subject_id"].to_numpy(object))
    chose = validation[data.role_mask(labels, selection, "selection")]
    kept = chose.iloc[one_scan_per_subject(chose["subject_id"], chose["session"].fillna(""), 0)]
    intervals = ConformalIntervals.fit(kept["age"], kept["predicted_age"], level=level)
    low, high = intervals.interval(test["predicted_age"].to_numpy())
    return coverage(test["age"], low, high), 2 * intervals.global_half_width


def one_seed(seed: int, work: Path, epochs: int) -> dict:
    started = time.perf_counter()
    dataset = cohort(seed, work / "tfds")
    run_dir = work / f"run_seed{seed}"
    flags = ["--dataset", dataset, "--data_dir", str(work / "tfds"), "--out", str(run_dir)]
    flags += [
        *TRAINING.split(),
        "--epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--calibration-seed",
        str(seed),
    ]
    if not (run_dir / "best_model.keras").is_file():
        assert train.main([*flags, "--no-export"]) == 0
    out = evaluate(EvaluationRequest(run_dir=run_dir, split="test"), log=lambda line: None)
    metrics = json.loads((out / "metrics.json").read_text())
    part = json.loads((run_dir / "calibration.json").read_text())["calibration_part"]
    test = pd.read_csv(out / "predictions.csv")
    old_coverage, old_width = selection_coverage(run_dir, test, DEFAULT_CONFORMAL_LEVEL)
    return {
        "seed": seed,
        "n_cal": part["subjects"],
        "n_sel": part["selection_subjects"],
        "n_test": metrics["n"],
        "mae": metrics["mae"],
        "coverage": metrics["conformal"]["coverage"],
        # None in metrics.json when the intervals are unbounded (too few calibration subjects).
        "width": metrics["conformal"]["mean_width"] or float("inf"),
        "selection_coverage": old_coverage,
        "selection_width": old_width,
        "seconds": time.perf_counter() - started,
    }


def report(rows: list[dict], level: float) -> str:
    """The table and the summary lines."""
    lines = [
        "| seed | n_cal | n_sel | n_test | MAE (y) | coverage | width (y) | on selection | width |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['n_cal']} | {r['n_sel']} | {r['n_test']} | {r['mae']:.2f} "
            f"| {r['coverage']:.3f} | {r['width']:.2f} | {r['selection_coverage']:.3f} "
            f"| {r['selection_width']:.2f} |"
        )
    cover = np.array([r["coverage"] for r in rows])
    old = np.array([r["selection_coverage"] for r in rows])
    upper = np.mean([level + 1 / (r["n_cal"] + 1) for r in rows])
    se = cover.std(ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else float("nan")
    lines += [
        "",
        f"mean coverage {cover.mean():.3f} (standard error over seeds {se:.3f}); nominal {level}, "
        f"finite-sample bound [{level}, {upper:.3f}] (mean of {level} + 1/(n_cal+1))",
        f"calibrated on the selection subjects instead: mean coverage {old.mean():.3f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work", type=Path, help="Work folder, reused (default: a new temporary folder).")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="conformal_coverage_"))
    rows = []
    for seed in range(args.seeds):
        rows.append(one_seed(seed, work, args.epochs))
        row = rows[-1]
        print(
            f"seed {seed}: n_cal {row['n_cal']}, coverage {row['coverage']:.3f}, {row['seconds']:.0f} s",
            flush=True,
        )
    print(report(rows, DEFAULT_CONFORMAL_LEVEL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
