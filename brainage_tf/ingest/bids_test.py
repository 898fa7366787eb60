"""Tests of the BIDS reader."""

import json

import pytest

from brainage_tf.errors import CohortLayoutError
from brainage_tf.ingest.bids import read_bids


def test_bids_reads_session_ages_and_scanless_participants(bids_root):
    records = read_bids(bids_root, cohort="b")
    by_key = {(record.subject_id, record.session): record for record in records}
    assert set(by_key) == {("sub-01", ""), ("sub-02", "ses-1"), ("sub-02", "ses-2"), ("sub-03", "")}
    assert by_key[("sub-01", "")].age_years == 10.0
    assert by_key[("sub-02", "ses-2")].age_years == 6.5
    assert by_key[("sub-02", "ses-2")].source_path == "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz"
    assert by_key[("sub-03", "")].path == ""
    assert by_key[("sub-03", "")].age_years == 7.0


def test_bids_sidecar_units_are_honoured(bids_root, write_file):
    write_file(
        bids_root / "participants.json", json.dumps({"age": {"Description": "age", "Units": "months"}})
    )
    records = {record.subject_id: record for record in read_bids(bids_root) if not record.session}
    assert records["sub-01"].age_years == pytest.approx(10 / 12)


def test_bids_ground_truth_columns_are_read_beside_each_age_and_absent_stays_none(bids_root, write_file):
    assert all(r.tempo is None and r.developmental_age is None for r in read_bids(bids_root))
    write_file(
        bids_root / "participants.tsv",
        "participant_id\tage\tsex\tsite\ttempo\tdevelopmental_age\n"
        "sub-01\t10\tM\tA\t1.1\t11\nsub-02\t4\tF\tB\t0.9\t3.6\nsub-03\t7\tF\tA\tn/a\tn/a\n",
    )
    sessions = bids_root / "sub-02" / "sub-02_sessions.tsv"
    write_file(sessions, "session_id\tage\tdevelopmental_age\nses-1\t4\t3.6\nses-2\t6.5\t5.85\n")
    by_key = {(r.subject_id, r.session): (r.tempo, r.developmental_age) for r in read_bids(bids_root)}
    assert by_key == {
        ("sub-01", ""): (1.1, 11.0),
        ("sub-02", "ses-1"): (0.9, 3.6),
        ("sub-02", "ses-2"): (0.9, 5.85),  # the session's, not the participant's first visit
        ("sub-03", ""): (None, None),
    }
    write_file(sessions, "session_id\tage\tdevelopmental_age\nses-1\t4\tsoon\nses-2\t6.5\t5.85\n")
    with pytest.raises(
        CohortLayoutError, match=r"sub-02_sessions.tsv: developmental_age 'soon' is not a finite"
    ):
        read_bids(bids_root)
