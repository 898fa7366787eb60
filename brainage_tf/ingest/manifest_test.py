"""Tests of the manifest reader."""

import pytest

from brainage_tf.errors import CohortLayoutError
from brainage_tf.ingest.ages import age_problem
from brainage_tf.ingest.manifest import read_manifest


def test_manifest_resolves_paths_and_states_units(tmp_path, write_file):
    write_file(tmp_path / "scans" / "a.nii.gz")
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
