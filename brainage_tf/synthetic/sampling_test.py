"""Tests of the visit-age distributions: age-group counts of planned cohorts, arms, visit gaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainage_tf.synthetic.cohort import generate_cohort, plan_visits
from brainage_tf.synthetic.spec import CohortSpec

# The paper's Table 1 groups [0, 6), [6, 11), [11, 16), [16, 22], written out rather than imported.
TABLE_1_EDGES = [0.0, 6.0, 11.0, 16.0, 22.0 + 1e-9]


def _table_1_counts(ages: pd.Series) -> np.ndarray:
    return np.histogram(ages, TABLE_1_EDGES)[0]


def test_nihpd_populates_every_table_1_group_where_log_uniform_does_not() -> None:
    nihpd = plan_visits(CohortSpec(300, sessions=3, age_distribution="nihpd"))
    log_uniform = plan_visits(CohortSpec(300, sessions=3))
    nihpd_counts, log_counts = _table_1_counts(nihpd.age), _table_1_counts(log_uniform.age)
    print(f"scans per Table 1 group: nihpd {nihpd_counts.tolist()}, log_uniform {log_counts.tolist()}")
    assert nihpd_counts.sum() == len(nihpd) > 600
    assert (nihpd_counts >= 0.15 * len(nihpd)).all()
    # The default crowds the young: its oldest group gets under a tenth of the scans.
    assert log_counts[-1] < 0.1 * len(log_uniform)


def test_nihpd_arms_follow_the_two_objectives() -> None:
    visits = plan_visits(CohortSpec(400, sessions=3, age_distribution="nihpd", seed=5))
    first = visits[visits.session == 1].set_index("participant_id").age
    infants = first[first < 4.5].index
    school = first[first >= 4.5].index
    # Objective 1 holds most subjects, first seen at 4.5-18.5; Objective 2 the rest, from birth.
    assert 0.65 <= len(school) / len(first) <= 0.85
    assert first[school].between(4.5, 18.5).all()
    # Objective 2 is dense in infancy: half its subjects are first seen before 1.5 years.
    assert first[infants].median() < 1.5
    by_subject = visits.groupby("participant_id").age
    gaps = by_subject.diff().dropna()
    infant_rows = visits.participant_id.isin(infants)
    assert gaps[infant_rows].between(0.25, 1.0).all() and gaps[~infant_rows].between(1.5, 2.5).all()
    assert visits[infant_rows].age.max() <= 4.5
    assert visits.age.max() <= 22.0
    # Several visits: most infants are scanned three times.
    assert (by_subject.size()[infants] == 3).mean() > 0.5


def test_nihpd_fills_every_year_of_the_young_tables() -> None:
    young = plan_visits(CohortSpec(300, sessions=3, age_distribution="nihpd")).age
    counts = np.histogram(young, [0, 1, 2, 3, 4, 5, 6])[0]
    print(f"scans per year 0-6: {counts.tolist()}")
    assert (counts >= 15).all()


def test_nihpd_clips_arms_to_the_age_range() -> None:
    school_only = plan_visits(CohortSpec(50, min_age=8.0, max_age=22.0, sessions=2, age_distribution="nihpd"))
    assert school_only[school_only.session == 1].age.between(8.0, 18.5).all()
    infants_only = plan_visits(CohortSpec(50, min_age=0.0, max_age=3.0, sessions=2, age_distribution="nihpd"))
    assert infants_only.age.between(0.0, 3.0).all()
    with pytest.raises(ValueError, match="the range 19-22 has none"):
        plan_visits(CohortSpec(5, min_age=19.0, max_age=22.0, age_distribution="nihpd"))
    with pytest.raises(ValueError, match="age-distribution must be one of log_uniform, nihpd"):
        plan_visits(CohortSpec(5, age_distribution="uniform"))


# Visits of 3 nihpd subjects (seed 2, 2 sessions), as first written; all three are school-age.
PINNED_VISITS = [
    ("sub-0001", 1, 7.2578),
    ("sub-0001", 2, 9.1659),
    ("sub-0002", 1, 18.0523),
    ("sub-0002", 2, 19.9699),
    ("sub-0003", 1, 14.3335),
    ("sub-0003", 2, 16.5695),
]


def test_written_cohort_and_its_plan_have_the_pinned_visits(tmp_path: Path) -> None:
    spec = CohortSpec(3, profile="discovery", seed=2, sessions=2, voxel_scale=3.9, age_distribution="nihpd")
    participants = generate_cohort(tmp_path, spec, workers=1)
    written = [
        (pid, int(session_id.removeprefix("ses-")), age)
        for pid in participants.participant_id
        for session_id, age in pd.read_csv(tmp_path / pid / f"{pid}_sessions.tsv", sep="\t")[
            ["session_id", "age"]
        ].itertuples(index=False)
    ]
    plan = plan_visits(spec)
    planned = list(plan.itertuples(index=False, name=None))
    for visits in (written, planned):
        assert [visit[:2] for visit in visits] == [visit[:2] for visit in PINNED_VISITS]
        np.testing.assert_allclose([visit[2] for visit in visits], [v[2] for v in PINNED_VISITS], atol=1e-4)
    # The ground truth written is the tempo the scans were rendered with, and age x tempo per visit.
    tempo = participants.set_index("participant_id")["tempo"]
    np.testing.assert_allclose(tempo[plan.participant_id], plan.tempo, atol=1e-6)
    np.testing.assert_allclose(plan.developmental_age, plan.age * plan.tempo)
    written_truth = pd.concat(
        [pd.read_csv(tmp_path / pid / f"{pid}_sessions.tsv", sep="\t") for pid in participants.participant_id]
    )
    np.testing.assert_allclose(written_truth.developmental_age, plan.developmental_age, atol=1e-4)
    assert not np.allclose(plan.tempo, 1.0)
    sidecar = json.loads((tmp_path / "participants.json").read_text())
    assert {"tempo", "developmental_age"} <= set(sidecar)
    assert "developmental_age" in json.loads((tmp_path / "sessions.json").read_text())
    description = json.loads((tmp_path / "dataset_description.json").read_text())
    assert "age_distribution=nihpd" in description["GeneratedBy"][0]["Description"]
