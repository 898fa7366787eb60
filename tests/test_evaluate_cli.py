"""`python -m brainage_tf.evaluate` end to end on a tiny trained run, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from toy_data import TINY_RUN_FLAGS, store_toy_tfds, toy_cohort, toy_record

from brainage_tf import evaluate, train
from brainage_tf.preprocessing_record import PREPROCESSING_VERSION

SHAPE = (16, 20, 14)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 2-epoch slice_lstm run on a toy cohort with train, test and a test split holding one NaN scan."""
    root = tmp_path_factory.mktemp("evaluate")
    train_split = toy_cohort(40, SHAPE, seed=1)
    volumes, ages, subjects = toy_cohort(12, SHAPE, seed=2)
    subjects = np.array([f"test-{index:02d}" for index in range(12)])
    broken = volumes.copy()
    broken[3] = np.nan
    # The same scans as 6 children seen twice each: the longitudinal figures.
    visits = (volumes, ages, np.repeat([f"child-{index}" for index in range(6)], 2))
    splits = {"train": train_split, "test": (volumes, ages, subjects), "broken": (broken, ages, subjects)}
    store_toy_tfds(root / "tfds", "toy_eval", SHAPE, {**splits, "visits": visits})
    run_dir = root / "run"
    assert (
        train.main(
            [
                "--dataset",
                "toy_eval/tiny",
                "--data_dir",
                str(root / "tfds"),
                "--out",
                str(run_dir),
                *TINY_RUN_FLAGS,
            ]
        )
        == 0
    )
    return run_dir, root


def test_every_file_of_the_report_is_written(trained_run, capsys):
    run_dir, _ = trained_run
    assert evaluate.main(["--run", str(run_dir)]) == 0
    out_dir = run_dir / "eval" / "toy_eval-tiny-test"
    assert {path.name for path in out_dir.iterdir()} >= {
        "predictions.csv",
        "metrics.json",
        "report.md",
        "cs_curve.png",
        "predicted_vs_age.png",
        "error_by_age_group.png",
        "gap_vs_age.png",
    }
    table = pd.read_csv(out_dir / "predictions.csv")
    assert len(table) == 12 and table["subject_id"].tolist()[0] == "test-00"
    assert table["predicted_age"].notna().all() and table["corrected_predicted_age"].notna().all()
    assert (table["interval_low"] <= table["interval_high"]).all()
    assert np.allclose(table["brain_age_gap"], table["predicted_age"] - table["age"])
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["n"] == 12 and metrics["n_nonfinite"] == 0
    assert [group["label"] for group in metrics["age_groups"]] == ["0-5", "6-10", "11-15", "16-22"]
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(table["predicted_age"] - table["age"])), rel=1e-6)
    assert 0.0 <= metrics["conformal"]["coverage"] <= 1.0 and "bias_corrected" in metrics
    report = (out_dir / "report.md").read_text()
    assert "Average" in report and "| slice_lstm |" in report
    assert "](cs_curve.png)" in report
    calibration = json.loads((run_dir / "calibration.json").read_text())
    assert (
        calibration["n_validation"] > 0
        and calibration["bias_correction"]["n_fit"] == calibration["n_validation"]
    )
    # The intervals come from the validation subjects that did not pick the epoch (8 = 4 + 4 here).
    part, results = calibration["calibration_part"], json.loads((run_dir / "results.json").read_text())
    assert (part["fraction"], part["seed"], part["subjects"], part["selection_subjects"]) == (0.5, 0, 4, 4)
    assert part["subjects"] + results["num_val"] == calibration["n_validation"] == 8
    assert calibration["conformal"]["n_calibration"] == metrics["conformal"]["n_calibration"] == 4
    assert "Intervals: split conformal on 4 calibration subjects" in report


def test_children_seen_twice_get_the_change_icc_and_trajectories_and_no_truth_is_invented(trained_run):
    run_dir, _ = trained_run
    assert evaluate.main(["--run", str(run_dir), "--split", "visits"]) == 0
    out_dir = run_dir / "eval" / "toy_eval-tiny-visits"
    table = pd.read_csv(out_dir / "predictions.csv").sort_values(["subject_id", "age"])
    steps = table.groupby("subject_id")[["age", "predicted_age"]].diff().dropna()
    summary = json.loads((out_dir / "metrics.json").read_text())
    repeated = summary["longitudinal"]
    assert repeated["change"]["pairs"] == 6 and repeated["gap"]["subjects"] == 6
    assert repeated["change"]["mae"] == pytest.approx(np.mean(np.abs(steps["predicted_age"] - steps["age"])))
    assert repeated["change"]["slope"] == pytest.approx(
        np.polyfit(steps["age"], steps["predicted_age"], 1)[0]
    )
    within = table.groupby("subject_id")["corrected_brain_age_gap"].var(ddof=1).mean()  # two scans each
    assert repeated["corrected_gap"]["within_subject_sd"] == pytest.approx(np.sqrt(within))
    assert "truth" not in summary and "developmental_age" not in table  # a cohort without the columns
    assert (out_dir / "gaps.png").stat().st_size > 10_000
    assert "| slice_lstm | 6 | 6 |" in (out_dir / "report.md").read_text()


def test_a_corrupt_volume_gets_a_plausible_age_and_is_flagged_out_of_distribution(trained_run):
    # ReLU maps NaN to 0 on CPU, so the model answers a NaN volume with an ordinary age:
    # only the out-of-distribution check tells the user.
    run_dir, _ = trained_run
    assert evaluate.main(["--run", str(run_dir), "--split", "broken"]) == 0
    table = pd.read_csv(run_dir / "eval" / "toy_eval-tiny-broken" / "predictions.csv")
    assert len(table) == 12 and table["predicted_age"].notna().all()
    flagged = table[table["ood"]]
    assert flagged["subject_id"].tolist() == ["test-03"]
    assert flagged["ood_reason"].str.contains("intensity mean nan outside the training range").all()


def test_last_checkpoint_is_evaluated_apart_from_the_best(trained_run):
    run_dir, _ = trained_run
    assert evaluate.main(["--run", str(run_dir), "--checkpoint", "last"]) == 0
    assert (run_dir / "calibration-last.json").is_file()
    assert (run_dir / "validation_predictions-last.csv").is_file()
    last = json.loads((run_dir / "eval" / "toy_eval-tiny-test-last" / "metrics.json").read_text())
    assert last["evaluated"]["checkpoint"] == "last" and last["n"] == 12


def test_a_current_calibration_is_reused_without_the_model_and_new_inputs_refit_it(
    trained_run, monkeypatch, capsys
):
    from brainage_tf.evaluation import run_calibration
    from brainage_tf.training.run_directory import RunDirectory

    run_dir, root = trained_run
    assert evaluate.main(["--run", str(run_dir)]) == 0  # fitted at the export, or here
    saved = (run_dir / "calibration.json").read_text()

    def no_refit(*args, **kwargs):
        raise AssertionError("refitted")

    # Unchanged model, dataset and settings: read back; the training volumes are not read and the
    # model predicts the evaluated split only, not the validation subjects.
    monkeypatch.setattr(run_calibration.inference, "scan_statistics", no_refit)
    predicted_roles = []
    predict = run_calibration.inference.predict
    monkeypatch.setattr(
        run_calibration.inference,
        "predict",
        lambda model, source, selection, role: (
            predicted_roles.append(role) or predict(model, source, selection, role)
        ),
    )
    capsys.readouterr()
    assert evaluate.main(["--run", str(run_dir)]) == 0
    assert predicted_roles == ["all"]
    assert "calibration is current (same model, dataset and settings)" in capsys.readouterr().out
    assert (run_dir / "calibration.json").read_text() == saved
    run = RunDirectory(run_dir)
    config = run.read_config()
    # Another interval level, or another model file, is a refit.
    with pytest.raises(AssertionError, match="refitted"):
        run_calibration.calibrate(run, config, no_refit, level=0.8, log=lambda line: None)
    model_bytes = run.best_model_path.read_bytes()
    try:
        run.best_model_path.write_bytes(model_bytes + b"\0")
        with pytest.raises(AssertionError, match="refitted"):
            run_calibration.calibrate(run, config, no_refit, log=lambda line: None)
    finally:
        run.best_model_path.write_bytes(model_bytes)


def test_scan_statistics_are_each_stored_volumes_float64_mean_and_sd_without_a_model(trained_run):
    from brainage_tf import data
    from brainage_tf.evaluation import inference

    _, root = trained_run
    volumes, _, _ = toy_cohort(12, SHAPE, seed=2)
    stored = volumes.astype(np.float16).astype(np.float64)
    source = data.tfds_source("toy_eval/tiny", "test", str(root / "tfds"))
    statistics = inference.scan_statistics(source, data.Selection(validation_fraction=0.0), "all")
    order = [int(subject.split("-")[1]) for subject in statistics.columns["subject_id"]]
    np.testing.assert_allclose(statistics.intensity_mean, stored[order].mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(statistics.intensity_std, stored[order].std(axis=(1, 2, 3)), rtol=1e-12)
    assert np.isnan(statistics.predicted).all() and len(statistics) == 12


def test_non_finite_predictions_are_kept_listed_and_counted():
    from brainage_tf.evaluation.inference import Predictions
    from brainage_tf.evaluation.metrics import evaluation_metrics
    from brainage_tf.evaluation.ood import ReferenceRanges
    from brainage_tf.evaluation.run_evaluation import Calibration, prediction_table

    result = Predictions(
        ages=np.array([3.0, 8.0, 15.0]),
        predicted=np.array([4.0, np.nan, 14.0]),
        columns={"subject_id": np.array(["a", "b", "c"])},
        intensity_mean=np.zeros(3),
        intensity_std=np.ones(3),
    )
    calibration = Calibration(None, None, ReferenceRanges((0.0, 22.0), None, (-1.0, 1.0), (0.5, 1.5)), 0)
    table = prediction_table(result, calibration)
    assert table["subject_id"].tolist() == ["a", "b", "c"] and table["predicted_age"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert table["ood_reason"].tolist() == ["", "non-finite prediction", ""]
    summary = evaluation_metrics(result.ages, result.predicted)
    assert (summary["n"], summary["n_nonfinite"], summary["mae"]) == (2, 1, 1.0)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--split", "nope"], "has no split 'nope'"),
        (["--ages", "40", "50"], "is aged 40.0-50.0"),
        (["--dataset", "toy_other/tiny"], "the run's model takes volumes of shape (16, 20, 14)"),
        (["--dataset", "toy_affine/tiny"], "(run vs dataset: registration 'none' vs 'affine')"),
        (
            ["--dataset", "toy_v0/tiny"],
            f"its preprocessing version is 0, this package's is {PREPROCESSING_VERSION}",
        ),
        (["--conformal-level", "1.5"], "--conformal-level"),
    ],
)
def test_bad_requests_exit_with_one_line(flags, message, trained_run, capsys):
    run_dir, root = trained_run
    if "toy_other/tiny" in flags:
        store_toy_tfds(
            root / "tfds", "toy_other", (16, 20, 12), {"test": toy_cohort(4, (16, 20, 12), seed=3)}
        )
        capsys.readouterr()  # the dataset writer's own progress bars
    # Same shape, same site, preprocessed otherwise: registered, or by another preprocessing version.
    for name, changes in (("toy_affine", {"registration": "affine"}), ("toy_v0", {"version": 0})):
        if f"{name}/tiny" in flags:
            record = {**toy_record(SHAPE), **changes}
            store_toy_tfds(root / "tfds", name, SHAPE, {"test": toy_cohort(4, SHAPE, seed=3)}, record=record)
            capsys.readouterr()
    assert evaluate.main(["--run", str(run_dir), *flags]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_run_without_a_finished_model_exits(tmp_path, trained_run, capsys):
    run_dir, _ = trained_run
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((run_dir / "config.json").read_text())
    assert evaluate.main(["--run", str(unfinished)]) == 2
    assert "has no best_model.keras" in capsys.readouterr().err
