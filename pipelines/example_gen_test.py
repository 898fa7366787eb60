"""ExampleGen: its fingerprint of a cohort folder sees every file change; it passes the Beam options on."""

import os

import pytest

from brainage_tf.errors import BuildError, ComponentError
from pipelines import example_gen
from pipelines.example_gen import manual_dir_fingerprint
from tfds_builders import prepare
from tfds_builders.portable import portable_options


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


def test_the_beam_pipeline_options_reach_the_build_unchanged(tmp_path, monkeypatch):
    seen = []

    def record(*args, **kwargs):
        seen.append(kwargs["beam_pipeline_options"])
        raise BuildError("stopped after its arguments were seen")

    monkeypatch.setattr(prepare, "prepare_dataset", record)
    options = portable_options(50000)
    with pytest.raises(ComponentError, match="stopped after its arguments were seen"):
        example_gen.run(str(tmp_path / "store"), "synthetic_cohort", "tiny", beam_pipeline_options=options)
    assert seen == [options]
