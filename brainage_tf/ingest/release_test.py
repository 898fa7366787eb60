"""Tests of the release (demographics table + scan files) reader."""

import gzip
from pathlib import Path

import nibabel.testing
import pytest

from brainage_tf.defaults import SCAN_SUFFIXES
from brainage_tf.errors import UnreadableScanError
from brainage_tf.ingest.release import read_release
from brainage_tf.scan_file import open_scan
from brainage_tf.serving.scans import ScanItem, folder_names


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


# An Analyze .hdr is half of a pair: its .img is the scan.
@pytest.mark.parametrize("suffix", [suffix for suffix in SCAN_SUFFIXES if suffix != ".hdr"])
def test_every_scan_suffix_is_a_scan_to_the_release_reader_and_the_batch_commands(
    tmp_path, write_file, suffix
):
    write_file(tmp_path / "demographics.csv", "subject_id,visit,age_days\n1001,V1,365.25\n")
    name = f"nihpd_1001_V1_t1w{suffix.upper()}"  # scanners write upper case too
    write_file(tmp_path / name)
    assert [r.source_path for r in read_release(tmp_path / "demographics.csv")] == [name]
    assert folder_names([ScanItem(str(tmp_path / name))]) == ["nihpd_1001_V1_t1w"]


def test_gzipped_minc_is_no_scan_since_nibabel_cannot_open_it(tmp_path, write_file):
    write_file(tmp_path / "demographics.csv", "subject_id,visit,age_days\n1001,V1,365.25\n")
    path = tmp_path / "nihpd_1001_V1_t1w.mnc.gz"
    path.write_bytes(gzip.compress((Path(nibabel.testing.data_path) / "small.mnc").read_bytes()))
    with pytest.raises(UnreadableScanError, match="cannot read"):
        open_scan(path)
    assert [r.source_path for r in read_release(tmp_path / "demographics.csv")] == [""]
    assert folder_names([ScanItem(str(path))]) == [path.name]
