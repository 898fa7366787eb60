"""Deterministic subject-level train/test assignment, stratified by age bin.

Every scan of a subject lands in the same split, so longitudinal visits of one
child never straddle train and test. Within each age bin the subjects are
ordered by SHA-256 of their ID and the first ones go to test; the counts per bin
follow the running total, so the whole cohort gets round(test_fraction * n)
test subjects and each bin gets its share. The result depends only on the
records' subject IDs and ages, never on worker count or input order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

from brainage_tf.ingest.ages import age_problem
from brainage_tf.ingest.records import ScanRecord

TRAIN = "train"
TEST = "test"
REPLICATION = "replication"
# The fewest subjects each split needs for what it is for, and why (docs/ingest.md, "Split minimums").
_AN_EVALUATION = "an evaluation needs a subject"
MIN_SPLIT_SUBJECTS: dict[str, tuple[int, str]] = {
    TRAIN: (
        2,
        "training holds validation subjects out of it by subject, so it needs one to fit and one to hold out",
    ),
    TEST: (1, _AN_EVALUATION),
    REPLICATION: (1, _AN_EVALUATION),
}
# The paper's 80/20 subject split, stratified by 1-year bins of baseline age.
TEST_FRACTION = 0.2
AGE_BIN_WIDTH_YEARS = 1.0


def subject_hash(subject_id: str) -> str:
    """Stable hex digest of a subject ID (same on every machine and Python run)."""
    return hashlib.sha256(subject_id.encode("utf-8")).hexdigest()


def assign_splits(
    records: Iterable[ScanRecord],
    test_fraction: float = TEST_FRACTION,
    bin_width_years: float = AGE_BIN_WIDTH_YEARS,
    age_range: tuple[float, float] | None = None,
) -> Mapping[tuple[str, str], str]:
    """Assigns each subject to "train" or "test", stratified by age bin.

    A subject's bin is that of its youngest valid age (its baseline visit).
    Records with an unusable age do not take part; a subject with no usable age
    gets no split (its records are skipped downstream anyway).

    Args:
      records: The cohort's records.
      test_fraction: Fraction of subjects sent to test, in [0, 1].
      bin_width_years: Width of the age bins used for stratification.
      age_range: The cohort's (youngest, oldest) age in years; a record outside it takes no part.

    Returns:
      (cohort, subject_id) -> "train" or "test".

    Raises:
      ValueError: test_fraction outside [0, 1] or a non-positive bin width.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    if bin_width_years <= 0:
        raise ValueError(f"bin_width_years must be positive, got {bin_width_years}")
    baseline_age: dict[tuple[str, str], float] = {}
    for record in records:
        if age_problem(record, age_range) is not None:
            continue
        subject = (record.cohort, record.subject_id)
        baseline_age[subject] = min(baseline_age.get(subject, math.inf), record.age_years)

    bins: dict[int, list[tuple[str, str]]] = {}
    for subject, age in baseline_age.items():
        bins.setdefault(math.floor(age / bin_width_years), []).append(subject)

    assignment = {}
    subjects_seen = 0
    test_assigned = 0
    for age_bin in sorted(bins):
        subjects = sorted(bins[age_bin], key=lambda subject: (subject_hash(subject[1]), subject))
        subjects_seen += len(subjects)
        test_in_bin = math.floor(test_fraction * subjects_seen + 0.5) - test_assigned
        test_assigned += test_in_bin
        for index, subject in enumerate(subjects):
            assignment[subject] = TEST if index < test_in_bin else TRAIN
    return assignment
