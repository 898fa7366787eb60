"""The unit rule on whole cohorts: it fires on ages written in months, never on a genuine cohort's ages."""

import pytest

from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS
from brainage_tf.ingest.checks import unit_mistake
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.synthetic.cohort import plan_visits
from brainage_tf.synthetic.spec import CohortSpec

DISCOVERY = (MIN_AGE_YEARS, MAX_AGE_YEARS)
REPLICATION = (MIN_AGE_YEARS, YOUNG_MAX_AGE_YEARS)
# The synthetic cohorts of the builder's configs: small's discovery and replication profiles, and the
# experiment's NIH-PD-shaped discovery cohort (300 subjects, up to 3 visits).
SYNTHETIC = {
    "small discovery": (CohortSpec(n_subjects=160, min_age=0, max_age=22), DISCOVERY),
    "replication": (
        CohortSpec(n_subjects=40, min_age=0, max_age=6, profile="replication", seed=1),
        REPLICATION,
    ),
    "experiment": (
        CohortSpec(n_subjects=300, min_age=0, max_age=22, sessions=3, age_distribution="nihpd"),
        DISCOVERY,
    ),
}


def _records(written_ages, column="age", table="/c/participants.tsv"):
    """Records of one cohort whose table states years, with ages as written."""
    return [
        ScanRecord(
            f"s{i}",
            "",
            f"/c/s{i}.nii",
            f"s{i}.nii",
            age,
            f"{column}={age:g}",
            cohort="c",
            age_table=table,
            age_unit="years",
        )  # fmt: skip
        for i, age in enumerate(written_ages)
    ]


@pytest.mark.parametrize("name", SYNTHETIC)
def test_the_rule_never_fires_on_the_synthetic_cohorts_own_ages_and_fires_on_them_in_months(name):
    spec, age_range = SYNTHETIC[name]
    ages = plan_visits(spec)["age"].round(4).tolist()
    assert unit_mistake(_records(ages), {"c": age_range}) is None
    months = unit_mistake(_records([age * 12 for age in ages]), {"c": age_range})
    assert (
        months is not None and "fit it read as months; state the unit: name the column age_months" in months
    )


def test_the_message_names_the_table_the_column_a_few_values_and_how_to_state_the_unit():
    ages = [45.6, 18.1, 3.7, 0.1, 39.9, 11.9, 98.5, 4.7, 70.2, 23.3]
    message = unit_mistake(_records(ages), {"c": DISCOVERY})
    assert message == (
        "/c/participants.tsv: column age: 5 of 10 ages read as years are above the c cohort's 0-22 years "
        "(45.6, 39.9, 98.5, 70.2, 23.3), but 100% of them fit it read as months; state the unit: "
        "name the column age_months or add an age_unit column, or for BIDS write participants.json "
        '{"age": {"Units": "months"}} '
        "(if the cohort really is older, give its range as age_range in a JSON config)"
    )


def test_days_are_named_when_months_do_not_fit_and_a_few_typos_do_not_fire():
    days = [400.0, 3000.0, 7000.0, 90.0, 5000.0]
    assert "fit it read as days" in unit_mistake(_records(days, "age"), {"c": DISCOVERY})
    typos = [8.0, 12.0, 30.0, 40.0, 5.0, 6.0, 7.0, 9.0, 10.0, 11.0, 3.0]  # 2 above: under UNIT_MIN_ABOVE
    assert unit_mistake(_records(typos), {"c": DISCOVERY}) is None
