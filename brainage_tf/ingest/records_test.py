"""Tests of ScanRecord and the helpers every reader builds records with."""

from pathlib import Path

import pytest

from brainage_tf.ingest.ages import ParsedAge
from brainage_tf.ingest.records import ScanRecord, cell_text, record_from_row


@pytest.mark.parametrize(
    "value, text", [(" a ", "a"), ("N/A", ""), ("nan", ""), (float("nan"), ""), (None, ""), (3, "3")]
)
def test_cell_text(value, text):
    assert cell_text(value) == text


def test_record_from_row_resolves_paths_and_reads_sex_and_site(tmp_path):
    row = {"sex": "female", "site": " S1 "}
    age = ParsedAge(1.5, "age=1.5", "/t.tsv", "years")
    inside = record_from_row(
        row, age, subject_id="a", session="V1", cohort="c", root=tmp_path, path="x/../a.nii"
    )
    assert inside == ScanRecord(
        "a", "V1", str(tmp_path / "a.nii"), "a.nii", 1.5, "age=1.5", "F", "S1", "c", "/t.tsv", "years"
    )
    outside = record_from_row(
        {}, ParsedAge(None, ""), subject_id="b", session="", cohort="c", root=tmp_path, path="/else/b.mnc"
    )
    assert (outside.path, outside.source_path, outside.sex, outside.site) == (
        "/else/b.mnc",
        "/else/b.mnc",
        "n/a",
        "",
    )
    scanless = record_from_row(
        row, ParsedAge(None, ""), subject_id="c", session="", cohort="c", root=Path("/r")
    )
    assert (scanless.path, scanless.source_path, scanless.key) == ("", "", "c/c/")
