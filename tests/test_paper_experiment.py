"""`python -m pipelines.paper_experiment`: the tiny experiment end to end, seeds, and bad flags."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toy_data import store_toy_tfds, toy_cohort

from brainage_tf.errors import UsageError
from brainage_tf.training.config import TrainConfig
from pipelines import experiment_folder, paper_experiment, paper_report

# resnet3d needs at least 33 voxels along one axis (instance norm after a stride of 32).
SHAPE = (36, 20, 14)
TABLE_1_HEADER = "| Method | 0-5 | 6-10 | 11-15 | 16-22 | Average |"
YOUNG_HEADER = "| Method | 0-1 | 1-2 | 2-3 | 3-4 | 4-5 | 5-6 | Average |"
# The paper's rows, typed from He et al. 2020 (Tables 1-3) independently of pipelines/paper_report.py.
PAPER_LINES = (
    "| paper (He et al. 2020, NIH-PD test split): 3D-ResNet18 | 0.30 | 1.12 | 1.19 | 1.85 | 1.07 |",
    "| paper (He et al. 2020, NIH-PD test split): 2D-ResNet18+LSTM | 0.32 | 0.92 | 1.02 | 1.79 | 0.96 |",
    "| paper (He et al. 2020, MGHBCH, trained on NIH-PD 0-22 y): 3D-ResNet18 "
    "| 2.57 | 2.43 | 2.80 | 2.64 | 2.85 | 2.75 | 2.64 |",
    "| paper (He et al. 2020, MGHBCH, trained on NIH-PD 0-22 y): 2D-ResNet18+LSTM "
    "| 0.83 | 1.65 | 1.40 | 1.36 | 1.21 | 0.83 | 1.14 |",
    "| paper (He et al. 2020, MGHBCH, trained on NIH-PD 0-6 y): 3D-ResNet18 "
    "| 0.66 | 0.48 | 0.43 | 0.75 | 1.26 | 2.10 | 0.79 |",
    "| paper (He et al. 2020, MGHBCH, trained on NIH-PD 0-6 y): 2D-ResNet18+LSTM "
    "| 0.24 | 1.34 | 1.43 | 1.25 | 0.69 | 0.92 | 0.78 |",
)
# One seed: a plain number per cell, as the paper prints it ("–" for an empty group). The cells
# over several seeds (mean ± SD) and the tests across seeds are paper_stats_test's: a second
# seed here would cost the suite another four trainings.
CELL = r"(\d+\.\d\d|–)"


@pytest.fixture(scope="module")
def toy_experiment_data(tmp_path_factory):
    """A learnable toy dataset `toy_experiment/tiny` with the synthetic cohort's three splits.

    A name of its own: when the synthetic_cohort builder is registered in the process (other
    tests import it), TFDS would read a toy `synthetic_cohort` with that builder's features.
    """
    data_dir = tmp_path_factory.mktemp("paper") / "tfds"
    volumes, ages, _ = toy_cohort(16, SHAPE, max_age=6.0, seed=3)
    replication = (volumes, ages, np.array([f"rep-{index:02d}" for index in range(16)]))
    volumes, ages, _ = toy_cohort(12, SHAPE, seed=2)
    test = (volumes, ages, np.array([f"test-{index:02d}" for index in range(12)]))
    # Extra 0-6 y subjects, so the 0-6 y runs have a validation part of several subjects.
    everyone, young = toy_cohort(32, SHAPE, seed=1), toy_cohort(24, SHAPE, max_age=6.0, seed=4)
    train = [np.concatenate(parts) for parts in zip(everyone, young, strict=True)]
    train[2] = np.array([f"train-{index:02d}" for index in range(len(train[2]))])
    splits = {"train": tuple(train), "test": test, "replication": replication}
    store_toy_tfds(data_dir, "toy_experiment", SHAPE, splits)
    return data_dir


@pytest.mark.slow
def test_tiny_experiment_writes_the_three_tables_timing_and_the_papers_numbers(
    toy_experiment_data, tmp_path, monkeypatch
):
    tiny = paper_experiment.SYNTHETIC_SIZES["tiny"][1]
    monkeypatch.setitem(paper_experiment.SYNTHETIC_SIZES, "tiny", ("toy_experiment/tiny", tiny))
    out = tmp_path / "experiment"
    flags = [
        "--cohort",
        "synthetic",
        "--size",
        "tiny",
        "--out",
        str(out),
        "--data-dir",
        str(toy_experiment_data),
        "--seed",
        "7",
    ]
    assert paper_experiment.main(flags) == 0
    report = (out / "report.md").read_text()
    lines = report.splitlines()
    summary = json.loads((out / "metrics.json").read_text())

    # What one seed writes too: the paper's rows, the headers, our row labels, n, figures, timing rows.
    assert lines.count(TABLE_1_HEADER) == 1 and lines.count(YOUNG_HEADER) == 2
    for line in PAPER_LINES:
        assert line in lines
    assert "on **NIH-PD** (discovery) and **MGHBCH** (replication)" in report
    assert "this run on **toy_experiment/tiny**" in report
    assert summary["seeds"] == [7]
    tables = report.split("\n## ")[2:5]
    # (table, its report section, training setting, folder below seed7, row suffix, split, groups, n)
    evaluated = (
        ("table1", tables[0], "0-22", "", "", "test", 4, "12"),
        ("table2", tables[1], "0-22", "", "", "replication", 6, "16"),
        ("table3", tables[2], "0-6", "0-6", ", trained 0-6 y", "replication", 6, "16"),
        ("table3", tables[2], "0-22-ft-0-6", "0-22-ft-0-6", ", trained 0-22 y, fine-tuned on 0-6 y",
         "replication", 6, "16"),
    )  # fmt: skip
    for key, table, setting, folder, suffix, split, groups, n in evaluated:
        models = json.loads((out / key / "seed7" / folder / "ensemble" / "metrics.json").read_text())[
            "models"
        ]
        for model in ("slice_lstm", "resnet3d", "ensemble (mean)", "ensemble (age-weighted)"):
            row = rf"\| ours \(toy_experiment/tiny:{split}\): {re.escape(model + suffix)} \|"
            assert re.search(row + rf"( {CELL} \|){{{groups + 1}}}$", table, re.MULTILINE), (model, table)
            # The Average cell: the seed's own evaluation.
            average = f"{models[model]['mae']:.2f}"
            assert re.search(row + rf".* \| {re.escape(average)} \|$", table, re.MULTILINE), (average, table)
            mae = summary["tables"][key]["settings"][setting]["models"][model]["mae"]
            assert mae["per_seed"] == [models[model]["mae"]]
        assert re.search(rf"^\| n \|.* \| {n} \|$", table, re.MULTILINE), table
        (figure,) = re.findall(r"!\[CS curves[^]]*\]\(([^)]+)\)", table)
        assert (out / figure).stat().st_size > 10_000
        trained = rf"trained {re.escape(suffix[len(', trained ') :])}, " if suffix else ""
        closing = rf"2D\+3D ensembles \(the paper's closing proposal\): .*{trained}ensemble \(mean\): MAE "
        assert re.search(closing, table), table
        (comparison,) = summary["tables"][key]["settings"][setting]["comparison"]["per_seed"]
        assert comparison["difference"] == pytest.approx(
            models["slice_lstm"]["mae"] - models["resnet3d"]["mae"]
        )
        p_value = comparison["wilcoxon"]["p_value"]
        assert (
            f"2D against 3D{suffix}: paired by subject (n = {n}), " in table
            and f"Wilcoxon p = {p_value:.3g}." in table
        )

    timing = report.split("## Training time")[1]
    for model in ("slice_lstm", "resnet3d"):
        for setting in ("0-22 y", "0-6 y", "0-22 y, fine-tuned on 0-6 y"):
            dataset = "toy_experiment/tiny"
            assert re.search(
                rf"^\| ours: {model} \| {dataset} {setting} \| \d+ \| 2 \| \d+\.\d \| \d+\.\d min \|$",
                timing,
                re.MULTILINE,
            ), (model, setting, timing)
    paper = "| paper (He et al. 2020, NVIDIA K80): {} | NIH-PD (setting of Table 3) | – | 60 | – | {} |"
    assert paper.format("2D-ResNet18+LSTM", "3 h") in timing and paper.format("3D-ResNet18", "7 h") in timing

    # The 0-6 runs trained on discovery scans aged 0-6 only, with the experiment's seed.
    young = json.loads((out / "runs" / "seed7" / "slice_lstm_0-6" / "config.json").read_text())
    assert (young["max_age"], young["seed"]) == (6.0, 7)
    # The fine-tuned runs started from the same model's 0-22 y run of the same seed, at most 2 epochs.
    for model in ("slice_lstm", "resnet3d"):
        tuned = json.loads((out / "runs" / "seed7" / f"{model}_0-22-ft-0-6" / "config.json").read_text())
        parent = out.resolve() / "runs" / "seed7" / f"{model}_0-22"
        assert (tuned["init_from"], tuned["max_age"], tuned["epochs"]) == (str(parent), 6.0, 2)
        assert (tuned["preset"], tuned["learning_rate"]) == ("finetune", 1e-4)
        assert tuned["init_fingerprint"].startswith("sha256:")


def test_a_rerun_with_other_seeds_resumes_and_other_flags_are_refused(tmp_path):
    def plan(*flags):
        args = paper_experiment.build_parser().parse_args(["--cohort", "real", "--out", "x", *flags])
        return paper_experiment.experiment_plan(args)

    assert plan("--seeds", "3", "--seed", "5")["seeds"] == [5, 6, 7]
    (tmp_path / experiment_folder.PLAN_NAME).write_text(json.dumps(plan()))
    paper_experiment.check_out_dir(tmp_path, plan("--seeds", "3"))  # reuses seed 0, trains 1 and 2
    with pytest.raises(UsageError, match="holds an experiment with other flags"):
        paper_experiment.check_out_dir(tmp_path, plan("--seeds", "3", "--seed", "1"))
    with pytest.raises(UsageError, match="--seeds must be at least 1, got 0"):
        plan("--seeds", "0")


def test_each_run_has_its_setting_model_and_seed():
    setting = paper_report.SETTING_BY_NAME["0-6"]
    config = paper_experiment.setting_config(TrainConfig.demo(), setting, "resnet3d", 3, Path("out"))
    assert (config.min_age, config.max_age, config.model, config.seed) == (0.0, 6.0, "resnet3d", 3)
    assert config.init_from is None
    run = paper_experiment.run_dir(Path("out"), 3, setting, "resnet3d")
    assert run == Path("out/runs/seed3/resnet3d_0-6")
    tuned = paper_report.SETTING_BY_NAME["0-22-ft-0-6"]
    base = TrainConfig.demo().replace(epochs=4)
    config = paper_experiment.setting_config(base, tuned, "slice_lstm", 3, Path("out"))
    assert config.init_from == str(Path("out").resolve() / "runs" / "seed3" / "slice_lstm_0-22")
    assert (config.max_age, config.epochs, config.learning_rate) == (6.0, 4, 1e-4)


def test_a_synthetic_discovery_build_is_also_the_replication_cohort_with_the_sizes_training():
    def plan(*flags):
        args = paper_experiment.build_parser().parse_args(
            ["--cohort", "synthetic", "--out", "x", "--data-dir", "D", *flags]
        )
        return paper_experiment.experiment_plan(args)

    default, varied = plan(), plan("--discovery", "synthetic_cohort/varied_deepbet")
    assert default["discovery"] == "synthetic_cohort/experiment"
    assert varied["discovery"] == varied["config"]["dataset"] == "synthetic_cohort/varied_deepbet"
    assert varied["replication"] == {
        "dataset": "synthetic_cohort/varied_deepbet",
        "split": "replication",
        "data_dir": "D",
    }
    assert varied["config"]["epochs"] == default["config"]["epochs"] == 20


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cohort", "real", "--size", "tiny"], "--size applies to --cohort synthetic only"),
        (
            ["--cohort", "synthetic", "--replication", "mghbch/paper"],
            "--replication applies to --cohort real only",
        ),
        (["--cohort", "real", "--discovery", "nihpd"], "dataset 'nihpd' must be a TFDS name/config"),
        (["--cohort", "hospital"], "argument --cohort: invalid choice: 'hospital'"),
        (["--cohort", "synthetic", "--size", "huge"], "argument --size: invalid choice: 'huge'"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(tmp_path, flags, message):
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.paper_experiment", *flags, "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert message in completed.stderr
    assert (
        completed.stderr.strip().splitlines()[-1].startswith("python -m pipelines.paper_experiment: error:")
    )
    assert not (tmp_path / "x").exists()


def test_unprepared_real_cohort_and_foreign_out_folder_are_usage_errors(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert paper_experiment.main(["--cohort", "real", "--out", str(tmp_path / "taken")]) == 2
    assert f"{tmp_path / 'taken'} exists and is not an experiment folder" in capsys.readouterr().err
    flags = ["--cohort", "real", "--out", str(tmp_path / "new"), "--data-dir", str(tmp_path / "empty")]
    assert paper_experiment.main(flags) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "nihpd/paper" in error
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
