"""Tests of the BIDS reader."""

import json

import pytest

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
