"""Tests of the longitudinal figures against hand-computed values and planted structure."""

import numpy as np
import pytest

from brainage_tf.evaluation.longitudinal import change_metrics, icc1, longitudinal_metrics


def test_icc1_and_within_subject_sd_equal_the_hand_computed_values_of_unequal_groups():
    # A: 1, 3 (mean 2); B: 5, 7, 6 (mean 6); C: 0, 2 (mean 1). N = 7, k = 3, grand mean 24/7.
    # MSB = (2 (10/7)^2 + 3 (18/7)^2 + 2 (17/7)^2) / 2 = 125/7; MSW = (2 + 2 + 2) / 4 = 3/2;
    # n0 = (7 - 17/7) / 2 = 16/7; ICC(1) = (125/7 - 3/2) / (125/7 + (9/7)(3/2)) = 229/277.
    values = [1, 5, 0, 3, 7, 2, 6]
    groups = ["A", "B", "C", "A", "B", "C", "B"]
    result = icc1(values, groups)
    assert (result["subjects"], result["scans"]) == (3, 7)
    assert result["icc"] == pytest.approx(229 / 277)
    assert result["within_subject_sd"] == pytest.approx(np.sqrt(1.5))
    assert result["between_subject_sd"] == pytest.approx(np.sqrt((125 / 7 - 1.5) / (16 / 7)))
    assert icc1([1.0, 2.0], ["A", "A"])["icc"] is None  # one subject: no between-subject variance


def test_change_metrics_equal_the_hand_computed_values_over_consecutive_visits():
    # Rows out of order: visits are sorted by age within a subject. A: ages 1, 2, 4 -> changes 1, 2,
    # predicted 0.5, 2.5; B: 3, 5 -> 2, predicted 3. C has one scan; D one finite prediction.
    subjects = ["A", "B", "A", "C", "A", "B", "D", "D"]
    ages = [4.0, 5.0, 1.0, 7.0, 2.0, 3.0, 8.0, 9.0]
    predicted = [4.5, 6.0, 1.5, 7.0, 2.0, 3.0, np.nan, 9.0]
    result = change_metrics(subjects, ages, predicted)
    # |0.5 - 1| + |2.5 - 2| + |3 - 2| = 2 over 3 pairs; slope cov / var = 1.5 / (2/3) = 2.25.
    assert result["pairs"] == 3
    assert result["mae"] == pytest.approx(2 / 3)
    assert result["mean_true_change"] == pytest.approx(5 / 3)
    assert result["slope"] == pytest.approx(2.25)
    assert result["intercept"] == pytest.approx(2 - 2.25 * 5 / 3)
    summary = longitudinal_metrics(subjects, ages, predicted)
    assert summary["gap"]["subjects"] == 2 and summary["gap"]["scans"] == 5
    assert "corrected_gap" not in summary


def test_icc_is_near_one_for_a_planted_stable_gap_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    subjects = np.repeat([f"s{i}" for i in range(100)], 3)
    ages = np.tile([4.0, 6.0, 8.0], 100) + rng.uniform(0, 1, 300)
    trait = np.repeat(rng.normal(0, 2.0, 100), 3)
    stable = longitudinal_metrics(subjects, ages, ages + trait + rng.normal(0, 0.2, 300))
    noise = longitudinal_metrics(subjects, ages, ages + rng.normal(0, 2.0, 300))
    assert stable["gap"]["icc"] > 0.95
    assert abs(noise["gap"]["icc"]) < 0.15
    assert stable["gap"]["within_subject_sd"] == pytest.approx(0.2, rel=0.15)
    assert stable["change"]["slope"] == pytest.approx(1.0, abs=0.1)


def test_a_cross_sectional_table_has_no_longitudinal_figures():
    assert longitudinal_metrics(["A", "B"], [1.0, 2.0], [1.5, 2.5]) is None
    assert change_metrics(["A", "B"], [1.0, 2.0], [1.5, 2.5])["mae"] is None
