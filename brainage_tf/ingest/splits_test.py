"""Tests of the subject-level, age-stratified split assignment."""

import random

import pytest

from brainage_tf.ingest.records import ScanRecord
from brainage_tf.ingest.splits import TEST, TRAIN, assign_splits


def _longitudinal(n_subjects: int = 100, sessions: int = 3) -> list[ScanRecord]:
    rng = random.Random(0)
    records = []
    for index in range(n_subjects):
        first_age = rng.uniform(0.0, 20.0)
        for visit in range(sessions):
            age = first_age + visit
            records.append(ScanRecord(f"s{index:03d}", f"V{visit}", f"/x/{index}_{visit}", "", age, f"age={age}"))
    return records


def test_all_sessions_of_a_subject_share_one_split():
    records = _longitudinal()
    splits = assign_splits(records)
    by_subject = {}
    for record in records:
        by_subject.setdefault(record.subject_id, set()).add(splits[("", record.subject_id)])
    assert all(len(assigned) == 1 for assigned in by_subject.values())
    assert len(by_subject) == 100


def test_twenty_percent_of_subjects_go_to_test():
    splits = assign_splits(_longitudinal(n_subjects=250))
    assert sum(split == TEST for split in splits.values()) == 50
    assert set(splits.values()) == {TRAIN, TEST}


def test_assignment_ignores_row_order_and_is_stratified():
    records = _longitudinal(n_subjects=200, sessions=1)
    shuffled = list(records)
    random.Random(1).shuffle(shuffled)
    assert assign_splits(records) == assign_splits(shuffled)
    splits = assign_splits(records, bin_width_years=5.0)
    for low in range(0, 20, 5):
        in_bin = [r.subject_id for r in records if low <= r.age_years < low + 5]
        test_share = sum(splits[("", s)] == TEST for s in in_bin) / len(in_bin)
        assert test_share == pytest.approx(0.2, abs=0.05)


def test_subjects_without_a_usable_age_get_no_split():
    records = [
        ScanRecord("a", "", "/a", "", None, ""),
        ScanRecord("b", "", "/b", "", 150.0, "age=150"),
        ScanRecord("c", "", "/c", "", 5.0, "age=5"),
    ]
    assert set(assign_splits(records)) == {("", "c")}


def test_same_subject_id_in_two_cohorts_is_two_subjects():
    records = [ScanRecord("s1", "", f"/{c}", "", 5.0, "age=5", cohort=c) for c in ("x", "y")]
    assert set(assign_splits(records)) == {("x", "s1"), ("y", "s1")}


@pytest.mark.parametrize("fraction, width", [(1.5, 1.0), (0.2, 0.0)])
def test_bad_arguments_raise(fraction, width):
    with pytest.raises(ValueError):
        assign_splits([], test_fraction=fraction, bin_width_years=width)
