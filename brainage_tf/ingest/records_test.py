"""Tests of the cohort readers: manifest, BIDS, release layout, detection, ages."""

import json
from pathlib import Path

import pytest

from brainage_tf.ingest.records import (
    CohortLayoutError,
    ScanRecord,
    age_problem,
    detect_layout,
    read_bids,
    read_cohort,
    read_manifest,
    read_release,
)


def _write(path: Path, text: str = "scan") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _record(age_years, age_text="age=x"):
    return ScanRecord("s", "", "/p", "p", age_years, age_text)


def test_manifest_resolves_paths_and_states_units(tmp_path):
    _write(tmp_path / "scans" / "a.nii.gz")
    (tmp_path / "manifest.csv").write_text(
        "subject_id,age_months,path,session,sex,site\n"
        "a,18,scans/a.nii.gz,V1,female,S1\n"
        f"b,,{tmp_path / 'elsewhere' / 'b.mnc'},,m,\n"
    )
    first, second = read_manifest(tmp_path / "manifest.csv", cohort="c")
    assert first.path == str(tmp_path / "scans" / "a.nii.gz")
    assert first.source_path == "scans/a.nii.gz"
    assert first.age_years == pytest.approx(1.5)
    assert (first.session, first.sex, first.site, first.cohort) == ("V1", "F", "S1", "c")
    assert first.key == "c/a/V1"
    assert second.age_years is None and second.age_text == ""
    assert second.sex == "M" and second.session == ""
    assert second.path.endswith("elsewhere/b.mnc")


def test_manifest_age_unit_column_per_row(tmp_path):
    (tmp_path / "manifest.tsv").write_text(
        "subject_id\tage\tage_unit\tpath\n"
        "a\t730.5\tdays\tx.nii\n"
        "b\t3\tyears\ty.nii\n"
        "c\t3\tfortnights\tz.nii\n"
    )
    a, b, c = read_manifest(tmp_path / "manifest.tsv")
    assert a.age_years == pytest.approx(2.0)
    assert b.age_years == pytest.approx(3.0)
    assert c.age_years is None
    assert age_problem(c)[0] == "unparseable_age"


@pytest.mark.parametrize(
    "header, message",
    [
        ("subject_id,path\n", "missing columns age"),
        ("subject_id,age,age_days,path\n", "several age columns"),
        ("subject_id,age_months,age_unit,path\n", "both an `age_unit` column"),
        ("age,path\n", "missing columns subject_id"),
    ],
)
def test_manifest_rejects_ambiguous_or_incomplete_tables(tmp_path, header, message):
    (tmp_path / "manifest.csv").write_text(header)
    with pytest.raises(CohortLayoutError, match=message):
        read_manifest(tmp_path / "manifest.csv")


@pytest.mark.parametrize(
    "age_years, age_text, kind",
    [
        (None, "", "missing_age"),
        (None, "age=ten", "unparseable_age"),
        (float("nan"), "age=nan", "unparseable_age"),
        (-0.5, "age=-0.5", "negative_age"),
        (-3.0, "age=-3", "implausible_age"),
        (100.5, "age=100.5", "implausible_age"),
    ],
)
def test_age_problem_reasons(age_years, age_text, kind):
    assert age_problem(_record(age_years, age_text))[0] == kind


@pytest.mark.parametrize("age_years", [0.0, 0.01, 22.0, 100.0])
def test_age_problem_accepts_plausible_ages(age_years):
    assert age_problem(_record(age_years)) is None


def _bids(tmp_path: Path) -> Path:
    root = tmp_path / "bids"
    _write(root / "dataset_description.json", json.dumps({"Name": "x", "BIDSVersion": "1.8.0"}))
    _write(root / "participants.tsv", "participant_id\tage\tsex\tsite\nsub-01\t10\tM\tA\nsub-02\t4\tF\tB\nsub-03\t7\tF\tA\n")
    _write(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    _write(root / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_T1w.nii.gz")
    _write(root / "sub-02" / "ses-2" / "anat" / "sub-02_ses-2_T1w.nii.gz")
    _write(root / "sub-02" / "ses-2" / "anat" / "sub-02_ses-2_T2w.nii.gz")
    _write(root / "sub-02" / "sub-02_sessions.tsv", "session_id\tage\nses-1\t4\nses-2\t6.5\n")
    return root


def test_bids_reads_session_ages_and_scanless_participants(tmp_path):
    records = read_bids(_bids(tmp_path), cohort="b")
    by_key = {(record.subject_id, record.session): record for record in records}
    assert set(by_key) == {("sub-01", ""), ("sub-02", "ses-1"), ("sub-02", "ses-2"), ("sub-03", "")}
    assert by_key[("sub-01", "")].age_years == 10.0
    assert by_key[("sub-02", "ses-2")].age_years == 6.5
    assert by_key[("sub-02", "ses-2")].source_path == "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz"
    assert by_key[("sub-03", "")].path == ""
    assert by_key[("sub-03", "")].age_years == 7.0


def test_bids_sidecar_units_are_honoured(tmp_path):
    root = _bids(tmp_path)
    _write(root / "participants.json", json.dumps({"age": {"Description": "age", "Units": "months"}}))
    records = {record.subject_id: record for record in read_bids(root) if not record.session}
    assert records["sub-01"].age_years == pytest.approx(10 / 12)


def test_release_matches_scans_to_visits(tmp_path):
    _write(tmp_path / "demographics.csv", "subject_id,visit,age_days,sex\n1001,V1,365.25,F\n1001,v2,730.5,F\n1002,V1,100,M\n")
    _write(tmp_path / "a" / "nihpd_1001_V1_t1w.mnc")
    _write(tmp_path / "b" / "nihpd_1001_V2_t1w.nii.gz")
    _write(tmp_path / "b" / "nihpd_1003_V1_t1w.nii.gz")
    _write(tmp_path / "b" / "notes_1001_V1.txt")
    records = read_release(tmp_path / "demographics.csv", cohort="n")
    summary = [(r.subject_id, r.session, r.source_path, r.age_years) for r in records]
    assert summary == [
        ("1001", "V1", "a/nihpd_1001_V1_t1w.mnc", pytest.approx(1.0)),
        ("1001", "V2", "b/nihpd_1001_V2_t1w.nii.gz", pytest.approx(2.0)),
        ("1002", "V1", "", pytest.approx(100 / 365.25)),
        ("1003", "V1", "b/nihpd_1003_V1_t1w.nii.gz", None),
    ]


def test_detect_layout_finds_exactly_one(tmp_path):
    with pytest.raises(CohortLayoutError, match="no cohort layout found"):
        detect_layout(tmp_path)
    _write(tmp_path / "manifest.csv", "subject_id,age,path\n")
    assert detect_layout(tmp_path)[0] == "manifest"
    _write(tmp_path / "participants.tsv", "participant_id\tage\n")
    with pytest.raises(CohortLayoutError, match="several cohort layouts"):
        detect_layout(tmp_path)


def test_read_cohort_dispatches_on_layout(tmp_path):
    root = _bids(tmp_path)
    assert detect_layout(root)[0] == "bids"
    assert len(read_cohort(root)) == 4
    with pytest.raises(CohortLayoutError, match="does not exist"):
        read_cohort(tmp_path / "absent")
