"""`predict --runner`: the Beam path writes the local CSV, failed and out-of-distribution rows too."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from cli_checks import export_copy_with_metadata

from brainage_tf import predict
from brainage_tf.evaluation.ood import AGE_MARGIN_YEARS
from brainage_tf.serving import beam_predict
from brainage_tf.serving.exported_model import ExportedModel

# Columns whose cells are numbers: equal within this many years (or units); every other cell exactly.
TOLERANCE = 1e-5
NUMERIC = ("age", "predicted_age", "brain_age_gap", "corrected_predicted_age", "interval_low",
           "interval_high", "registration_ncc")  # fmt: skip


@pytest.fixture(scope="module")
def cohort(served_model, tmp_path_factory) -> dict:
    """A manifest of 3 training scans and a corrupt file, and an export that flags the oldest-looking scan.

    The export is the shared one with a training age range ending between the two highest
    predicted ages of the 3 scans (predicted here from their stored volumes, which predict feeds).
    """
    root = tmp_path_factory.mktemp("beam_predict")
    train = served_model["stored"]["train"]
    by_age = sorted(train, key=served_model["ages"].get)
    goods = [by_age[0], by_age[len(by_age) // 2], by_age[-1]]
    model = ExportedModel(served_model["model"])
    ages = sorted(float(model.predict(train[p][np.newaxis])["predicted_age"][0]) for p in goods)
    reference = {**model.metadata["reference"], "age": [0.0, (ages[-2] + ages[-1]) / 2 - AGE_MARGIN_YEARS]}
    export = export_copy_with_metadata(served_model["model"], root / "export", reference=reference)
    corrupt = root / "corrupt.nii.gz"
    corrupt.write_bytes(b"this is not a NIfTI file" * 10)
    manifest = root / "scans.csv"
    paths = [*goods, str(corrupt)]
    manifest.write_text("subject_id,age_months,path\n" + "".join(
        f"s{index},{24 * (index + 1)},{path}\n" for index, path in enumerate(paths)))  # fmt: skip
    argv = ["--model", str(export), "--manifest", str(manifest)]
    local = root / "local.csv"
    assert predict.main([*argv, "--out", str(local), "--workers", "0"]) == 1  # the corrupt scan failed
    rows = read_csv(local)
    assert [row["status"] for row in rows] == ["ok", "ok", "ok", "failed"]
    assert [row["ood"] for row in rows[:3]].count("True") == 1, rows  # one scan out of distribution
    return dict(argv=argv, local=rows)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_rows(expected: list[dict], actual: list[dict]) -> None:
    assert [list(row) for row in actual] == [list(row) for row in expected]  # same columns, same order
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual, strict=True):
        for column, value in want.items():
            if column in NUMERIC and value not in ("", "nan", "inf", "-inf"):  # infinite widths exactly
                assert abs(float(got[column]) - float(value)) <= TOLERANCE, (column, want, got)
            else:
                assert got[column] == value, (column, want, got)


@pytest.mark.parametrize(
    "options", ["", "direct_running_mode=multi_processing,direct_num_workers=2"], ids=["one", "two_processes"]
)
def test_the_beam_path_writes_the_local_csv(cohort, tmp_path, options):
    out = tmp_path / "beam.csv"
    beam = ["--runner", "DirectRunner", "--beam_pipeline_options", options]
    argv = [*cohort["argv"], "--out", str(out), *beam]
    assert predict.main(argv) == 1
    assert_same_rows(cohort["local"], read_csv(out))
    assert not Path(beam_predict.rows_folder(out)).exists()  # the workers' row files are gone


def test_a_scan_without_a_row_fails_visibly_and_a_resume_predicts_it(cohort, tmp_path, monkeypatch):
    out = tmp_path / "beam.csv"
    rows_dir = tmp_path / "rows"  # the workers' rows go elsewhere, as to a bucket on Dataflow
    argv = [*cohort["argv"], "--out", str(out), "--runner", "DirectRunner", "--rows_dir", str(rows_dir)]
    lost = cohort["local"][1]["path"]
    process = beam_predict.WriteRows.process

    def losing(self, element):  # the row of one scan never reaches the folder, as a lost bundle's would
        if element[1]["path"] != lost:
            yield from process(self, element) or ()

    monkeypatch.setattr(beam_predict.WriteRows, "process", losing)
    assert predict.main(argv) == 1
    rows = read_csv(out)
    assert [row["path"] for row in rows] == [row["path"] for row in cohort["local"]]
    assert rows[1]["status"] == "failed" and beam_predict.NO_ROW_REASON in rows[1]["reason"]
    monkeypatch.setattr(beam_predict.WriteRows, "process", process)
    assert predict.main([*argv, "--resume"]) == 1  # only the corrupt scan fails now
    assert_same_rows(cohort["local"], read_csv(out))
    assert rows_dir.is_dir() and not any(rows_dir.iterdir())


def test_the_memory_guard_refuses_large_scans_on_the_workers(cohort, tmp_path):
    out = tmp_path / "beam.csv"
    argv = [*cohort["argv"], "--out", str(out), "--runner", "DirectRunner", "--max-voxels", "1000"]
    assert predict.main(argv) == 1
    rows = read_csv(out)
    assert all(row["status"] == "failed" for row in rows)
    assert all("more than the limit of 1,000" in row["reason"] for row in rows[:3]), rows


def test_a_failed_job_keeps_finished_rows_and_a_resume_completes_it(cohort, tmp_path, monkeypatch, capsys):
    out = tmp_path / "beam.csv"
    argv = [*cohort["argv"], "--out", str(out), "--runner", "DirectRunner"]
    doomed = cohort["local"][2]["path"]
    run_inference = beam_predict.ExportModelHandler.run_inference

    def crashing(self, batch, model, inference_args=None):  # a worker error Beam does not retry here
        if any(item.path == doomed for _, _, item, _ in batch):
            raise RuntimeError("worker lost")
        return run_inference(self, batch, model, inference_args)

    monkeypatch.setattr(beam_predict.ExportModelHandler, "run_inference", crashing)
    assert predict.main(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "the Beam job failed (" in line]
    assert len(errors) == 1 and "worker lost" in errors[0] and "rerun with --resume" in errors[0], errors
    assert not out.exists()  # an OUT that exists is complete
    partial = out.with_name(out.name + ".partial").read_text()
    assert doomed not in partial
    monkeypatch.setattr(beam_predict.ExportModelHandler, "run_inference", run_inference)
    assert predict.main([*argv, "--resume"]) == 1
    assert_same_rows(cohort["local"], read_csv(out))


def test_a_runner_beam_cannot_run_is_a_usage_error_before_any_file(cohort, tmp_path, capsys):
    out = tmp_path / "beam.csv"
    for beam in (["--beam_pipeline_options", "direct_num_workers=2"], ["--runner", "NoSuchRunner"]):
        assert predict.main([*cohort["argv"], "--out", str(out), *beam]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
        assert len(errors) == 1 and ("names no runner" in errors[0] or "--runner NoSuchRunner: " in errors[0])
        assert list(tmp_path.iterdir()) == []  # a corrected command needs no --resume
