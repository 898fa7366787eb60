"""Tests of IngestSummary's JSON round trip and its errors on bad files."""

import json
import re

import pytest

from brainage_tf.errors import IngestSummaryError
from brainage_tf.ingest.summary import INGEST_SUMMARY_NAME, IngestSummary

SUMMARY = IngestSummary(18, 7, 11, {"duplicate": 2, "missing_age": 9}, "skip_report.tsv")


def test_round_trip_through_the_file_keeps_every_field(tmp_path):
    path = tmp_path / INGEST_SUMMARY_NAME
    SUMMARY.write(path)
    assert json.loads(path.read_text()) == {
        "rows_in": 18,
        "examples_written": 7,
        "skipped": 11,
        "skipped_by_reason": {"duplicate": 2, "missing_age": 9},
        "skip_report": "skip_report.tsv",
    }
    restored = IngestSummary.read(str(path))
    assert restored == SUMMARY
    assert restored.line() == "18 rows in, 7 examples written, 11 skipped"
    assert IngestSummary.from_json(SUMMARY.to_json()) == SUMMARY


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no ingest summary there"),
        ("{not json", "unreadable ingest summary"),
        ("[1, 2]", "is a JSON list, not an object"),
        ('{"rows_in": 1, "skipped": 0}', "lacks keys examples_written, skipped_by_reason, skip_report"),
        (json.dumps({**SUMMARY.to_json(), "skipped": "11"}), "not a non-negative integer"),
    ],
    ids=["missing", "corrupt", "not-an-object", "missing-keys", "bad-count"],
)
def test_bad_file_raises_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / INGEST_SUMMARY_NAME
    if content is not None:
        path.write_text(content)
    with pytest.raises(IngestSummaryError, match=re.escape(message)) as raised:
        IngestSummary.read(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "counts, listed, message",
    [
        ((971, 952, 0), 971, "971 rows listed, 971 counted in, 952 written, 0 skipped: 19 rows are neither"),
        ((10, 8, 1), 10, ": 1 rows are neither written nor skipped"),
        ((9, 8, 1), 10, "10 rows listed, 9 counted in"),  # a runner that lost a counter
    ],
)
def test_counts_that_miss_a_row_are_a_problem(counts, listed, message):
    rows_in, written, skipped = counts
    summary = IngestSummary(rows_in, written, skipped, {"missing_age": skipped} if skipped else {})
    assert message in summary.accounting_problem(listed)


def test_counts_that_account_for_every_row_are_no_problem():
    assert IngestSummary(10, 8, 2, {"missing_age": 2}).accounting_problem(10) is None
    assert IngestSummary(0, 0, 0, {}).accounting_problem(0) is None


def test_stored_examples_must_add_up_to_those_written():
    summary = IngestSummary(971, 971, 0, {})
    assert summary.storage_problem({"train": 699, "test": 172, "replication": 100}) is None
    problem = summary.storage_problem({"train": 641, "test": 172, "replication": 100})
    assert problem == (
        "971 examples written but 913 stored (train 641, test 172, replication 100): "
        "58 lost between the ingest and the files"
    )
