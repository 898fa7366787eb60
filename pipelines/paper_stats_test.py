"""Seeds in the paper experiment: mean ± SD cells and the paired tests, on fabricated per-seed figures.

Every expectation is worked out by hand (or with scipy called directly), not with the code under test.
"""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainage_tf.evaluation import report
from pipelines import paper_stats


def test_a_cell_is_the_plain_value_for_one_seed_and_mean_plus_sample_sd_for_several():
    # mean 7/3; sample SD sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2) / 2) = sqrt(7/3) = 1.5275
    assert paper_stats.cell([1.0, 2.0, 4.0]) == "2.33 ± 1.53"
    assert paper_stats.cell([1.234]) == "1.23"
    assert paper_stats.cell([10.0, 12.0], 1) == "11.0 ± 1.4"
    assert paper_stats.cell([0.5, None]) == "0.50 ± –"  # one seed had the group empty
    assert paper_stats.cell([None, float("nan")]) == "–"
    assert paper_stats.mean_sd([1.0, 3.0]) == {"per_seed": [1.0, 3.0], "mean": 2.0, "sd": math.sqrt(2.0)}


OURS_SEED_0 = {"mae": 1.0, "n": 5, "age_groups": [{"label": "0-5", "n": 3, "mae": 0.5},
                                                 {"label": "6-10", "n": 2, "mae": 2.0}]}  # fmt: skip
OURS_SEED_1 = {"mae": 2.0, "n": 5, "age_groups": [{"label": "0-5", "n": 3, "mae": 1.5},
                                                 {"label": "6-10", "n": 2, "mae": None}]}  # fmt: skip
PUBLISHED = {"mae": 0.96, "age_groups": [{"label": "0-5", "mae": 0.32}, {"label": "6-10", "mae": 0.92}]}


def test_one_seed_prints_exactly_the_table_of_report_paper_table():
    rows = {"paper: 2D": PUBLISHED, "ours: a | b": OURS_SEED_0}
    per_seed = paper_stats.seed_rows([rows])
    assert paper_stats.seed_table(per_seed) == report.paper_table(rows)


def test_several_seeds_give_mean_and_sd_per_cell_and_one_count_where_seeds_agree():
    rows = paper_stats.seed_rows([{"paper": PUBLISHED}])
    rows.update(paper_stats.seed_rows([{"ours": OURS_SEED_0}, {"ours": OURS_SEED_1}]))
    assert paper_stats.seed_table(rows).splitlines() == [
        "| Method | 0-5 | 6-10 | Average |",
        "| --- | ---: | ---: | ---: |",
        "| paper | 0.32 | 0.92 | 0.96 |",
        "| ours | 1.00 ± 0.71 | 2.00 ± – | 1.50 ± 0.71 |",
        "| n | 3 | 2 | 5 |",
    ]
    fewer = {**OURS_SEED_1, "n": 4}  # one scan without a finite prediction in seed 1
    rows = paper_stats.seed_rows([{"ours": OURS_SEED_0}, {"ours": fewer}])
    assert paper_stats.seed_table(rows).splitlines()[-1] == "| n | 3 | 2 | 4-5 |"


def test_across_seeds_gives_the_t_interval_and_p_of_the_paired_differences():
    result = paper_stats.across_seeds([0.1, 0.3, 0.2])
    # mean 0.2, SD 0.1, SE 0.1/sqrt(3); t(0.975, df 2) = 4.302653 from the t table;
    # df 2 has the closed form p = 1 - t / sqrt(2 + t^2) with t = sqrt(12).
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert result["k"] == 3
    assert result["mean"] == pytest.approx(0.2) and result["sd"] == pytest.approx(0.1)
    assert result["ci95"] == pytest.approx([0.2 - half, 0.2 + half], abs=1e-6)
    assert result["t"] == pytest.approx(math.sqrt(12))
    assert result["p_value"] == pytest.approx(1 - math.sqrt(12) / math.sqrt(14), abs=1e-6)
    assert paper_stats.across_seeds([0.3]) == {
        "k": 1, "mean": 0.3, "sd": None, "ci95": None, "t": None, "p_value": None
    }  # fmt: skip
    same = paper_stats.across_seeds([0.2, 0.2])
    assert same["sd"] == 0 and same["ci95"] == [0.2, 0.2] and same["p_value"] is None


def test_subject_errors_average_each_subjects_visits_over_the_scans_both_models_predicted():
    predictions = pd.DataFrame(
        {
            "subject_id": ["s1", "s1", "s2", "s3"],
            "session": ["v1", "v2", "v1", "v1"],
            "age": [5.0, 6.0, 10.0, 3.0],
            "a": [6.0, 8.0, 9.0, np.nan],  # errors 1, 2, 1, -
            "b": [5.0, 6.5, 13.0, 3.0],  # errors 0, 0.5, 3, 0
        }
    )
    a, b = paper_stats.subject_errors(predictions, "a", "b")
    assert a.tolist() == [1.5, 1.0] and b.tolist() == [0.25, 3.0]  # s3 has no pair
    predictions.loc[1, "a"] = np.inf  # s1's second visit leaves both models' averages
    a, b = paper_stats.subject_errors(predictions, "a", "b")
    assert a.tolist() == [1.0, 1.0] and b.tolist() == [0.0, 3.0]


def fabricated_seed(seed: int, shift: float) -> dict:
    """Eight subjects with two visits each; model b errs by `shift` more on the second visit."""
    rng = np.random.default_rng(seed)
    ages = np.repeat(np.arange(1.0, 9.0), 2)
    error_a = rng.uniform(0.1, 1.0, 16)
    error_b = error_a + np.tile([0.0, shift], 8) + rng.uniform(-0.05, 0.05, 16)
    predictions = pd.DataFrame(
        {
            "subject_id": np.repeat([f"sub-{i}" for i in range(8)], 2),
            "session": np.tile(["v1", "v2"], 8),
            "age": ages,
            "slice_lstm": ages + error_a,
            "resnet3d": ages - error_b,
        }
    )
    models = {"slice_lstm": {"mae": float(error_a.mean())}, "resnet3d": {"mae": float(error_b.mean())}}
    return {"seed": seed, "models": models, "predictions": predictions, "errors": (error_a, error_b)}


def test_model_comparison_tests_subjects_per_seed_and_mae_differences_across_seeds():
    seeds = [fabricated_seed(seed, shift) for seed, shift in ((0, 0.4), (1, 0.2), (2, 0.5))]
    result = paper_stats.model_comparison(seeds, "slice_lstm", "resnet3d")
    assert (result["a"], result["b"]) == ("slice_lstm", "resnet3d")
    for entry, seed in zip(result["per_seed"], seeds, strict=True):
        error_a, error_b = (errors.reshape(8, 2).mean(axis=1) for errors in seed["errors"])
        expected = stats.wilcoxon(error_a, error_b)
        assert entry["seed"] == seed["seed"] and entry["wilcoxon"]["n"] == 8
        assert entry["wilcoxon"]["p_value"] == pytest.approx(expected.pvalue)
        assert entry["wilcoxon"]["median_difference"] == pytest.approx(np.median(error_a - error_b))
        assert entry["difference"] == seed["models"]["slice_lstm"]["mae"] - seed["models"]["resnet3d"]["mae"]
    mae_a = [seed["models"]["slice_lstm"]["mae"] for seed in seeds]
    mae_b = [seed["models"]["resnet3d"]["mae"] for seed in seeds]
    summary = result["across_seeds"]
    assert summary["p_value"] == pytest.approx(stats.ttest_rel(mae_a, mae_b).pvalue)
    assert summary["mean"] == pytest.approx(np.mean(np.subtract(mae_a, mae_b)))


def comparison(differences, p_values, across=None) -> dict:
    """A model_comparison result with the given per-seed figures."""
    per_seed = [
        {"seed": s, "difference": d, "wilcoxon": {"n": 12, "median_difference": -0.1234, "p_value": p}}
        for s, (d, p) in enumerate(zip(differences, p_values, strict=True))
    ]
    return {"a": "slice_lstm", "b": "resnet3d", "per_seed": per_seed, "across_seeds": across}


def test_comparison_sentences_for_one_and_for_several_seeds():
    assert paper_stats.comparison_sentence(comparison([-0.2], [0.0412])) == (
        "paired by subject (n = 12), median absolute-error difference slice_lstm − resnet3d -0.123 y, "
        "Wilcoxon p = 0.0412."
    )
    across = {"mean": -0.15, "ci95": [-0.4, 0.1], "p_value": 0.125}
    assert paper_stats.comparison_sentence(comparison([-0.2, -0.1], [0.0412, None], across)) == (
        "MAE difference slice_lstm − resnet3d per seed -0.20, -0.10 y, mean over 2 seeds -0.15 y "
        "(95 % CI -0.40 to +0.10, paired t-test p = 0.125); per seed, paired by subject (n = 12), "
        "Wilcoxon p = 0.0412, –."
    )


def test_ensemble_verdicts_keep_the_one_seed_wording_and_count_wins_over_seeds():
    def result(beats, best, p):
        return {"ensemble": "ensemble (mean)", "beats_every_member": beats, "best_member": best,
                "wilcoxon": {"p_value": p}}  # fmt: skip

    assert paper_stats.ensemble_verdicts([{"ensembles": [result(False, "resnet3d", 0.5)]}]) == [
        "ensemble (mean): MAE not lower than every member's (best member resnet3d, Wilcoxon p = 0.5)"
    ]
    seeds = [
        {"ensembles": [result(True, "resnet3d", 0.01)]},
        {"ensembles": [result(False, "slice_lstm", None)]},
        {"ensembles": [result(True, "resnet3d", 0.2)]},
    ]
    assert paper_stats.ensemble_verdicts(seeds) == [
        "ensemble (mean): MAE lower than every member's in 2 of 3 seeds (best member per seed resnet3d, "
        "slice_lstm, resnet3d; Wilcoxon p against it 0.01, –, 0.2)"
    ]
