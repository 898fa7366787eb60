"""Tests of the Markdown tables and report.md: literal tables, relative figure links."""

import re
import urllib.parse

from brainage_tf.evaluation import report


def _groups(maes, ns):
    bounds = [(0.0, 6.0), (6.0, 11.0), (11.0, 16.0), (16.0, 23.0)]
    labels = ["0-5", "6-10", "11-15", "16-22"]
    return [
        {"label": label, "low": low, "high": high, "n": n, "mae": mae}
        for label, (low, high), n, mae in zip(labels, bounds, ns, maes, strict=True)
    ]


def _metrics(n, mae, groups, **extra):
    cs = {"alpha": [0.0, 1.0], "percent": [0.0, 50.0]}
    base = {
        "n": n,
        "n_nonfinite": 0,
        "mae": mae,
        "rmse": 1.5,
        "pearson_r": 0.9871,
        "r2": 0.95,
        "mean_gap": -0.2,
    }
    return {**base, "age_groups": groups, "n_outside_groups": 0, "cs": cs, **extra}


# Average (mae) differs from the mean of the group MAEs: (0.30 + 1.19 + 1.85) / 3 = 1.11.
RESNET3D = _metrics(6, 1.066, _groups([0.30, None, 1.19, 1.85], [2, 0, 3, 1]))
# One non-finite prediction in 11-15 leaves 5 subjects.
LSTM = _metrics(
    5,
    0.96,
    _groups([0.32, None, 1.02, 1.79], [2, 0, 2, 1]),
    n_nonfinite=1,
    mean_gap=0.4,
    bias_corrected=_metrics(5, 0.8, _groups([0.25, None, 0.9, 1.5], [2, 0, 2, 1])),
    conformal={"level": 0.9, "coverage": 0.8712, "mean_width": 3.2},
)
ROWS = {"3D-ResNet18": RESNET3D, "2D-ResNet18+LSTM": LSTM}


def test_paper_table_has_the_papers_layout_with_average_from_overall_mae():
    assert report.paper_table(ROWS) == (
        "| Method | 0-5 | 6-10 | 11-15 | 16-22 | Average |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| 3D-ResNet18 | 0.30 | – | 1.19 | 1.85 | 1.07 |\n"
        "| 2D-ResNet18+LSTM | 0.32 | – | 1.02 | 1.79 | 0.96 |\n"
        "| n | 2 | 0 | 3/2 | 1 | 6/5 |\n"
    )


def test_paper_table_quotes_published_rows_without_counts_beside_ours():
    published = {"mae": 1.07, "age_groups": [{"label": "0-5", "mae": 0.30}, {"label": "16-22", "mae": 1.85}]}
    assert report.paper_table({"paper: 3D-ResNet18": published, "ours": RESNET3D}) == (
        "| Method | 0-5 | 16-22 | 6-10 | 11-15 | Average |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| paper: 3D-ResNet18 | 0.30 | 1.85 | – | – | 1.07 |\n"
        "| ours | 0.30 | 1.85 | – | 1.19 | 1.07 |\n"
        "| n | 2 | 1 | 0 | 3 | 6 |\n"
    )


def test_paper_table_of_bias_corrected_metrics_marks_rows_without_them():
    assert report.paper_table(ROWS, key="bias_corrected") == (
        "| Method | 0-5 | 6-10 | 11-15 | 16-22 | Average |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| 3D-ResNet18 | – | – | – | – | – |\n"
        "| 2D-ResNet18+LSTM | 0.25 | – | 0.90 | 1.50 | 0.80 |\n"
        "| n | 2 | 0 | 2 | 1 | 5 |\n"
    )


def test_summary_table_adds_corrected_and_conformal_columns_when_a_row_has_them():
    assert report.summary_table(ROWS) == (
        "| Method | n | non-finite | MAE (y) | RMSE (y) | Pearson r | R² | mean gap (y) | corrected MAE (y)"
        " | conformal coverage (level) | interval width (y) |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| 3D-ResNet18 | 6 | 0 | 1.07 | 1.50 | 0.987 | 0.950 | -0.20 | – | – | – |\n"
        "| 2D-ResNet18+LSTM | 5 | 1 | 0.96 | 1.50 | 0.987 | 0.950 | +0.40 | 0.80 | 0.87 (0.90) | 3.20 |\n"
    )
    plain = report.summary_table({"m": {**RESNET3D, "pearson_r": None, "r2": None}})
    assert (
        plain.splitlines()[0]
        == "| Method | n | non-finite | MAE (y) | RMSE (y) | Pearson r | R² | mean gap (y) |"
    )
    assert plain.splitlines()[2] == "| m | 6 | 0 | 1.07 | 1.50 | – | – | -0.20 |"


def test_write_report_links_figures_relative_to_its_folder(tmp_path):
    run = tmp_path / "run"
    figures = [run / "figures" / "cs curves.png", tmp_path / "elsewhere" / "gap.png"]
    for figure in figures:
        figure.parent.mkdir(parents=True)
        figure.write_bytes(b"png")
    notes = ["Average is the overall per-subject MAE, as in the paper.", "Split: 80/20 by age bin."]
    path = report.write_report(
        run / "report.md", "NIH-PD test", ROWS, {"CS curves": figures[0], "Gap": figures[1]}, notes
    )
    assert path == run / "report.md"
    text = path.read_text(encoding="utf-8")
    links = re.findall(r"!\[(.*?)\]\((.*?)\)", text)
    assert links == [("CS curves", "figures/cs%20curves.png"), ("Gap", "../elsewhere/gap.png")]
    assert all((run / urllib.parse.unquote(link)).is_file() for _, link in links)
    assert text.startswith("# NIH-PD test\n\n## MAE per age group (years)\n\n| Method | 0-5 |")
    assert (
        "\n- Average is the overall per-subject MAE, as in the paper.\n- Split: 80/20 by age bin.\n" in text
    )
    assert "## MAE per age group after bias correction (years)" in text
    assert "| 2D-ResNet18+LSTM | 0.25 | – | 0.90 | 1.50 | 0.80 |" in text


def test_write_report_leaves_out_the_corrected_table_when_no_row_has_it(tmp_path):
    path = report.write_report(tmp_path, "Replication", {"3D-ResNet18": RESNET3D}, {})
    assert path == tmp_path / "report.md"
    text = path.read_text(encoding="utf-8")
    assert "bias correction" not in text
    assert "corrected MAE" not in text
    assert "## Notes" not in text and "## Figures" not in text
    assert "| 3D-ResNet18 | 0.30 | – | 1.19 | 1.85 | 1.07 |" in text


def test_the_truth_and_longitudinal_tables_show_each_model_beside_the_oracle_floor(tmp_path):
    truth = {"n": 6, "mae": 1.066, "oracle_floor": 0.512, "mae_to_developmental_age": 0.9, "true_gap_sd": 0.6,
             "gap": {"pearson_r": 0.4321, "truth_share": 0.1867}, "corrected_gap": None}  # fmt: skip
    repeated = {
        "change": {"pairs": 4, "mean_true_change": 2.0, "mae": 0.75, "slope": 0.8, "intercept": 0.1},
        "gap": {
            "subjects": 3,
            "scans": 7,
            "within_subject_sd": 0.5,
            "between_subject_sd": 1.0,
            "icc": 0.8267,
        },
    }
    rows = {"3D-ResNet18": {**RESNET3D, "truth": truth, "longitudinal": repeated}, "2D-ResNet18+LSTM": LSTM}
    text = report.write_report(tmp_path, "Synthetic", rows, {}).read_text(encoding="utf-8")
    assert "| 3D-ResNet18 | 6 | 1.07 | 0.51 | 0.90 | 0.432 | – | 0.187 | – |" in text.splitlines()
    assert "| 3D-ResNet18 | 3 | 4 | 0.75 | 0.80 | 0.50 | 0.827 | – | – |" in text.splitlines()
    section = text.split(report.TRUTH_HEADING)[1].split(report.TRUTH_NOTE)[0]
    assert "3D-ResNet18" in section and "2D-ResNet18+LSTM" not in section  # no truth: no row
    assert report.TRUTH_NOTE in text and report.LONGITUDINAL_NOTE in text
    plain = report.write_report(tmp_path / "plain.md", "Real", {"m": RESNET3D}, {}).read_text(
        encoding="utf-8"
    )
    assert "oracle floor" not in plain and "ICC" not in plain
