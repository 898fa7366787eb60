"""Pairing by subject, the paired test and the ensemble weights, on hand-computed examples."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from brainage_tf.evaluation import compare, ensemble, metrics

EDGES = (0.0, 10.0, 20.0)


def _table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["subject_id", "session", "age", "predicted_age"])


def test_pairing_matches_by_subject_and_session_and_counts_the_unmatched():
    a = _table(
        [("s1", "", 1.0, 1.5), ("s2", "ses-1", 2.0, 2.5), ("s2", "ses-2", 3.0, 3.5), ("s3", "", 4.0, 4.5)]
    )
    # Another order, s2's second session missing, two subjects A lacks.
    b = _table([("s4", "", 5.0, 9.0), ("s3", "", 4.0, 7.0), ("s5", "", 6.0, 9.0), ("s2", "ses-1", 2.0, 6.0)])
    paired, dropped = compare.pair_by_subject({"A": a, "B": b})
    assert paired[["subject_id", "session"]].values.tolist() == [["s2", "ses-1"], ["s3", ""]]
    assert paired["age"].tolist() == [2.0, 4.0]
    assert paired["A"].tolist() == [2.5, 4.5] and paired["B"].tolist() == [6.0, 7.0]
    assert dropped == {"A": 2, "B": 2}


def test_pairing_refuses_repeated_keys_and_disagreeing_ages():
    a = _table([("s1", "", 1.0, 1.0), ("s1", "", 1.0, 2.0)])
    with pytest.raises(ValueError, match="repeats"):
        compare.pair_by_subject({"A": a, "B": a.iloc[:1]})
    with pytest.raises(ValueError, match="other ages"):
        compare.pair_by_subject({"A": _table([("s1", "", 1.0, 1.0)]), "B": _table([("s1", "", 5.0, 1.0)])})


def test_predictions_csv_keeps_subject_ids_as_text():
    csv = "subject_id,session,age,predicted_age\n001,,3.0,\nNA,,4.0,inf\n"
    table = compare.read_predictions(io.StringIO(csv))
    assert table["subject_id"].tolist() == ["001", "NA"] and table["session"].tolist() == ["", ""]
    assert np.isnan(table["predicted_age"][0]) and np.isinf(table["predicted_age"][1])


def test_wilcoxon_where_one_model_is_always_better():
    a = np.arange(1, 11) * 0.1
    b = a + np.arange(1, 11) * 0.05  # b's error is larger on every subject, by distinct amounts
    test = compare.paired_wilcoxon(a, b)
    # Every signed rank is negative: W = 0, exact two-sided p = 2 / 2**10.
    assert test["n"] == 10 and test["statistic"] == 0.0
    assert test["p_value"] == pytest.approx(2 / 2**10)
    assert test["median_difference"] == pytest.approx(-0.275)
    assert compare.paired_wilcoxon(b, a)["median_difference"] == pytest.approx(0.275)
    table = compare.wilcoxon_table([{"a": "A", "b": "B", **test}])
    assert table.splitlines()[-1] == "| A | B | 10 | -0.275 | 0.0 | 0.00195 | A |"


def test_wilcoxon_leaves_out_non_finite_and_has_no_test_without_differences():
    test = compare.paired_wilcoxon([1.0, np.nan, 2.0], [1.0, 3.0, 2.0])
    assert test == {"n": 2, "median_difference": 0.0, "statistic": None, "p_value": None}


def test_labels_add_the_run_folder_only_when_models_repeat():
    assert compare.model_labels(["r/a", "r/b"], ["slice_lstm", "resnet3d"]) == ["slice_lstm", "resnet3d"]
    assert compare.model_labels(["r/a", "r/b", "r/c"], ["slice_lstm", "slice_lstm", "resnet3d"]) == [
        "slice_lstm (a)",
        "slice_lstm (b)",
        "resnet3d",
    ]
    assert compare.model_labels(["x/a", "y/a"], ["m", "m"]) == ["m (x/a)", "m (y/a)"]


def test_simplex_grid():
    assert ensemble.simplex_grid(2).tolist() == [[i / 10, (10 - i) / 10] for i in range(11)]
    grid = ensemble.simplex_grid(3)
    assert grid.shape == (66, 3) and np.allclose(grid.sum(axis=1), 1.0) and (grid >= 0).all()
    assert len({tuple(row) for row in np.round(grid, 6)}) == 66


# Member A is exact for the young and 2 y low for the old; B is 2 y high for the young and exact for the old.
YOUNG, OLD = np.array([2.0, 3.0, 4.0, 5.0, 6.0]), np.array([14.0, 15.0, 16.0, 17.0, 18.0])
VALIDATION_AGES = np.concatenate([YOUNG, OLD])
VALIDATION = np.stack([np.concatenate([YOUNG, OLD - 2]), np.concatenate([YOUNG + 2, OLD])], axis=1)


def test_age_weights_pick_the_member_that_is_exact_in_each_group():
    weights = ensemble.fit_age_weights(VALIDATION_AGES, VALIDATION, EDGES)
    # Mean predictions 3-7 (group 0-10) and 13-17 (10-20).
    assert weights.weights.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert [g["n_validation"] for g in weights.groups] == [5, 5]
    assert [g["validation_mae"] for g in weights.groups] == [0.0, 0.0]
    assert [g["mean_validation_mae"] for g in weights.groups] == [1.0, 1.0]
    # Every global weight gives MAE 1 (2(1 - w) on the young, 2w on the old): the tie goes to equal weights.
    assert weights.global_weights.tolist() == [0.5, 0.5] and weights.global_mae == pytest.approx(1.0)
    saved = weights.to_json(["A", "B"])
    assert saved["groups"][1] == {
        "label": "10-20",
        "low": 10.0,
        "high": 20.0,
        "weights": [0.0, 1.0],
        "n_validation": 5,
        "validation_mae": 0.0,
        "mean_validation_mae": 1.0,
        "fallback": False,
    }


def test_age_weighted_beats_both_members_and_the_mean_does_not_beat_an_exact_member():
    weights = ensemble.fit_age_weights(VALIDATION_AGES, VALIDATION, EDGES)
    ages = np.array([1.0, 4.5, 7.0, 12.0, 19.0])
    members = np.stack([np.where(ages < 10, ages, ages - 2), np.where(ages < 10, ages + 2, ages)], axis=1)
    weighted = weights.apply(members)
    assert weighted.tolist() == ages.tolist()
    values = {"A": members[:, 0], "B": members[:, 1], "mean": members.mean(axis=1), "weighted": weighted}
    rows = {name: metrics.evaluation_metrics(ages, value, EDGES) for name, value in values.items()}
    errors = {name: np.abs(value - ages) for name, value in values.items()}
    assert (rows["A"]["mae"], rows["B"]["mae"], rows["mean"]["mae"]) == pytest.approx((0.8, 1.2, 1.0))
    line, result = ensemble.verdict("weighted", rows, errors, ["A", "B"])
    assert result["beats_every_member"] and result["best_member"] == "A"
    assert result["wilcoxon"]["n"] == 5 and result["wilcoxon"]["median_difference"] == 0.0
    assert "lower than every member's" in line and "not lower" not in line
    line, result = ensemble.verdict("mean", rows, errors, ["A", "B"])
    assert not result["beats_every_member"] and "not lower than every member's" in line


def test_the_mean_never_beats_an_exact_member():
    ages = np.array([1.0, 5.0, 9.0, 13.0])
    exact, other = ages, ages + np.array([3.0, -1.0, 0.5, 2.0])
    mean = (exact + other) / 2
    rows = {
        name: metrics.evaluation_metrics(ages, value, EDGES)
        for name, value in {"exact": exact, "other": other, "mean": mean}.items()
    }
    errors = {
        name: np.abs(value - ages) for name, value in {"exact": exact, "other": other, "mean": mean}.items()
    }
    _, result = ensemble.verdict("mean", rows, errors, ["exact", "other"])
    assert not result["beats_every_member"] and result["best_member"] == "exact"
    assert result["wilcoxon"]["median_difference"] > 0


def test_weights_follow_the_mean_prediction_group_not_the_true_age():
    # Aged 9 (group 0-10 by true age) but predicted 9 and 13: the mean, 11, is in 10-20.
    ages = np.array([9.0] * 5 + [15.0] * 5)
    predictions = np.array([[9.0, 13.0]] * 5 + [[13.0, 15.0]] * 5)
    weights = ensemble.fit_age_weights(ages, predictions, EDGES)
    assert [g["n_validation"] for g in weights.groups] == [0, 10]
    # In 10-20: MAE 5 (4 (1 - w)) + 5 (2 w) over 10 is lowest at w = 1 for A; by true age B would win there.
    assert weights.weights[1].tolist() == [1.0, 0.0] and weights.groups[1]["validation_mae"] == 1.0
    assert weights.groups[0]["fallback"] and weights.weights[0].tolist() == weights.global_weights.tolist()


def test_small_groups_fall_back_to_the_global_weights():
    ages = np.concatenate([YOUNG[:4], OLD, OLD + 1])
    predictions = np.stack(
        [np.concatenate([ages[:4], ages[4:] - 2]), np.concatenate([ages[:4] + 2, ages[4:]])], 1
    )
    weights = ensemble.fit_age_weights(ages, predictions, EDGES)
    assert [g["n_validation"] for g in weights.groups] == [4, 10]
    assert weights.groups[0]["fallback"] and not weights.groups[1]["fallback"]
    # Global: 4 * 2(1 - w) + 10 * 2w is lowest at w = 0 (all B).
    assert weights.global_weights.tolist() == [0.0, 1.0] == weights.weights[0].tolist()
    assert weights.groups[0]["validation_mae"] == pytest.approx(2.0)


def test_weighted_prediction_groups_out_of_range_means_at_the_ends_and_keeps_nan():
    weights = ensemble.fit_age_weights(VALIDATION_AGES, VALIDATION, EDGES)
    combined = weights.apply(np.array([[-3.0, -1.0], [25.0, 27.0], [np.nan, 5.0]]))
    assert combined[:2].tolist() == [-3.0, 27.0] and np.isnan(combined[2])
    with pytest.raises(ValueError, match="no validation scan"):
        ensemble.fit_age_weights([1.0], [[np.nan, 1.0]], EDGES)
