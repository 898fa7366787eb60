"""`python -m brainage_tf.evaluate --compare / --ensemble` end to end on tiny runs of one toy dataset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from toy_data import TINY_RUN_FLAGS, store_toy_tfds, toy_cohort

from brainage_tf import evaluate, train

# resnet3d needs at least 33 voxels along one axis (instance norm after a stride of 32).
SHAPE = (36, 20, 14)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """2-epoch runs on one toy dataset: slice_lstm, resnet3d, and a 0-15 y slice_lstm without validation."""
    root = tmp_path_factory.mktemp("compare")
    volumes, ages, _ = toy_cohort(12, SHAPE, seed=2)
    test = (volumes, ages, np.array([f"test-{index:02d}" for index in range(12)]))
    store_toy_tfds(
        root / "tfds", "toy_compare", SHAPE, {"train": toy_cohort(40, SHAPE, seed=1), "test": test}
    )
    data = ["--dataset", "toy_compare/tiny", "--data_dir", str(root / "tfds")]
    trained = {
        "slice": ["--model", "slice_lstm"],
        "resnet": ["--model", "resnet3d"],
        "young": ["--model", "slice_lstm", "--train-ages", "0", "15", "--validation-fraction", "0"],
    }
    for name, flags in trained.items():
        assert train.main([*data, *flags, *TINY_RUN_FLAGS, "--out", str(root / name)]) == 0
    return root, ages


def test_compare_writes_both_rows_the_curves_and_the_paired_test(runs, capsys):
    root, ages = runs
    out = root / "compare"
    assert evaluate.main(["--compare", str(root / "slice"), str(root / "resnet"), "--out", str(out)]) == 0
    assert "report: " in capsys.readouterr().out
    assert (out / "cs_curves.png").stat().st_size > 10_000
    assert (root / "slice" / "eval" / "toy_compare-tiny-test" / "metrics.json").is_file()  # each run's own
    summary = json.loads((out / "metrics.json").read_text())
    assert list(summary["models"]) == ["slice_lstm", "resnet3d"] and summary["n_common"] == 12
    # The table's rows are the runs' own metrics: every subject is shared here.
    for label, run in (("slice_lstm", "slice"), ("resnet3d", "resnet")):
        own = json.loads((root / run / "eval" / "toy_compare-tiny-test" / "metrics.json").read_text())
        assert summary["models"][label]["mae"] == pytest.approx(own["mae"])
    (test,) = summary["wilcoxon"]
    assert (test["a"], test["b"], test["n"]) == ("slice_lstm", "resnet3d", 12)
    assert 0.0 <= test["p_value"] <= 1.0
    slice_errors = pd.read_csv(root / "slice" / "eval" / "toy_compare-tiny-test" / "predictions.csv")
    resnet_errors = pd.read_csv(root / "resnet" / "eval" / "toy_compare-tiny-test" / "predictions.csv")
    difference = (slice_errors["brain_age_gap"].abs() - resnet_errors["brain_age_gap"].abs()).median()
    assert test["median_difference"] == pytest.approx(difference, abs=1e-5)
    report = (out / "report.md").read_text()
    assert "| slice_lstm |" in report and "| resnet3d |" in report and "](cs_curves.png)" in report
    assert "| slice_lstm | resnet3d | 12 |" in report and "Wilcoxon 1945" in report


def test_ensemble_fits_weights_and_reports_both_ensembles(runs):
    root, ages = runs
    out = root / "ensemble"
    assert evaluate.main(["--ensemble", str(root / "slice"), str(root / "resnet"), "--out", str(out)]) == 0
    weights = json.loads((out / "ensemble_weights.json").read_text())
    assert weights["members"] == ["slice_lstm", "resnet3d"] and weights["n_validation"] > 0
    groups = weights["groups"]
    assert all(np.isclose(sum(group["weights"]), 1.0) for group in groups)
    assert sum(group["n_validation"] for group in groups) == weights["n_validation"]
    assert all(group["fallback"] == (group["n_validation"] < 5) for group in groups)
    assert all(group["weights"] == weights["global"]["weights"] for group in groups if group["fallback"])
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 12
    assert np.allclose(table["ensemble_mean"], (table["slice_lstm"] + table["resnet3d"]) / 2)
    low, high = table[["slice_lstm", "resnet3d"]].min(axis=1), table[["slice_lstm", "resnet3d"]].max(axis=1)
    assert (
        (table["ensemble_age_weighted"] >= low - 1e-6) & (table["ensemble_age_weighted"] <= high + 1e-6)
    ).all()
    summary = json.loads((out / "metrics.json").read_text())
    assert list(summary["models"]) == ["slice_lstm", "resnet3d", "ensemble (mean)", "ensemble (age-weighted)"]
    mae = np.mean(np.abs(table["ensemble_age_weighted"] - table["age"]))
    assert summary["models"]["ensemble (age-weighted)"]["mae"] == pytest.approx(mae, rel=1e-6)
    report = (out / "report.md").read_text()
    assert "| ensemble (mean) |" in report and "| ensemble (age-weighted) |" in report
    assert report.count("lower than every member's on this set") == 2


def test_ensemble_without_validation_is_the_mean_on_the_shared_subjects(runs):
    root, ages = runs
    out = root / "ensemble-young"
    assert evaluate.main(["--ensemble", str(root / "slice"), str(root / "young"), "--out", str(out)]) == 0
    assert not (out / "ensemble_weights.json").exists()
    summary = json.loads((out / "metrics.json").read_text())
    # Same model twice: labelled by run folder. The 0-15 y run evaluates only its own ages.
    assert list(summary["models"]) == ["slice_lstm (slice)", "slice_lstm (young)", "ensemble (mean)"]
    assert summary["n_common"] == int(np.sum(ages <= 15)) < 12
    report = (out / "report.md").read_text()
    assert "no validation predictions for slice_lstm (young)" in report
    assert (
        f"compared on the {summary['n_common']} in common, {12 - summary['n_common']} of slice_lstm (slice)"
        in report
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        ("--compare {r}/slice --out {r}/bad", "--compare needs at least two runs, got 1."),
        ("--ensemble {r}/slice {r}/resnet", "--ensemble needs --out DIR"),
        ("--compare {r}/slice {r}/resnet --out {r}/bad --split nope", "has no split 'nope'"),
        ("--compare {r}/slice {r}/resnet --out {r}/bad --ages 40 50", "is aged 40.0-50.0"),
        (
            "--compare {r}/slice {r}/resnet --out {r}/bad --dataset toy_grid/tiny",
            "model takes volumes of shape",
        ),
        ("--compare {r}/slice {r}/nowhere --out {r}/bad", "nowhere is not a run directory"),
        ("--ensemble {r}/slice {r}/slice --out {r}/bad", "a run is given twice"),
    ],
)
def test_bad_requests_exit_with_one_line(argv, message, runs, capsys):
    root, _ = runs
    if "toy_grid/tiny" in argv:  # the runs' data dir, another grid
        store_toy_tfds(root / "tfds", "toy_grid", (16, 20, 14), {"test": toy_cohort(4, (16, 20, 14), seed=3)})
        capsys.readouterr()  # the dataset writer's progress bars
    assert evaluate.main(argv.format(r=root).split()) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_run_compare_and_ensemble_exclude_each_other(runs, capsys):
    root, _ = runs
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--run", str(root / "slice"), "--compare", str(root / "slice"), str(root / "resnet")])
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
