"""A user's own BIDS cohort through the nihpd builder: unit mistakes, impossible splits, progress."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import nibabel
import pytest
import tensorflow_datasets as tfds

from brainage_tf import preprocessing
from brainage_tf.errors import CohortError
from brainage_tf.ingest import INGEST_SUMMARY_NAME, SKIP_REPORT_NAME, IngestSummary
from brainage_tf.ingest.skips import read_skip_report
from tfds_builders import cohort_builder
from tfds_builders.cohort_builder import CohortConfig
from tfds_builders.nihpd.nihpd_dataset_builder import Builder

SCANS = Path(__file__).resolve().parent / "nihpd" / "dummy_data" / "scans"
# Five readable scans of the nihpd dummy data, and ages in months; sub-06 (a copy of sub-01's scan) is
# 25 years old, outside the nihpd cohort's 0-22.
COHORT = {"sub-01": ("s01_V1.nii.gz", 96), "sub-02": ("s04.nii", 42), "sub-03": ("s05.nii.gz", 60),
          "sub-04": ("s06.nii.gz", 240), "sub-05": ("s12.nii.gz", 204),
          "sub-06": ("s01_V1.nii.gz", 300)}  # fmt: skip


def _bids(root: Path, subjects: dict, age_column: str, readable: bool = True) -> Path:
    """A BIDS folder of `subjects` (id -> (dummy scan, age)); unreadable: text files as scans."""
    rows = [f"participant_id\t{age_column}\tsex"]
    for subject, (scan, age) in subjects.items():
        target = root / subject / "anat" / f"{subject}_T1w{''.join(Path(scan).suffixes)}"
        target.parent.mkdir(parents=True)
        if readable:
            shutil.copy(SCANS / scan, target)
        else:
            target.write_text("not a scan\n")
        rows.append(f"{subject}\t{age}\tF")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


def _config(progress_seconds: float = 0.0) -> CohortConfig:
    return CohortConfig(name="tiny_own", grid="tiny", registration="none", progress_seconds=progress_seconds)


def _build(manual_dir: Path, data_dir: Path, config: CohortConfig):
    builder = Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _progress_lines(log_info: mock.Mock) -> list[str]:
    return [call.args[1] for call in log_info.call_args_list if "scans done" in str(call.args[-1])]


def test_months_in_an_age_column_stop_the_build_before_any_scan_is_read(tmp_path, monkeypatch):
    root = _bids(tmp_path / "bids", COHORT, "age")
    opened = mock.Mock(side_effect=nibabel.load)
    monkeypatch.setattr(nibabel, "load", opened)
    with pytest.raises(CohortError) as raised:
        _build(root, tmp_path / "data", _config())
    assert str(raised.value).startswith(
        f"nihpd: {root}/participants.tsv: column age: 6 of 6 ages read as years are above the nihpd cohort's "
        "0-22 years (96, 42, 60, 240, 204, ...), but 83% of them fit it read as months; state the unit: "
        "name the column age_months"
    )
    assert "\n" not in str(raised.value) and not opened.called


def test_the_same_cohort_in_age_months_builds_in_years_skips_the_25_year_old_and_shows_progress(tmp_path):
    root = _bids(tmp_path / "bids", COHORT, "age_months")
    with mock.patch.object(cohort_builder.logging, "info") as log_info:
        builder = _build(root, tmp_path / "data", _config(progress_seconds=0.2))
    ages = {
        example["subject_id"].decode(): float(example["age"])
        for split in ("train", "test")
        for example in tfds.as_numpy(builder.as_dataset(split=split))
    }
    assert ages == {subject: pytest.approx(months / 12, abs=1e-5) for subject, (_, months) in COHORT.items()
                    if subject != "sub-06"}  # fmt: skip
    assert mock.call("%s", "6 rows in, 5 examples written, 1 skipped") in log_info.call_args_list
    assert IngestSummary.read(builder.data_path / INGEST_SUMMARY_NAME).skipped_by_reason == {
        "outside_age_range": 1
    }
    [skip] = read_skip_report(str(builder.data_path / SKIP_REPORT_NAME))
    assert (skip["subject"], skip["reason"]) == (
        "sub-06",
        "outside_age_range: age 25.000 years (age_months=300) outside the nihpd cohort's 0-22 years",
    )
    # Lines while the scans are preprocessed, counted from the marks the workers leave, and a last one.
    lines = _progress_lines(log_info)
    assert len(lines) >= 2 and lines[-1].startswith("nihpd: 6 of 6 scans done (1 skipped), ")
    assert lines[-1].endswith(" s elapsed, finished")
    assert not (builder.data_path / "ingest_progress").exists()


SUBJECT_TRAIN = (
    "split train would get 1 (needs 2: training holds validation subjects out of it by subject, so"
)


@pytest.mark.parametrize(
    "subjects, expected",
    [
        ({"sub-01": ("s01_V1.nii.gz", 8)}, f"range: 1 (train 1, test 0); {SUBJECT_TRAIN}"),
        (
            {"sub-01": ("s01_V1.nii.gz", 8), "sub-02": ("s04.nii", 3.5)},
            "range: 2 (train 2, test 0); split test would get 0 (needs 1: an evaluation needs a subject)",
        ),
        (
            {f"sub-0{i}": ("s01_V1.nii.gz", i) for i in range(1, 7)},
            "split train: none of its 5 scans opens (first: {root}/sub-01/anat/sub-01_T1w.nii.gz: cannot",
        ),
    ],
    ids=["1 subject", "2 subjects", "every scan unreadable"],
)
def test_impossible_cohorts_stop_in_one_line_before_any_scan_is_preprocessed(
    tmp_path, monkeypatch, subjects, expected
):
    """Every scan file holds text, so a build that reads one fails otherwise."""
    root = _bids(tmp_path / "bids", subjects, "age", readable=False)
    opened = mock.Mock(side_effect=nibabel.load)
    monkeypatch.setattr(nibabel, "load", opened)
    preprocessed = mock.Mock(side_effect=preprocessing.preprocess_scan)
    monkeypatch.setattr(preprocessing, "preprocess_scan", preprocessed)
    with pytest.raises(CohortError) as raised:
        _build(root, tmp_path / "data", _config())
    assert str(raised.value).startswith(f"nihpd: {root}: ") and "\n" not in str(raised.value)
    assert expected.format(root=root) in str(raised.value)
    assert not preprocessed.called
    assert opened.call_count == (0 if len(subjects) < 3 else 5)  # headers of train's scans only, to find one


def test_tfds_build_prints_the_error_in_one_line_without_a_traceback(tmp_path):
    root = _bids(
        tmp_path / "bids", {"sub-01": ("s01_V1.nii.gz", 8), "sub-02": ("s04.nii", 3.5)}, "age", False
    )
    tfds_command = str(Path(sys.executable).parent / "tfds")
    arguments = ["build", str(Path(__file__).parent / "nihpd"), "--manual_dir", str(root)]
    repository = str(Path(__file__).resolve().parents[1])  # this checkout's package, not an installed one
    result = subprocess.run(
        [tfds_command, *arguments, "--data_dir", str(tmp_path / "data"), "--config", "tiny"],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [repository, os.environ.get("PYTHONPATH")])),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("tfds: error:")]
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    expected = (
        f"tfds: error: nihpd: {root}: subjects with a scan and an age in the cohort's range: 2 "
        "(train 2, test 0); split test would get 0 (needs 1: an evaluation needs a subject)"
    )
    assert errors == [expected]
