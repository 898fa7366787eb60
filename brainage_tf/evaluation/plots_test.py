"""Tests of the evaluation figures: readable PNGs, NaN-tolerant, the right artists drawn."""

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from brainage_tf.evaluation import plots

AGES = [0.5, 2.0, 4.0, 7.0, 9.0, 12.0, 14.0, 17.0, 20.0, 21.5]
PREDICTED = [1.0, 2.5, np.nan, 7.5, 8.0, 11.0, np.inf, 16.0, 18.5, 20.0]  # two non-finite
EDGES = [0.0, 6.0, 11.0, 16.0, 23.0]
LABELS = ["0-5", "6-10", "11-15", "16-22"]
CS_A = {"alpha": [0.0, 1.0, 2.0, 3.0], "percent": [0.0, 40.0, 80.0, 100.0]}
CS_B = {"alpha": [0.0, 1.0, 2.0, 3.0], "percent": [0.0, 20.0, 50.0, 70.0]}


def _read_png(path):
    assert path.stat().st_size > 0
    return matplotlib.image.imread(path)


@pytest.mark.parametrize(
    "draw, size",
    [
        (lambda path: plots.plot_cs_curves({"a": CS_A, "b": CS_B}, path, "CS"), (576, 768)),
        (lambda path: plots.plot_predicted_vs_age(AGES, PREDICTED, path, "pred", corrected=AGES), (672, 672)),
        (lambda path: plots.plot_error_by_age_group(AGES, PREDICTED, EDGES, LABELS, path, "err"), (576, 864)),
        (lambda path: plots.plot_gap_vs_age(AGES, PREDICTED, path, "gap", corrected_gap=AGES), (576, 864)),
    ],
    ids=["cs", "predicted", "error-by-group", "gap"],
)
def test_each_plot_writes_a_readable_png_of_the_figure_size(tmp_path, draw, size):
    path = tmp_path / "new" / "folder" / "figure.png"
    assert draw(path) == path
    image = _read_png(path)
    assert image.shape[:2] == size  # (height, width) in pixels: inches x 120 dpi
    assert not plt.get_fignums()  # every figure closed


def test_cs_figure_has_one_line_per_model_with_its_name():
    fig = plots._cs_figure({"3D-ResNet18": CS_A, "2D-ResNet18+LSTM": CS_B}, "CS")
    ax = fig.axes[0]
    assert [line.get_ydata().tolist() for line in ax.get_lines()] == [CS_A["percent"], CS_B["percent"]]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["3D-ResNet18", "2D-ResNet18+LSTM"]
    assert ax.get_ylim() == (0.0, 100.0)
    assert ax.get_xlabel() == "error level α (years)"
    plt.close(fig)


def test_predicted_figure_drops_nonfinite_predictions_and_reports_mae_of_the_rest():
    fig = plots._predicted_figure([1.0, 2.0, 3.0], [2.0, np.nan, 3.5], "pred", corrected=[1.0, 2.0, 3.0])
    ax = fig.axes[0]
    raw, corrected = ax.collections
    assert raw.get_offsets().tolist() == [[1.0, 2.0], [3.0, 3.5]]
    assert len(corrected.get_offsets()) == 3
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["predicted: MAE 0.75 y, n=2", "bias-corrected: MAE 0.00 y, n=3", "identity"]
    assert ax.get_xlim() == ax.get_ylim()
    plt.close(fig)


def test_error_figure_counts_subjects_per_group_and_keeps_an_empty_group():
    ages = [1.0, 3.0, 5.0, 17.0, 23.0, 30.0]  # 23.0 is on the last edge: the last group is closed
    fig = plots._error_figure(ages, [2.0, 3.0, np.nan, 15.0, 23.5, 30.0], EDGES, LABELS, "err")
    ax = fig.axes[0]
    ticks = [text.get_text() for text in ax.get_xticklabels()]
    assert ticks == ["0-5\nn=2", "6-10\nn=0", "11-15\nn=0", "16-22\nn=2"]
    group_mae = ax.collections[-1]
    assert group_mae.get_offsets().tolist() == [[0.0, 0.5], [3.0, 1.25]]
    assert ax.get_xlabel() == "age group (years) (1 outside the groups)"
    plt.close(fig)


def test_error_figure_needs_one_more_edge_than_labels():
    with pytest.raises(ValueError, match="5 edges for 3 age groups"):
        plots._error_figure(AGES, AGES, EDGES, LABELS[:3], "err")


def test_gap_figure_fits_the_trend_of_each_series():
    ages = [0.0, 11.0, 22.0, 5.0]
    gap = [5.5, 0.0, -5.5, np.nan]  # slope -0.5 through (11, 0); the NaN is left out
    fig = plots._gap_figure(ages, gap, "gap", corrected_gap=[1.0, 1.0, 1.0, 1.0])
    ax = fig.axes[0]
    trend, flat = ax.get_lines()[1:]  # the first line is the zero line
    assert np.allclose(trend.get_xydata(), [[0.0, 5.5], [22.0, -5.5]])
    assert np.allclose(flat.get_xydata(), [[0.0, 1.0], [22.0, 1.0]])
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["gap: trend -0.50 y per year (n=3)", "bias-corrected gap: trend +0.00 y per year (n=4)"]
    plt.close(fig)


def test_all_nan_predictions_and_a_single_subject_still_plot(tmp_path):
    nan = [np.nan] * 3
    plots.plot_predicted_vs_age([1.0, 2.0, 3.0], nan, tmp_path / "p.png", "all NaN")
    plots.plot_error_by_age_group([1.0, 2.0, 3.0], nan, EDGES, LABELS, tmp_path / "e.png", "all NaN")
    plots.plot_gap_vs_age([4.0], [0.5], tmp_path / "g.png", "one subject")
    for name in ("p.png", "e.png", "g.png"):
        assert _read_png(tmp_path / name).ndim == 3


def test_gap_trajectories_draw_one_line_per_repeated_subject_coloured_by_tempo(tmp_path):
    subjects = ["a", "b", "a", "c", "b", "d", "d"]
    ages = [2.0, 5.0, 1.0, 4.0, 6.0, 3.0, 4.0]
    gap = [0.4, -0.2, 0.5, 1.0, -0.1, np.nan, 0.3]  # c: one scan; d: one finite scan
    tempo = [1.1, 0.9, 1.1, 1.0, 0.9, 1.2, 1.2]
    fig = plots._trajectory_figure(subjects, ages, gap, "trajectories", tempo)
    ax = fig.axes[0]
    lines = [line for line in ax.lines if line.get_marker() == "o"]  # not the zero line
    assert [list(line.get_xdata()) for line in lines] == [[1.0, 2.0], [5.0, 6.0]]  # each sorted by age
    assert lines[0].get_color() != lines[1].get_color() and len(fig.axes) == 2  # the colour bar
    assert len(plots._trajectory_figure(subjects, ages, gap, "no tempo", None).axes) == 1
    assert _read_png(plots.plot_gap_trajectories(subjects, ages, gap, tmp_path / "g.png", "g")).shape[2] >= 3
