"""Tests of the shared Beam ingest transform: examples, skips, copies, report, counters, strict."""

import re
from pathlib import Path

import apache_beam as beam
import nibabel as nib
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from brainage_tf.errors import IngestError
from brainage_tf.ingest.beam import IngestScans, summarize
from brainage_tf.ingest.direct_runner import local_runner, prepare_local_runner
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.ingest.skips import content_duplicates, find_duplicates, read_skip_report
from brainage_tf.preprocessing import GRIDS, PreprocessConfig

NIBABEL_DATA = Path(nib.__file__).resolve().parent / "tests" / "data"
GOOD_SCAN = str(NIBABEL_DATA / "small.mnc")  # a real downsampled brain in MNI space
OTHER_SCAN = str(NIBABEL_DATA / "minc2_1_scale.mnc")  # another brain, so not a copy of GOOD_SCAN
SCAN_4D = str(NIBABEL_DATA / "minc1_4d.mnc")
CONFIG = PreprocessConfig(grid="tiny", registration="none")


def _record(subject, path=GOOD_SCAN, age=5.0, session="", cohort="c"):
    age_text = "" if age is None else f"age={age}"
    return ScanRecord(
        subject, session, path, Path(path).name if path else "", age, age_text, "F", "S", cohort
    )


def _records(tmp_path: Path) -> list[tuple[str, ScanRecord]]:
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b truncated")
    giant = tmp_path / "giant.nii"  # a header that declares 2048^3 voxels, and no voxels
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 2048))
    giant.write_bytes(header.binaryblock + b"\0" * 4)
    return [
        ("train", _record("good1", path=OTHER_SCAN)),
        ("test", _record("good2", age=12.5, session="V1")),
        ("train", _record("old", age=130.0)),
        ("", _record("noage", age=None)),
        ("train", _record("fourd", path=SCAN_4D)),
        ("train", _record("corrupt", path=str(corrupt))),
        ("train", _record("giant", path=str(giant))),
        ("train", _record("gone", path=str(tmp_path / "gone.nii"))),
        ("train", _record("twice", session="V1")),
        ("train", _record("twice", session="V1")),
    ]


def _ingest(records, report: Path, strict: bool = False, options: PipelineOptions | None = None, check=None):
    """Runs IngestScans on a train/test split; `check(outputs)` may add assertions first."""
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    prepare_local_runner(pipeline)
    outputs = pipeline | IngestScans(records, CONFIG, ("train", "test"), str(report), strict=strict)
    if check is not None:
        check(outputs)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def _check_good1_and_good2(outputs) -> None:
    """Asserts that train holds c/good1/ and test c/good2/V1, a model-ready small.mnc example."""
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


def _run(records, report: Path, strict: bool = False, options: PipelineOptions | None = None):
    return _ingest(records, report, strict, options, check=_check_good1_and_good2)


def test_ingest_writes_examples_and_reports_every_skip(tmp_path):
    records = _records(tmp_path)
    report = tmp_path / "skip_report.tsv"
    summary = summarize(_run(records, report))
    assert (summary.rows_in, summary.examples_written, summary.skipped) == (10, 2, 8)
    assert summary.rows_in == summary.examples_written + summary.skipped
    assert summary.skipped_by_reason == {
        "duplicate": 2,
        "implausible_age": 1,
        "missing_age": 1,
        "missing_file": 1,
        "not_single_volume": 1,
        "scan_too_large": 1,
        "unreadable_scan": 1,
    }
    assert summary.line() == "10 rows in, 2 examples written, 8 skipped"
    rows = read_skip_report(str(report))
    assert sorted(row["subject"] for row in rows) == [
        "corrupt",
        "fourd",
        "giant",
        "gone",
        "noage",
        "old",
        "twice",
        "twice",
    ]
    reasons = {row["subject"]: row["reason"] for row in rows}
    assert reasons["fourd"].startswith("not_single_volume: ")
    assert reasons["giant"].startswith("scan_too_large: the header declares 2048x2048x2048 float32 voxels")
    assert reasons["gone"] == "missing_file: file does not exist"


def test_empty_skip_report_still_has_its_header(tmp_path):
    report = tmp_path / "skip_report.tsv"
    _run(
        [("train", _record("good1", path=OTHER_SCAN)), ("test", _record("good2", age=12.5, session="V1"))],
        report,
    )
    assert report.read_text() == "path\tsubject\treason\n"


def test_strict_mode_fails_on_the_first_bad_row(tmp_path):
    records = [("train", _record("good1", path=OTHER_SCAN)), ("train", _record("old", age=130.0))]
    old = f"{GOOD_SCAN}: implausible_age: age 130.000 years (age=130.0) outside"
    with pytest.raises(IngestError, match=f"^{re.escape(old)}"):
        _ingest(records, tmp_path / "r.tsv", strict=True)


def test_strict_mode_rejects_duplicates_before_running(tmp_path):
    records = [("train", _record("a", session="V1")), ("train", _record("a", session="V1"))]
    with pytest.raises(IngestError, match="duplicate"):
        IngestScans(records, CONFIG, ("train",), str(tmp_path / "r.tsv"), strict=True).expand(beam.Pipeline())


def test_duplicates_are_per_cohort():
    records = [_record("a", cohort="x"), _record("a", cohort="y"), _record("a", cohort="y")]
    duplicates = find_duplicates(records)
    assert sorted(duplicates) == [1, 2]
    assert duplicates[1].kind == "duplicate"
    assert "listed 2 times" in duplicates[1].detail


def _copies_of_good_scan(tmp_path: Path) -> tuple[str, str]:
    """GOOD_SCAN's voxels saved as RAS+ NIfTI and as MGZ: other formats and orientation, same content."""
    image = nib.load(GOOD_SCAN)
    data = np.asarray(image.dataobj, dtype=np.float32)
    nifti, mgz = str(tmp_path / "twin.nii.gz"), str(tmp_path / "again.mgz")
    nib.save(nib.as_closest_canonical(nib.Nifti1Image(data, image.affine)), nifti)
    nib.save(nib.MGHImage(data, image.affine), mgz)
    return nifti, mgz


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_copied_content_is_skipped_and_names_the_kept_scan(tmp_path, mode):
    nifti_copy, mgz_copy = _copies_of_good_scan(tmp_path)
    records = [
        ("train", _record("good1", path=OTHER_SCAN)),
        ("test", _record("good2", age=12.5, session="V1")),
        ("train", _record("twin", path=nifti_copy)),  # another subject: would leak into train
        ("test", _record("good2", age=13.0, session="V2", path=mgz_copy)),  # the same subject again
    ]
    report = tmp_path / "skip_report.tsv"
    options = PipelineOptions([f"--direct_running_mode={mode}", "--direct_num_workers=2"])
    summary = summarize(_run(records, report, options=options))
    assert (summary.rows_in, summary.examples_written, summary.skipped) == (4, 2, 2)
    assert summary.skipped_by_reason == {"duplicate_content": 2}
    rows = {(row["subject"], row["path"]): row["reason"] for row in read_skip_report(str(report))}
    kept = f"same image content as {GOOD_SCAN} (subject good2, session V1), which is kept"
    assert rows == {
        ("twin", nifti_copy): f"duplicate_content: {kept}",
        ("good2", mgz_copy): f"duplicate_content: {kept}",
    }


def test_strict_mode_fails_on_copied_content_naming_both_files(tmp_path):
    nifti_copy, _ = _copies_of_good_scan(tmp_path)
    records = [
        ("test", _record("good2", age=12.5, session="V1")),
        ("train", _record("twin", path=nifti_copy)),
    ]
    both_files = f"{nifti_copy}: duplicate_content: same image content as {GOOD_SCAN}"
    with pytest.raises(IngestError, match=f"^{re.escape(both_files)}"):
        _ingest(records, tmp_path / "r.tsv", strict=True)


def test_the_copy_with_the_smallest_key_is_kept_whatever_the_order():
    records = [_record("b"), _record("a", session="V2"), _record("a", session="V1")]
    for ordering in (records, records[::-1]):
        dropped = dict(content_duplicates(ordering))
        assert sorted(dropped) == ["c/a/V2", "c/b/"]
        assert "(subject a, session V1)" in dropped["c/b/"].detail


def test_undeclared_split_is_an_error(tmp_path):
    with pytest.raises(IngestError, match="undeclared splits"):
        IngestScans([("validation", _record("a"))], CONFIG, ("train",), str(tmp_path / "r.tsv"))
