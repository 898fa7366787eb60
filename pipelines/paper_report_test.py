"""Tests of the experiment report's pieces that need no trained run: timing rows, ratios, paper rows."""

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
