"""ExampleGen's fingerprint of a cohort folder: any added, removed, resized or rewritten file changes it."""

import os

import pytest

from brainage_tf.errors import ComponentError
from pipelines.example_gen import manual_dir_fingerprint


def test_the_manual_dir_fingerprint_sees_every_file_change(tmp_path):
    cohort = tmp_path / "nihpd"
    (cohort / "t1").mkdir(parents=True)
    scan = cohort / "t1" / "nihpd_1001_V1_t1w.mnc"
    scan.write_bytes(b"scan")
    (cohort / "demographics.csv").write_text("subject_id,visit,age_days\n1001,V1,400\n")
    base = manual_dir_fingerprint(str(cohort))
    assert manual_dir_fingerprint(str(cohort)) == base
    (cohort / "t1" / "nihpd_1002_V1_t1w.mnc").write_bytes(b"scan")
    added = manual_dir_fingerprint(str(cohort))
    assert added != base
    scan.write_bytes(b"scan, longer")
    resized = manual_dir_fingerprint(str(cohort))
    assert resized != added
    stat = scan.stat()
    os.utime(scan, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # rewritten in place, same size
    assert manual_dir_fingerprint(str(cohort)) != resized
    assert manual_dir_fingerprint("") == ""


def test_a_manual_dir_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(ComponentError, match="missing: manual dir is not a folder"):
        manual_dir_fingerprint(str(tmp_path / "missing"))
