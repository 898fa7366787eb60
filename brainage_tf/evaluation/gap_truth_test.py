"""Tests of the ground-truth figures: oracle floor, correlation with the true gap, truth share."""

import numpy as np
import pandas as pd
import pytest

from brainage_tf.evaluation.gap_truth import agreement, biomarker_metrics, truth_metrics
from brainage_tf.synthetic import rendering
from brainage_tf.synthetic.cohort import plan_visits
from brainage_tf.synthetic.spec import CohortSpec

SPEC = CohortSpec(60, sessions=2, seed=4)


def test_the_oracle_floor_is_the_mean_absolute_true_gap_and_a_perfect_predictor_reaches_it():
    plan = plan_visits(SPEC)
    ages, tempo = plan.age.to_numpy(), plan.tempo.to_numpy()
    floor = np.mean(np.abs(ages * (tempo - 1)))
    assert floor > 0.1
    perfect = truth_metrics(ages, ages * tempo, plan.developmental_age)
    assert perfect["oracle_floor"] == pytest.approx(floor)
    assert perfect["mae"] == pytest.approx(floor) and perfect["mae_to_developmental_age"] < 1e-12
    assert perfect["gap"]["pearson_r"] == pytest.approx(1.0)
    chronological = truth_metrics(ages, ages + 0.5, plan.developmental_age, corrected=ages)
    assert chronological["gap"]["pearson_r"] is None  # a constant gap says nothing about the truth
    assert chronological["corrected_mae"] == 0.0 and chronological["oracle_floor"] == pytest.approx(floor)


def test_a_cohort_whose_tempo_is_fixed_at_one_has_a_zero_floor_and_the_same_visits(monkeypatch):
    drawn = plan_visits(SPEC)
    monkeypatch.setattr(rendering, "TEMPO_LOG_SD", 0.0)
    fixed = plan_visits(SPEC)
    assert (fixed.tempo == 1.0).all()
    np.testing.assert_array_equal(fixed.age, drawn.age)  # the tempo's draw is still made: same stream
    assert truth_metrics(fixed.age, fixed.age + 1.0, fixed.developmental_age)["oracle_floor"] == 0.0


def test_truth_share_is_the_part_of_the_gap_variance_the_true_gap_explains():
    true_gap = np.array([1.0, -1.0, 1.0, -1.0])
    error = np.array([1.0, 1.0, -1.0, -1.0])  # uncorrelated with the truth, of equal variance
    assert agreement(true_gap + error, true_gap) == pytest.approx({"pearson_r": 0.5**0.5, "truth_share": 0.5})
    assert agreement(2.0 * true_gap + 3.0, true_gap) == pytest.approx({"pearson_r": 1.0, "truth_share": 1.0})


def test_a_table_without_truth_or_repeated_subjects_adds_nothing_and_unknown_truth_is_left_out():
    table = pd.DataFrame({
        "subject_id": ["a", "b", "c"], "age": [1.0, 2.0, 3.0], "predicted_age": [1.5, 2.0, 3.5],
        "corrected_predicted_age": [np.nan] * 3,
    })  # fmt: skip
    assert biomarker_metrics(table) == {}
    table["developmental_age"] = [1.2, np.nan, 2.7]
    truth = biomarker_metrics(table)["truth"]
    assert truth["n"] == 2 and truth["oracle_floor"] == pytest.approx(0.25)
    assert "corrected_gap" not in truth
