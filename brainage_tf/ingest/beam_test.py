"""Tests of the shared Beam ingest transform: examples, skips, report, counters, strict."""

from pathlib import Path

import apache_beam as beam
import nibabel as nib
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from brainage_tf.ingest.beam import (
    IngestError,
    IngestScans,
    find_duplicates,
    keep_direct_runner_offline,
    read_skip_report,
    summarize,
)
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.preprocessing import GRIDS, PreprocessConfig

NIBABEL_DATA = Path(nib.__file__).resolve().parent / "tests" / "data"
GOOD_SCAN = str(NIBABEL_DATA / "small.mnc")  # a real downsampled brain in MNI space
SCAN_4D = str(NIBABEL_DATA / "minc1_4d.mnc")
CONFIG = PreprocessConfig(grid="tiny", registration="none")


def _record(subject, path=GOOD_SCAN, age=5.0, session="", cohort="c"):
    age_text = "" if age is None else f"age={age}"
    return ScanRecord(subject, session, path, Path(path).name if path else "", age, age_text, "F", "S", cohort)


def _records(tmp_path: Path) -> list[tuple[str, ScanRecord]]:
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b truncated")
    return [
        ("train", _record("good1")),
        ("test", _record("good2", age=12.5, session="V1")),
        ("train", _record("old", age=130.0)),
        ("", _record("noage", age=None)),
        ("train", _record("fourd", path=SCAN_4D)),
        ("train", _record("corrupt", path=str(corrupt))),
        ("train", _record("gone", path=str(tmp_path / "gone.nii"))),
        ("train", _record("twice", session="V1")),
        ("train", _record("twice", session="V1")),
    ]


def _run(records, report: Path, strict: bool = False):
    pipeline = beam.Pipeline()
    keep_direct_runner_offline(pipeline)
    outputs = pipeline | IngestScans(records, CONFIG, ("train", "test"), str(report), strict=strict)
    keys = {
        split: outputs[split] | f"Keys{split}" >> beam.Map(lambda key_example: key_example[0])
        for split in ("train", "test")
    }
    assert_that(keys["train"], equal_to(["c/good1/"]), label="train_keys")
    assert_that(keys["test"], equal_to(["c/good2/V1"]), label="test_keys")

    def check_example(key_example):
        _, example = key_example
        assert example["volume"].shape == GRIDS["tiny"].shape
        assert example["volume"].dtype == np.float16
        assert example["age"] == np.float32(12.5)
        assert example["source_path"] == "small.mnc"
        assert 0.0 < example["registration_ncc"] <= 1.0
        return True

    assert_that(outputs["test"] | beam.Map(check_example), equal_to([True]), label="test_example")
    result = pipeline.run()
    result.wait_until_finish()
    return result


def test_ingest_writes_examples_and_reports_every_skip(tmp_path):
    records = _records(tmp_path)
    report = tmp_path / "skip_report.tsv"
    summary = summarize(_run(records, report))
    assert (summary.rows_in, summary.examples_written, summary.skipped) == (9, 2, 7)
    assert summary.rows_in == summary.examples_written + summary.skipped
    assert summary.skipped_by_kind == {
        "duplicate": 2,
        "implausible_age": 1,
        "missing_age": 1,
        "missing_file": 1,
        "not_single_volume": 1,
        "unreadable_scan": 1,
    }
    assert summary.line() == "9 rows in, 2 examples written, 7 skipped"
    rows = read_skip_report(str(report))
    assert sorted(row["subject"] for row in rows) == ["corrupt", "fourd", "gone", "noage", "old", "twice", "twice"]
    reasons = {row["subject"]: row["reason"] for row in rows}
    assert reasons["fourd"].startswith("not_single_volume: ")
    assert reasons["gone"] == "missing_file: file does not exist"


def test_empty_skip_report_still_has_its_header(tmp_path):
    report = tmp_path / "skip_report.tsv"
    _run([("train", _record("good1")), ("test", _record("good2", age=12.5, session="V1"))], report)
    assert report.read_text() == "path\tsubject\treason\n"


def test_strict_mode_fails_on_the_first_bad_row(tmp_path):
    records = [("train", _record("good1")), ("train", _record("old", age=130.0))]
    with pytest.raises(Exception, match="implausible_age"):
        _run(records, tmp_path / "r.tsv", strict=True)


def test_strict_mode_rejects_duplicates_before_running(tmp_path):
    records = [("train", _record("a", session="V1")), ("train", _record("a", session="V1"))]
    with pytest.raises(IngestError, match="duplicate"):
        IngestScans(records, CONFIG, ("train",), str(tmp_path / "r.tsv"), strict=True).expand(beam.Pipeline())


def test_duplicates_are_per_cohort():
    records = [_record("a", cohort="x"), _record("a", cohort="y"), _record("a", cohort="y")]
    duplicates = find_duplicates(records)
    assert sorted(duplicates) == [1, 2]
    assert "listed 2 times" in duplicates[1]


def test_undeclared_split_is_an_error(tmp_path):
    with pytest.raises(IngestError, match="undeclared splits"):
        IngestScans([("validation", _record("a"))], CONFIG, ("train",), str(tmp_path / "r.tsv"))
