"""Tests for brainage_tf.evaluation.metrics against hand-computed literals."""

import doctest
import json
import math

import numpy as np
import pytest

from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS
from brainage_tf.evaluation import metrics


def test_docstring_examples_run():
    assert doctest.testmod(metrics).failed == 0


def test_labels_of_the_papers_tables():
    assert metrics.age_group_labels(metrics.PAPER_AGE_EDGES) == ["0-5", "6-10", "11-15", "16-22"]
    assert metrics.age_group_labels(metrics.YOUNG_AGE_EDGES) == ["0-1", "1-2", "2-3", "3-4", "4-5", "5-6"]


def test_the_age_groups_span_the_age_ranges_the_package_trains_on():
    assert (metrics.PAPER_AGE_EDGES[0], metrics.PAPER_AGE_EDGES[-1]) == (MIN_AGE_YEARS, MAX_AGE_YEARS)
    assert (metrics.YOUNG_AGE_EDGES[0], metrics.YOUNG_AGE_EDGES[-1]) == (MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS)
    assert metrics.default_age_edges(YOUNG_MAX_AGE_YEARS) == metrics.YOUNG_AGE_EDGES


def test_labels_of_fractional_edges_keep_the_edges():
    assert metrics.age_group_labels([0.0, 0.5, 2.5, 6.0]) == ["0-0.5", "0.5-2.5", "2.5-6"]


@pytest.mark.parametrize("edges", [[0.0], [0.0, 6.0, 6.0], [6.0, 0.0], [0.0, math.inf]])
def test_bad_edges_are_refused(edges):
    with pytest.raises(ValueError, match="increasing"):
        metrics.age_group_labels(edges)


def test_default_edges_switch_at_six_years():
    assert metrics.default_age_edges(6.0) == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    assert metrics.default_age_edges(6.01) == (0.0, 6.0, 11.0, 16.0, 22.0)


def test_group_index_half_open_bins_and_closed_last_bin():
    ages = [-0.1, 0.0, 5.99, 6.0, 10.99, 11.0, 21.9, 22.0, 22.01, math.nan]
    index = metrics.age_group_index(ages, metrics.PAPER_AGE_EDGES)
    assert index.tolist() == [-1, 0, 0, 1, 1, 2, 3, 3, -1, -1]
    young = metrics.age_group_index([0.0, 0.99, 1.0, 5.5, 6.0, 6.5], metrics.YOUNG_AGE_EDGES)
    assert young.tolist() == [0, 0, 1, 5, 5, -1]


def test_cs_alphas_are_exact_quarter_years():
    alphas = metrics.cs_alphas()
    assert len(alphas) == 41
    assert alphas.tolist() == [i / 4 for i in range(41)]
    assert alphas[-1] == 10.0


def test_cs_alphas_do_not_drift_with_a_decimal_step():
    alphas = metrics.cs_alphas(1.0, 0.1)
    assert len(alphas) == 11
    assert alphas[-1] == 1.0
    with pytest.raises(ValueError, match="multiple"):
        metrics.cs_alphas(1.0, 0.3)


def test_cumulative_score_counts_an_error_equal_to_alpha():
    percent = metrics.cumulative_score([0.0, 0.25, 0.5, 1.0], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert percent.tolist() == [25.0, 50.0, 75.0, 75.0, 100.0]


def test_cumulative_score_ignores_the_sign_and_refuses_empty_input():
    assert metrics.cumulative_score([-0.25, 0.3], [0.25]).tolist() == [50.0]
    with pytest.raises(ValueError, match="at least one"):
        metrics.cumulative_score([], [0.25])


def test_cs_in_evaluation_metrics_counts_ties_at_the_threshold():
    # Errors 0.25, -0.25, 0.5, 0.0: all exact in binary, two of them exactly at alpha 0.25.
    result = metrics.evaluation_metrics([3.0, 4.0, 5.0, 7.0], [3.25, 3.75, 5.5, 7.0])
    assert result["cs"]["alpha"][:3] == [0.0, 0.25, 0.5]
    assert result["cs"]["percent"][:3] == [25.0, 75.0, 100.0]
    assert len(result["cs"]["percent"]) == 41


def test_average_is_per_subject_not_the_mean_of_group_maes():
    # 0-1 y: one subject, error 2.0; 1-2 y: three subjects, errors 0, 0, 1.
    # Group MAEs 2.0 and 1/3 (their mean is 1.1667); per-subject average (2+0+0+1)/4 = 0.75.
    result = metrics.evaluation_metrics([0.5, 1.0, 1.5, 1.5], [2.5, 1.0, 1.5, 2.5])
    assert result["mae"] == 0.75
    assert result["age_groups"][0]["n"] == 1
    assert result["age_groups"][0]["mae"] == 2.0
    assert result["age_groups"][1]["n"] == 3
    assert result["age_groups"][1]["mae"] == pytest.approx(1 / 3)


def test_empty_groups_have_n_zero_and_mae_none():
    result = metrics.evaluation_metrics([2.0, 18.0, 20.0], [3.0, 18.5, 19.0])
    groups = result["age_groups"]
    assert [g["label"] for g in groups] == ["0-5", "6-10", "11-15", "16-22"]
    assert [g["n"] for g in groups] == [1, 0, 0, 2]
    assert [g["mae"] for g in groups] == [1.0, None, None, 0.75]
    assert [(g["low"], g["high"]) for g in groups] == [(0.0, 6.0), (6.0, 11.0), (11.0, 16.0), (16.0, 22.0)]


def test_age_22_is_in_the_last_group_and_22_5_is_outside():
    result = metrics.evaluation_metrics([10.0, 22.0, 22.5], [10.0, 21.0, 24.5])
    assert [g["n"] for g in result["age_groups"]] == [0, 1, 0, 1]
    assert result["age_groups"][3]["mae"] == 1.0
    assert result["n_outside_groups"] == 1
    # The subject outside the groups still counts in the overall figures: (0 + 1 + 2) / 3.
    assert result["n"] == 3
    assert result["mae"] == 1.0


def test_nonfinite_predictions_are_counted_and_excluded():
    result = metrics.evaluation_metrics([1.0, 2.0, 3.0, 4.0], [1.5, math.nan, math.inf, 3.0])
    assert result["n"] == 2
    assert result["n_nonfinite"] == 2
    assert result["mae"] == 0.75
    assert result["mean_gap"] == -0.25
    assert result["cs"]["percent"][:5] == [0.0, 0.0, 50.0, 50.0, 100.0]
    assert [g["n"] for g in result["age_groups"]] == [0, 1, 0, 0, 1, 0]


def test_pearson_r2_rmse_and_gap_on_a_tiny_example():
    # gap = [1, 0, 2]; SS_res = 5, SS_tot(ages) = 2, cov sum = 3, SS(predicted) = 6.
    result = metrics.evaluation_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    assert result["mae"] == 1.0
    assert result["mean_gap"] == 1.0
    assert result["rmse"] == pytest.approx(1.2909944487358056)  # sqrt(5 / 3)
    assert result["pearson_r"] == pytest.approx(0.8660254037844386)  # 3 / sqrt(2 * 6)
    assert result["r2"] == pytest.approx(-1.5)  # 1 - 5 / 2, not r**2


def test_pearson_and_r2_are_none_when_undefined():
    one = metrics.evaluation_metrics([3.0], [4.0])
    assert one["pearson_r"] is None and one["r2"] is None
    constant_prediction = metrics.evaluation_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert constant_prediction["pearson_r"] is None
    assert constant_prediction["r2"] == pytest.approx(0.0)  # 1 - (1 + 0 + 1) / 2
    constant_age = metrics.evaluation_metrics([2.0, 2.0], [1.0, 3.0])
    assert constant_age["pearson_r"] is None and constant_age["r2"] is None


def test_result_has_exactly_the_documented_keys_and_is_json_ready():
    result = metrics.evaluation_metrics([1.0, 9.0, 14.0], [2.0, 8.0, 15.0], alphas=[0.0, 1.0])
    assert set(result) == {
        "n",
        "n_nonfinite",
        "mae",
        "rmse",
        "pearson_r",
        "r2",
        "mean_gap",
        "age_groups",
        "n_outside_groups",
        "cs",
    }
    assert set(result["age_groups"][0]) == {"label", "low", "high", "n", "mae"}
    assert result["cs"] == {"alpha": [0.0, 1.0], "percent": [0.0, 100.0]}
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_explicit_edges_override_the_default():
    result = metrics.evaluation_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], edges=metrics.PAPER_AGE_EDGES)
    assert [g["label"] for g in result["age_groups"]] == ["0-5", "6-10", "11-15", "16-22"]
    assert result["age_groups"][0]["mae"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "ages, predicted, message",
    [
        ([1.0, 2.0], [1.0], "2 ages but 1 predictions"),
        ([1.0, 2.0], [math.nan, math.inf], "no finite prediction"),
        ([1.0, math.nan], [1.0, 2.0], "true age must be finite"),
    ],
)
def test_bad_inputs_raise_one_line_errors(ages, predicted, message):
    with pytest.raises(ValueError, match=message):
        metrics.evaluation_metrics(ages, predicted)


def test_inputs_are_not_modified():
    ages, predicted = np.array([1.0, 2.0]), np.array([1.5, np.nan])
    metrics.evaluation_metrics(ages, predicted)
    assert ages.tolist() == [1.0, 2.0]
    assert predicted[0] == 1.5 and np.isnan(predicted[1])
