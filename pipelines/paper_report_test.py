"""The experiment report's pieces that need no trained run: timing rows, ratios, paper rows, seeds."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainage_tf.evaluation import metrics, report
from pipelines import paper_report

TIMINGS = [
    dict(model="slice_lstm", setting="0-22", dataset="d/c", num_train=500, epochs=30, epoch_seconds=20.04,
         wall_seconds=630.0, resumed=False),
    dict(model="resnet3d", setting="0-22", dataset="d/c", num_train=500, epochs=30, epoch_seconds=14.0,
         wall_seconds=450.0, resumed=False),
    dict(model="slice_lstm", setting="0-6", dataset="d/c", num_train=150, epochs=30, epoch_seconds=None,
         wall_seconds=200.0, resumed=True),
    dict(model="resnet3d", setting="0-6", dataset="d/c", num_train=150, epochs=30, epoch_seconds=5.0,
         wall_seconds=300.0, resumed=False),
]  # fmt: skip


def test_timing_table_lists_our_runs_then_the_papers_hours():
    lines = paper_report.timing_table(TIMINGS).splitlines()
    assert lines[2] == "| ours: slice_lstm | d/c 0-22 y | 500 | 30 | 20.0 | 10.5 min |"
    assert lines[4] == "| ours: slice_lstm | d/c 0-6 y | 150 | 30 | – | 3.3 min (resumed: last session) |"
    paper = "| paper (He et al. 2020, NVIDIA K80): {} | NIH-PD (setting of Table 3) | – | 60 | – | {} |"
    assert lines[-2:] == [paper.format("2D-ResNet18+LSTM", "3 h"), paper.format("3D-ResNet18", "7 h")]


def test_time_ratio_compares_ours_with_the_papers_7_over_3():
    assert paper_report.time_ratio(TIMINGS, "0-6").startswith(
        "resnet3d took 1.50 times as long as slice_lstm to train here (0-6 y setting); "
        "the paper's 3D-ResNet18 took 2.3 times"
    )


def test_epoch_seconds_leaves_out_the_first_epoch_which_traces():
    history = [{"seconds": "30.0"}, {"seconds": "4.0"}, {"seconds": "6.0"}, {"seconds": "5.0"}]
    assert paper_report.epoch_seconds(history) == 5.0
    assert paper_report.epoch_seconds(history[:1]) == 30.0
    assert paper_report.epoch_seconds([]) is None


def test_paper_rows_of_table_3_are_labelled_with_mghbch_and_the_0_6_training():
    rows = paper_report.paper_rows(paper_report.TABLES[2])
    row = rows["paper (He et al. 2020, MGHBCH, trained on NIH-PD 0-6 y): 2D-ResNet18+LSTM"]
    assert row["mae"] == 0.78
    assert [(g["label"], g["mae"]) for g in row["age_groups"]] == [
        ("0-1", 0.24), ("1-2", 1.34), ("2-3", 1.43), ("3-4", 1.25), ("4-5", 0.69), ("5-6", 0.92)
    ]  # fmt: skip


def seeded(model, setting, seed, num_train, epoch_seconds, wall_seconds, resumed=False) -> dict:
    """One run's timing of a seeded experiment, 30 epochs on d/c."""
    return dict(model=model, setting=setting, seed=seed, dataset="d/c", num_train=num_train, epochs=30,
                epoch_seconds=epoch_seconds, wall_seconds=wall_seconds, resumed=resumed)  # fmt: skip


SEEDED = [
    seeded("slice_lstm", "0-22", 0, 500, 20.0, 600.0),
    seeded("slice_lstm", "0-22", 1, 500, 22.0, 660.0, resumed=True),
    seeded("slice_lstm", "0-6", 0, 150, None, 200.0),
    seeded("resnet3d", "0-6", 0, 150, 5.0, 300.0),
    seeded("slice_lstm", "0-6", 1, 150, None, 400.0),
    seeded("resnet3d", "0-6", 1, 150, 6.0, 900.0),
]


def test_timing_table_gives_mean_and_sd_over_seeds_per_model_and_setting():
    lines = paper_report.timing_table(SEEDED).splitlines()
    # 10.0 and 11.0 min: mean 10.5, SD 0.707; 20 and 22 s: mean 21, SD 1.414
    assert lines[2:5] == [
        "| ours: slice_lstm | d/c 0-22 y | 500 | 30 | 21.0 ± 1.4 | 10.5 ± 0.7 min (1 resumed: last session) "
        "|",
        "| ours: slice_lstm | d/c 0-6 y | 150 | 30 | – | 5.0 ± 2.4 min |",
        "| ours: resnet3d | d/c 0-6 y | 150 | 30 | 5.5 ± 0.7 | 10.0 ± 7.1 min |",
    ]
    # means 300 s and 600 s (the last seed alone: 400 s and 900 s)
    assert paper_report.time_ratio(SEEDED, "0-6").startswith(
        "resnet3d took 2.00 times as long as slice_lstm to train here (0-6 y setting, mean of 2 seeds); "
    )


def fabricated_ensemble(folder: Path, error_2d: float, error_3d: float) -> Path:
    """An ensemble folder as `ensemble_members` writes it: six subjects, constant errors per model."""
    ages = np.arange(0.5, 6.0)
    predicted = {"slice_lstm": ages + error_2d, "resnet3d": ages - error_3d}
    folder.mkdir(parents=True)
    pd.DataFrame(
        {"subject_id": [f"{i:03d}" for i in range(6)], "session": "", "age": ages, **predicted}
    ).to_csv(folder / "predictions.csv", index=False)
    test = {"n": 6, "median_difference": -0.1, "statistic": 0.0, "p_value": 0.03}
    verdict = {
        "ensemble": "ensemble (mean)",
        "beats_every_member": True,
        "best_member": "slice_lstm",
        "wilcoxon": test,
    }
    summary = {
        "members": {label: {} for label in predicted},
        "models": {
            label: metrics.evaluation_metrics(ages, values, metrics.YOUNG_AGE_EDGES)
            for label, values in predicted.items()
        },
        "ensembles": [verdict],
    }
    (folder / "metrics.json").write_text(json.dumps(summary))
    return folder


def test_a_table_of_two_settings_names_each_settings_rows_tests_and_summary(tmp_path):
    spec = dataclasses.replace(paper_report.TABLES[2], settings=("0-6", "0-22"))
    errors = {"0-6": ((0.5, 0.2), (0.7, 0.3)), "0-22": ((1.0, 2.0), (1.2, 2.0))}  # per seed: (2D, 3D)
    settings = {
        name: [
            {
                "seed": seed,
                "compare_dir": tmp_path / "table3" / f"seed{seed}" / name / "compare",
                "ensemble_dir": fabricated_ensemble(
                    tmp_path / "table3" / f"seed{seed}" / name / "ensemble", *e
                ),
            }
            for seed, e in enumerate(per_seed)
        ]
        for name, per_seed in errors.items()
    }
    evaluation = {"set": "d/c:replication", "settings": settings}
    parts, summary = paper_report.table_section(tmp_path, spec, evaluation)
    text = "\n\n".join(parts)
    # 0.5 and 0.7: mean 0.60, SD 0.14; 1.0 and 1.2: mean 1.10, SD 0.14; 2.0 twice: SD 0
    for row in (
        "| ours (d/c:replication): slice_lstm, trained 0-6 y |" + " 0.60 ± 0.14 |" * 7,
        "| ours (d/c:replication): resnet3d, trained 0-6 y |" + " 0.25 ± 0.07 |" * 7,
        "| ours (d/c:replication): slice_lstm, trained 0-22 y |" + " 1.10 ± 0.14 |" * 7,
        "| ours (d/c:replication): resnet3d, trained 0-22 y |" + " 2.00 ± 0.00 |" * 7,
    ):
        assert row in text.splitlines()
    assert (
        "2D against 3D, trained 0-6 y: MAE difference slice_lstm − resnet3d per seed +0.30, +0.40 y" in text
    )
    assert (
        "2D against 3D, trained 0-22 y: MAE difference slice_lstm − resnet3d per seed -1.00, -0.80 y" in text
    )
    assert "trained 0-22 y, ensemble (mean): MAE lower than every member's in 2 of 2 seeds" in text
    assert "[table3/seed1/0-22/compare/report.md](table3/seed1/0-22/compare/report.md)" in text
    assert (tmp_path / "table3" / "cs_curves.png").stat().st_size > 10_000
    assert "oracle floor" not in text and "ICC" not in text  # members without ground truth or visits
    young = summary["settings"]["0-6"]
    assert young["models"]["slice_lstm"]["mae"]["per_seed"] == pytest.approx([0.5, 0.7])
    assert young["runs"][1] == {
        "seed": 1, "compare_dir": "table3/seed1/0-6/compare", "ensemble_dir": "table3/seed1/0-6/ensemble"
    }  # fmt: skip
    assert [entry["wilcoxon"]["n"] for entry in young["comparison"]["per_seed"]] == [6, 6]


def test_the_ground_truth_and_longitudinal_lines_give_each_model_per_seed_mean_and_sd(tmp_path):
    spec = paper_report.TABLES[0]
    runs = []
    for seed, floor in enumerate((0.4, 0.6)):
        folder = fabricated_ensemble(tmp_path / "table1" / f"seed{seed}" / "ensemble", 0.5, 0.2)
        summary = json.loads((folder / "metrics.json").read_text())
        for label, mae in (("slice_lstm", 1.0 + seed), ("resnet3d", 2.0)):
            own = folder.parent / label
            own.mkdir()
            truth = {"n": 6, "mae": mae, "oracle_floor": floor, "mae_to_developmental_age": 0.5,
                     "gap": {"pearson_r": 0.5, "truth_share": 0.25}}  # fmt: skip
            change = {"pairs": 3 + seed, "mae": 0.3, "slope": 0.9}
            gap = {"subjects": 3, "within_subject_sd": 0.2, "icc": 0.7 + 0.1 * seed}
            longitudinal = {"change": change, "gap": gap}
            (own / "metrics.json").write_text(json.dumps({"truth": truth, "longitudinal": longitudinal}))
            summary["members"][label] = {"eval_dir": str(own)}
        (folder / "metrics.json").write_text(json.dumps(summary))
        runs.append({"seed": seed, "compare_dir": folder.parent / "compare", "ensemble_dir": folder})
    parts, summary = paper_report.table_section(
        tmp_path, spec, {"set": "d/c:test", "settings": {"0-22": runs}}
    )
    lines = "\n\n".join(parts).splitlines()
    # MAE 1.0, 2.0: 1.50 ± 0.71; floor 0.4, 0.6: 0.50 ± 0.14; pairs 3 and 4; ICC 0.7, 0.8: 0.750 ± 0.071.
    truth_2d = "| 6 | 1.50 ± 0.71 | 0.50 ± 0.14 | 0.50 ± 0.00 | 0.500 ± 0.000 | – | 0.250 ± 0.000 | – |"
    longitudinal_3d = "| 3 | 3-4 | 0.30 ± 0.00 | 0.90 ± 0.00 | 0.20 ± 0.00 | 0.750 ± 0.071 | – | – |"
    assert f"| ours (d/c:test): slice_lstm {truth_2d}" in lines
    assert f"| ours (d/c:test): resnet3d {longitudinal_3d}" in lines
    assert report.TRUTH_NOTE in lines and "#" + report.LONGITUDINAL_HEADING in lines
    per_seed = summary["settings"]["0-22"]["biomarkers"]["resnet3d"]
    assert [seed["truth"]["oracle_floor"] for seed in per_seed] == [0.4, 0.6]
