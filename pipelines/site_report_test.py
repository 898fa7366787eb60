"""The learning curve's subject draws, scores and tables, on hand-made numbers."""

from __future__ import annotations

import pytest

from pipelines import site_report


def test_draws_hold_out_the_same_subjects_for_every_n_and_nest_the_training_sets():
    subjects = [f"s{index:02d}" for index in range(30) for _ in range(2)]  # two scans each
    draw = site_report.draw_subjects(subjects, largest=10, seed=4, min_held_out=20)
    assert len(draw.held_out) == 20 and len(draw.pool) == 10
    assert set(draw.held_out).isdisjoint(draw.pool)
    assert set(draw.held_out) | set(draw.pool) == set(subjects)
    assert draw.first(5) == draw.pool[:5] and set(draw.first(5)) < set(draw.first(10))
    assert site_report.draw_subjects(subjects, 10, 4, 20) == draw  # the seed decides
    assert site_report.draw_subjects(subjects, 10, 5, 20).held_out != draw.held_out
    with pytest.raises(ValueError, match="the site has 30 subjects; N up to 11 needs at least 31"):
        site_report.draw_subjects(subjects, 11, 4, 20)


def test_a_score_is_the_mae_and_the_share_of_ages_inside_their_intervals_ends_included():
    scores = site_report.score(
        [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 6.0], [0.0, 1.0, 2.5, 4.5], [2.0, 2.0, 3.5, 5.0]
    )
    assert scores == {"n": 4, "mae": 0.875, "coverage": 0.75, "half_width": 0.5625}
    assert site_report.score([1.0], [2.0], None, None) == {
        "n": 1,
        "mae": 1.0,
        "coverage": None,
        "half_width": None,
    }


def test_the_table_shows_each_methods_mean_and_sd_per_n_and_a_dash_where_it_did_not_run():
    rows = [
        {"seed": seed, "n_train": size, "method": method, "mae": mae, "coverage": None}
        for seed, shift in ((0, 0.0), (1, 0.2))
        for size in (5, 10)
        for method, mae in (("none", 1.0 + shift), ("finetune_all", 0.5 / size * 10 + shift))
    ]
    text = site_report.table(rows, [5, 10], "mae")
    lines = text.splitlines()
    assert lines[0] == "| method | N = 5 | N = 10 |"
    assert "| no adaptation (the parent) | 1.10 ± 0.14 | 1.10 ± 0.14 |" in lines
    assert "| fine-tuning everything | 1.10 ± 0.14 | 0.60 ± 0.14 |" in lines
    assert "| recalibration only (calibrate) | – | – |" in lines
    assert "| fine-tuning everything | – | – |" in site_report.table(rows, [5, 10], "coverage")
