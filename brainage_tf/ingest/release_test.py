"""Tests of the release (demographics table + scan files) reader."""

import pytest

from brainage_tf.ingest.release import read_release


def test_release_matches_scans_to_visits(tmp_path, write_file):
    write_file(
        tmp_path / "demographics.csv",
        "subject_id,visit,age_days,sex\n1001,V1,365.25,F\n1001,v2,730.5,F\n1002,V1,100,M\n",
    )
    write_file(tmp_path / "a" / "nihpd_1001_V1_t1w.mnc")
    write_file(tmp_path / "b" / "nihpd_1001_V2_t1w.nii.gz")
    write_file(tmp_path / "b" / "nihpd_1003_V1_t1w.nii.gz")
    write_file(tmp_path / "b" / "notes_1001_V1.txt")
    records = read_release(tmp_path / "demographics.csv", cohort="n")
    summary = [(r.subject_id, r.session, r.source_path, r.age_years) for r in records]
    assert summary == [
        ("1001", "V1", "a/nihpd_1001_V1_t1w.mnc", pytest.approx(1.0)),
        ("1001", "V2", "b/nihpd_1001_V2_t1w.nii.gz", pytest.approx(2.0)),
        ("1002", "V1", "", pytest.approx(100 / 365.25)),
        ("1003", "V1", "b/nihpd_1003_V1_t1w.nii.gz", None),
    ]
