"""Tests of age parsing and the plausible age range."""

from pathlib import Path

import pytest

from brainage_tf.ingest.ages import AgeColumn, ParsedAge, age_problem, find_age_column, parse_age
from brainage_tf.ingest.records import ScanRecord


def _record(age_years, age_text="age=x"):
    return ScanRecord("s", "", "/p", "p", age_years, age_text)


@pytest.mark.parametrize(
    "age_years, age_text, kind",
    [
        (None, "", "missing_age"),
        (None, "age=ten", "unparseable_age"),
        (float("nan"), "age=nan", "unparseable_age"),
        (-0.5, "age=-0.5", "negative_age"),
        (-3.0, "age=-3", "implausible_age"),
        (100.5, "age=100.5", "implausible_age"),
    ],
)
def test_age_problem_reasons(age_years, age_text, kind):
    assert age_problem(_record(age_years, age_text))[0] == kind


@pytest.mark.parametrize("age_years", [0.0, 0.01, 22.0, 100.0])
def test_age_problem_accepts_plausible_ages(age_years):
    assert age_problem(_record(age_years)) is None


def test_parse_age_reads_lower_case_rows_and_keeps_the_column_as_written():
    assert parse_age({"age_months": "18"}, AgeColumn("Age_Months", "months", "/t.csv")) == ParsedAge(
        pytest.approx(1.5), "Age_Months=18", "/t.csv", "months"
    )
    assert parse_age({"age": "730.5", "age_unit": "d"}, AgeColumn("age", None)) == ParsedAge(
        pytest.approx(2.0), "age=730.5 d", "", "days"
    )
    assert parse_age({"age": "3"}, AgeColumn("age", None)) == ParsedAge(None, "age=3 <no age_unit>")
    assert parse_age({"age": "n/a"}, AgeColumn("age", "years")) == ParsedAge(None, "")
    assert parse_age({"age": "3"}, None) == ParsedAge(None, "")


def test_find_age_column_keeps_the_column_as_spelt_and_states_its_unit():
    assert find_age_column(Path("/absent.csv"), ["subject_id", "AGE_DAYS"]) == AgeColumn(
        "AGE_DAYS", "days", "/absent.csv"
    )


def test_an_age_outside_the_cohorts_range_has_its_own_reason():
    assert age_problem(_record(22.5, "age=22.5"), (0.0, 22.0)) == (
        "outside_age_range",
        "age 22.500 years (age=22.5) outside the cohort's 0-22 years",
    )
    assert age_problem(_record(22.0), (0.0, 22.0)) is None
    assert age_problem(_record(150.0), (0.0, 22.0))[0] == "implausible_age"
