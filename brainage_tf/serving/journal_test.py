"""ResultJournal: rows on disk as they finish, a resume that keeps ok rows only, refusals in one line."""

from __future__ import annotations

import csv
import json

import pytest

from brainage_tf.errors import UsageError
from brainage_tf.serving.journal import ResultJournal, cell

COLUMNS = ("path", "predicted_age", "status", "reason")
PROVENANCE = {"tool": "t", "export": "/runs/a/export/1", "export_fingerprint": "sha256:aa", "settings": {}}


def row(path: str, age: float | None, status: str = "ok", reason: str = "") -> dict:
    return {"path": path, "predicted_age": age, "status": status, "reason": reason}


def read(path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_rows_reach_the_partial_file_before_the_run_ends(tmp_path):
    out = tmp_path / "ages.csv"
    journal = ResultJournal(out, COLUMNS, PROVENANCE, resume=False)
    journal.append("k1", row("a.nii", 3.25))
    # Read by another handle while the journal is still open: the row is on disk already.
    lines = (tmp_path / "ages.csv.partial").read_text().splitlines()
    assert json.loads(lines[0])["provenance"]["export_fingerprint"] == "sha256:aa"
    assert json.loads(lines[1]) == {"key": "k1", "cells": ["a.nii", "3.250000", "ok", ""]}
    assert not out.exists()
    journal.close()


def test_finish_writes_the_csv_in_input_order_and_the_sidecar(tmp_path):
    out = tmp_path / "ages.csv"
    journal = ResultJournal(out, COLUMNS, PROVENANCE, resume=False)
    journal.append("k2", row("b.nii", None, "failed", "b.nii: file not found"))
    journal.append("k1", row("a, with comma.nii", 1.0))
    assert journal.finish(["k1", "k2"]) == {"rows": 2, "ok": 1, "failed": 1}
    assert read(out) == [
        list(COLUMNS),
        ["a, with comma.nii", "1.000000", "ok", ""],
        ["b.nii", "", "failed", "b.nii: file not found"],
    ]
    sidecar = json.loads((tmp_path / "ages.json").read_text())
    assert sidecar["keys"] == ["k1", "k2"] and sidecar["failed"] == 1
    assert sidecar["export"] == "/runs/a/export/1"
    assert not (tmp_path / "ages.csv.partial").exists()


def test_an_existing_output_is_never_overwritten_without_resume(tmp_path):
    out = tmp_path / "ages.csv"
    ResultJournal(out, COLUMNS, PROVENANCE, resume=False).close()
    with pytest.raises(UsageError, match=r"ages.csv.partial exists: pass --resume"):
        ResultJournal(out, COLUMNS, PROVENANCE, resume=False)


def test_resume_keeps_ok_rows_drops_failed_ones_and_a_torn_last_line(tmp_path):
    out = tmp_path / "ages.csv"
    journal = ResultJournal(out, COLUMNS, PROVENANCE, resume=False)
    journal.append("k1", row("a.nii", 1.0))
    journal.append("k2", row("b.nii", None, "failed", "worker died"))
    journal.close()
    with open(tmp_path / "ages.csv.partial", "a") as handle:  # a kill in the middle of a write
        handle.write('{"key": "k3", "cells": ["c.nii", "2.0')
    resumed = ResultJournal(out, COLUMNS, PROVENANCE, resume=True)
    assert list(resumed.finished) == ["k1"]
    resumed.append("k2", row("b.nii", 2.5))
    resumed.append("k3", row("c.nii", 3.5))
    assert resumed.finish(["k1", "k2", "k3"]) == {"rows": 3, "ok": 3, "failed": 0}
    assert [line[1] for line in read(out)[1:]] == ["1.000000", "2.500000", "3.500000"]


def test_resume_of_a_complete_output_redoes_its_failed_rows_only(tmp_path):
    out = tmp_path / "ages.csv"
    journal = ResultJournal(out, COLUMNS, PROVENANCE, resume=False)
    journal.append("k1", row("a.nii", 1.0))
    journal.append("k2", row("b.nii", None, "failed", "unreadable"))
    journal.finish(["k1", "k2"])
    resumed = ResultJournal(out, COLUMNS, PROVENANCE, resume=True)
    assert resumed.finished == {"k1": ["a.nii", "1.000000", "ok", ""]}
    resumed.close()
    (tmp_path / "ages.json").unlink()
    (tmp_path / "ages.csv.partial").unlink()
    with pytest.raises(UsageError, match=r"ages.csv has no readable ages.json beside it"):
        ResultJournal(out, COLUMNS, PROVENANCE, resume=True)


@pytest.mark.parametrize(
    "change, named",
    [
        ({"export": "/runs/b/export/1", "export_fingerprint": "sha256:bb"}, "another export fingerprint"),
        ({"settings": {"samples": 8}}, "another settings"),
        ({"tool": "other"}, "another tool"),
    ],
)
def test_a_resume_with_another_export_or_settings_is_refused(tmp_path, change, named):
    out = tmp_path / "ages.csv"
    journal = ResultJournal(out, COLUMNS, PROVENANCE, resume=False)
    journal.append("k1", row("a.nii", 1.0))
    journal.close()
    with pytest.raises(UsageError, match=named) as error:
        ResultJournal(out, COLUMNS, {**PROVENANCE, **change}, resume=True)
    assert "\n" not in str(error.value)
    if "export" in change:
        assert "/runs/a/export/1" in str(error.value)  # names the export that wrote it


def test_cells_are_formatted_once():
    assert [cell(None), cell(1 / 3), cell(float("nan")), cell(float("-inf")), cell(True), cell(7)] == [
        "",
        "0.333333",
        "nan",
        "-inf",
        "True",
        "7",
    ]
