"""Tests of the subject-level, age-stratified split assignment."""

import random

import pytest

from brainage_tf.ingest.records import ScanRecord
from brainage_tf.ingest.splits import TEST, TRAIN, assign_splits, subject_hash


def _longitudinal(n_subjects: int = 100, sessions: int = 3) -> list[ScanRecord]:
    rng = random.Random(0)
    records = []
    for index in range(n_subjects):
        first_age = rng.uniform(0.0, 20.0)
        for visit in range(sessions):
            age = first_age + visit
            records.append(
                ScanRecord(f"s{index:03d}", f"V{visit}", f"/x/{index}_{visit}", "", age, f"age={age}")
            )
    return records


def test_every_visit_gets_the_split_of_its_subjects_first_visit():
    # The ten children of test_assignment_of_fixed_subjects_is_pinned, seen again 1.3 and 4.1 years
    # later: binned by a later visit, sub-0008 would go to test instead of sub-0007.
    ages = [0.5, 0.7, 1.2, 1.9, 1.1, 3.0, 3.4, 3.9, 12.0, 12.5]
    records = [
        ScanRecord(f"sub-{index:04d}", f"V{visit}", f"/x/{index}_{visit}", "", age + gap, f"age={age + gap}")
        for visit, gap in enumerate((0.0, 1.3, 4.1))
        for index, age in enumerate(ages, 1)
    ]
    splits = assign_splits(records)
    # Looked up per record, as the builders do: every visit of a subject lands in one split.
    by_visit = {(r.subject_id, r.session): splits[(r.cohort, r.subject_id)] for r in records}
    assert by_visit == {
        (f"sub-{index:04d}", f"V{visit}"): TEST if index in (3, 7) else TRAIN
        for visit in range(3)
        for index in range(1, 11)
    }


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


@pytest.mark.parametrize(
    "subject_id, digest",
    [
        ("s01", "fb173a948cf4a99ace8aa40268ff7087a975aaca133ef2ed0012ee64feeb5dd7"),
        ("sub-0001", "ecc25ae0538a7d4076589776dd70f66b7b8337c1108c3bf27f6b9a46c8abcc51"),
        ("1001", "fe675fe7aaee830b6fed09b64e034f84dcbdaeb429d9cccd4ebb90e15af8dd71"),
    ],
)
def test_subject_hash_is_pinned(subject_id, digest):
    # A changed digest would silently move subjects between train and test of a rebuilt dataset.
    assert subject_hash(subject_id) == digest


def test_assignment_of_fixed_subjects_is_pinned():
    ages = [0.5, 0.7, 1.2, 1.9, 1.1, 3.0, 3.4, 3.9, 12.0, 12.5]
    records = [
        ScanRecord(f"sub-{index:04d}", "", "/x", "", age, f"age={age}") for index, age in enumerate(ages, 1)
    ]
    splits = assign_splits(records)
    assert sorted(subject for (_, subject), split in splits.items() if split == TEST) == [
        "sub-0003",
        "sub-0007",
    ]
    assert len(splits) == 10


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


@pytest.mark.parametrize(
    "fraction, width, message",
    [
        (1.5, 1.0, r"test_fraction must be in \[0, 1\], got 1.5"),
        (0.2, 0.0, "bin_width_years must be positive, got 0.0"),
    ],
)
def test_bad_arguments_raise(fraction, width, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        assign_splits([], test_fraction=fraction, bin_width_years=width)
