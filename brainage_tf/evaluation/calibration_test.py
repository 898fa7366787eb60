"""Tests for brainage_tf.evaluation.calibration: literals, simulations and JSON round trips."""

import dataclasses
import doctest
import json
import math

import numpy as np
import pytest

from brainage_tf.evaluation import calibration
from brainage_tf.evaluation.calibration import BiasCorrection, ConformalIntervals, coverage


def test_docstring_examples_run():
    assert doctest.testmod(calibration).failed == 0


def _biased_cohort(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Regression to the mean: predictions pulled towards the cohort mean (slope 0.6 < 1).
    ages = rng.uniform(0.0, 22.0, n)
    return ages, 0.6 * ages + 4.0 + rng.normal(0.0, 1.0, n)


def _gap_slope(ages: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.polyfit(ages, predicted - ages, 1)[0])


# --- BiasCorrection -------------------------------------------------------------------------------


def test_bias_fit_on_a_hand_computed_example():
    # Mean age 1, mean prediction 7/3; slope = 3 / 2; intercept = 7/3 - 3/2 = 5/6.
    correction = BiasCorrection.fit([0.0, 1.0, 2.0], [1.0, 2.0, 4.0])
    assert correction.slope == pytest.approx(1.5)
    assert correction.intercept == pytest.approx(5 / 6)
    assert correction.n_fit == 3
    assert correction.method == "de Lange & Cole 2020"


def test_bias_correction_removes_the_age_dependence_of_the_gap():
    rng = np.random.default_rng(0)
    fit_ages, fit_predicted = _biased_cohort(rng, 2000)
    test_ages, test_predicted = _biased_cohort(rng, 2000)
    assert _gap_slope(test_ages, test_predicted) == pytest.approx(-0.4, abs=0.02)

    correction = BiasCorrection.fit(fit_ages, fit_predicted)
    corrected = correction.apply(test_predicted, test_ages)
    assert abs(_gap_slope(test_ages, corrected)) < 0.02
    assert abs(float(np.mean(corrected - test_ages))) < 0.1


def test_bias_fit_uses_only_the_data_it_is_given():
    rng = np.random.default_rng(1)
    ages, predicted = _biased_cohort(rng, 600)
    first = slice(0, 300)
    on_a = BiasCorrection.fit(ages[first], predicted[first])

    # Subset B follows another bias; changing it in place leaves the fit on A alone.
    predicted[300:] = 0.9 * ages[300:] + 1.0
    assert BiasCorrection.fit(ages[first], predicted[first]) == on_a
    on_a_and_b = BiasCorrection.fit(ages, predicted)
    assert on_a_and_b.slope != pytest.approx(on_a.slope, abs=0.05)
    assert on_a_and_b.n_fit == 600 and on_a.n_fit == 300


def test_the_two_corrections_on_a_hand_computed_example():
    correction = BiasCorrection(slope=0.5, intercept=2.0, n_fit=10)
    # With age: 7 + (8 - (0.5 * 8 + 2)) = 9. Without: (7 - 2) / 0.5 = 10.
    assert correction.apply(np.array([7.0]), np.array([8.0])).tolist() == [9.0]
    assert correction.apply_without_age([7.0]).tolist() == [10.0]


def test_both_corrections_invert_a_noiseless_linear_predictor():
    ages = np.array([0.25, 3.0, 7.5, 12.0, 21.75])
    predicted = 0.6 * ages + 4.0
    correction = BiasCorrection.fit(ages, predicted)
    np.testing.assert_allclose(correction.apply_without_age(predicted), ages, rtol=0, atol=1e-12)
    np.testing.assert_allclose(correction.apply(predicted, ages), ages, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "ages, predicted, message",
    [
        ([1.0, 2.0], [1.0, 2.0], "at least 3"),
        ([5.0, 5.0, 5.0], [4.0, 5.0, 6.0], "ages that vary"),
        ([1.0, 2.0, 3.0], [1.0, math.nan, 3.0], "finite"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], "3 ages but 2"),
    ],
)
def test_bias_fit_refuses_bad_input(ages, predicted, message):
    with pytest.raises(ValueError, match=message):
        BiasCorrection.fit(ages, predicted)


def test_bias_apply_checks_shapes_and_a_flat_fit_cannot_be_inverted():
    with pytest.raises(ValueError, match="shape"):
        BiasCorrection(0.6, 4.0, 10).apply([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="slope 0"):
        BiasCorrection(0.0, 4.0, 10).apply_without_age([5.0])


def test_bias_round_trip_through_json_and_file(tmp_path):
    correction = BiasCorrection.fit([0.0, 1.0, 2.0, 5.0], [1.0, 2.0, 4.0, 4.5])
    data = correction.to_json()
    assert set(data) == {"slope", "intercept", "n_fit", "method"}
    assert BiasCorrection.from_json(json.loads(json.dumps(data))) == correction
    path = tmp_path / "bias.json"
    correction.save(path)
    assert BiasCorrection.load(path) == correction


def test_bias_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(ValueError, match=r"missing\.json: cannot load BiasCorrection: No such file"):
        BiasCorrection.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json: cannot load BiasCorrection"):
        BiasCorrection.load(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"slope": 1.0, "offset": 0.0}))
    with pytest.raises(ValueError, match=r"wrong\.json: .*missing keys \['intercept', 'n_fit'\].*'offset'"):
        BiasCorrection.load(wrong)


# --- ConformalIntervals ---------------------------------------------------------------------------


def test_global_half_width_is_the_conformal_rank_of_the_residuals():
    ages, predicted = np.arange(1.0, 10.0), np.zeros(9)  # |residuals| 1, ..., 9
    assert ConformalIntervals.fit(ages, predicted, level=0.8).global_half_width == 8.0  # ceil(10 * 0.8) = 8
    assert ConformalIntervals.fit(ages, predicted, level=0.9).global_half_width == 9.0  # ceil(9.0) = 9
    assert ConformalIntervals.fit(ages, predicted, level=0.91).global_half_width == math.inf  # rank 10 > 9


def test_rank_is_not_pushed_up_by_float_error():
    # 100 * 0.55 is 55.00000000000001 in floating point; the rank is 55, not 56.
    intervals = ConformalIntervals.fit(np.arange(1.0, 100.0), np.zeros(99), level=0.55)
    assert intervals.global_half_width == 55.0
    assert intervals.half_widths == (55.0,)
    assert intervals.n_calibration == 99
    assert intervals.edges is None and intervals.n_per_bin == () and intervals.fallback == ()


def test_too_few_calibration_subjects_give_infinite_width_and_full_coverage():
    rng = np.random.default_rng(2)
    ages = rng.uniform(0.0, 22.0, 5)
    intervals = ConformalIntervals.fit(ages, ages + rng.normal(0.0, 1.0, 5), level=0.9)  # rank 6 > 5
    assert intervals.global_half_width == math.inf
    test_ages = rng.uniform(0.0, 22.0, 100)
    low, high = intervals.interval(test_ages + rng.normal(0.0, 1.0, 100))
    assert np.all(low == -math.inf) and np.all(high == math.inf)
    assert coverage(test_ages, low, high) == 1.0


def _heavy_tailed_cohort(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Student-t errors growing with age: conformal coverage needs no normality.
    ages = rng.uniform(0.0, 22.0, n)
    return ages, ages + (0.3 + 0.1 * ages) * rng.standard_t(3, n)


def test_mean_coverage_lies_within_the_finite_sample_bounds():
    # n = 200 at level 0.9: rank 181, so the expected coverage is 181/201 = 0.9005, inside the
    # bounds [0.9, 0.9 + 1/201 = 0.90498]. One seed's coverage has sd 0.022 (Beta(181, 20) from the
    # calibration draw plus binomial noise of 2000 test subjects), so the mean of 2000 seeds has
    # sd 0.0005; the tolerance 0.002 is 4 sd. Dropping the +1 in the rank gives 180/201 = 0.8955,
    # 5 sd below the lower end.
    n_calibration, n_test, level, seeds = 200, 2000, 0.9, 2000
    coverages = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        intervals = ConformalIntervals.fit(*_heavy_tailed_cohort(rng, n_calibration), level=level)
        test_ages, test_predicted = _heavy_tailed_cohort(rng, n_test)
        coverages.append(coverage(test_ages, *intervals.interval(test_predicted)))
    tolerance = 0.002
    assert level - tolerance <= np.mean(coverages) <= level + 1 / (n_calibration + 1) + tolerance


def test_mondrian_bins_follow_the_predicted_age_and_fall_back_when_too_few():
    # Bin 0 by prediction (true ages in bin 1): |residuals| 2, 3, 4 -> rank ceil(4 * 0.6) = 3 -> 4.0.
    # Bin 1: 0.25, 0.5, 0.75 -> 0.75. Bin 2: one subject, rank 2 > 1 -> global width.
    # Global: 0.25, 0.5, 0.5, 0.75, 2, 3, 4 -> rank ceil(8 * 0.6) = 5 -> 2.0.
    ages = [11.0, 12.0, 13.0, 15.25, 15.5, 15.75, 25.5]
    predicted = [9.0, 9.0, 9.0, 15.0, 15.0, 15.0, 25.0]
    intervals = ConformalIntervals.fit(ages, predicted, level=0.6, edges=(0, 10, 20, 30))
    assert intervals.edges == (0.0, 10.0, 20.0, 30.0)
    assert intervals.half_widths == (4.0, 0.75, 2.0)
    assert intervals.global_half_width == 2.0
    assert intervals.n_per_bin == (3, 3, 1)
    assert intervals.fallback == (False, False, True)
    assert intervals.n_calibration == 7
    # A prediction outside the edges (35) takes the global width.
    low, high = intervals.interval([5.0, 15.0, 25.0, 35.0])
    assert low.tolist() == [1.0, 14.25, 23.0, 33.0]
    assert high.tolist() == [9.0, 15.75, 27.0, 37.0]


def test_mondrian_widths_differ_where_the_residual_spread_differs():
    rng = np.random.default_rng(3)

    def cohort(n):
        # Young (0-5 y, error sd 0.3) and old (12-22 y, sd 2): few predictions cross the 6-year edge.
        young = rng.random(n) < 0.5
        ages = np.where(young, rng.uniform(0.0, 5.0, n), rng.uniform(12.0, 22.0, n))
        return ages, ages + np.where(young, 0.3, 2.0) * rng.normal(0.0, 1.0, n)

    intervals = ConformalIntervals.fit(*cohort(4000), level=0.9, edges=(0.0, 6.0, 22.0))
    young, old = intervals.half_widths
    assert young < 0.7 < 2.5 < old  # about 1.645 * 0.3 and 1.645 * 2
    assert intervals.fallback == (False, False)

    test_ages, test_predicted = cohort(20000)
    low, high = intervals.interval(test_predicted)
    for in_bin in (test_predicted < 6.0, (test_predicted >= 6.0) & (test_predicted <= 22.0)):
        assert coverage(test_ages[in_bin], low[in_bin], high[in_bin]) == pytest.approx(0.9, abs=0.02)


def test_conformal_round_trip_keeps_infinite_widths(tmp_path):
    mondrian = ConformalIntervals.fit(
        [11.0, 12.0, 13.0, 15.25, 15.5, 15.75, 25.5],
        [9.0, 9.0, 9.0, 15.0, 15.0, 15.0, 25.0],
        level=0.6,
        edges=(0, 10, 20, 30),
    )
    infinite = ConformalIntervals.fit([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], level=0.9, edges=(0, 2, 4))
    assert infinite.half_widths == (math.inf, math.inf) and infinite.fallback == (True, True)
    for number, intervals in enumerate((mondrian, infinite)):
        assert {f.name for f in dataclasses.fields(intervals)} == set(intervals.to_json())
        path = tmp_path / f"conformal{number}.json"
        intervals.save(path)
        assert ConformalIntervals.load(path) == intervals
    text = (tmp_path / "conformal1.json").read_text()
    assert "Infinity" not in text
    assert json.loads(text)["global_half_width"] is None


def test_conformal_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        ConformalIntervals.fit([], [])
    with pytest.raises(ValueError, match=r"level must lie in \(0, 1\)"):
        ConformalIntervals.fit([1.0, 2.0], [1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="increasing"):
        ConformalIntervals.fit([1.0, 2.0], [1.0, 2.0], edges=(0, 0))
    with pytest.raises(ValueError, match="do not match"):
        ConformalIntervals(0.9, (0.0, 1.0, 2.0), (1.0,), 1.0, 3)
    path = tmp_path / "conformal.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"conformal\.json: .*expected a JSON object"):
        ConformalIntervals.load(path)


def test_coverage_counts_closed_intervals():
    assert coverage([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 3.5, 5.0], [1.0, 3.0, 4.0, 6.0]) == 0.5
    with pytest.raises(ValueError, match="equal, non-empty"):
        coverage([1.0], [0.0, 1.0], [2.0, 3.0])
