"""`python -m brainage_tf.calibrate`: a new export version, the same weights, the controls' calibration."""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_one_line_usage_errors

from brainage_tf import calibrate, predict
from brainage_tf.errors import UsageError
from brainage_tf.serving.export import write_version
from brainage_tf.serving.exported_model import ExportedModel
from brainage_tf.serving.metadata import METADATA_ASSET, export_fingerprint

# The keys recalibration replaces; every other key of the parent's metadata is carried over.
REFITTED = ("bias_correction", "conformal", "reference", "normative")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def metadata_of(export_dir: Path) -> dict:
    return json.loads((export_dir / "assets" / METADATA_ASSET).read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A manifest CSV of (subject_id, age, path) rows."""
    path.write_text("subject_id,age,path\n" + "".join(f"{s},{a},{p}\n" for s, a, p in rows))
    return path


@pytest.fixture(scope="module")
def recalibrated(served_model, tmp_path_factory) -> dict:
    """The shared export copied as version 1 of a model folder, recalibrated on its cohort's BIDS folder.

    The controls' folder holds the 12 children of the cohort, each a year older than the cohort
    says (so the controls' age range is not the training scans'), and one unreadable scan with an age.
    `rows` are the ok rows of `predict` with the new version on the controls.
    """
    root = tmp_path_factory.mktemp("calibrate")
    base = root / "export"
    shutil.copytree(served_model["model"], base / "1")
    controls = shutil.copytree(served_model["bids"], root / "controls")
    corrupt = controls / "sub-bad" / "anat" / "sub-bad_T1w.nii.gz"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a NIfTI file" * 10)
    table = controls / "participants.tsv"
    header, *lines = table.read_text().splitlines()
    assert header.split("\t")[:2] == ["participant_id", "age"]
    older = [
        f"{subject}\t{float(age) + 1:.4f}\t{rest}" for subject, age, rest in (x.split("\t", 2) for x in lines)
    ]
    table.write_text("\n".join([header, *older, "sub-bad\t7.5\tF\tdisc-a"]) + "\n")
    argv = ["--model", str(base / "1"), "--bids", str(controls), "--out", str(base), "--workers", "0"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = calibrate.main(argv)
    assert code == 1, stderr.getvalue()  # one control failed: the version is written, the failure named
    out = root / "predictions.csv"
    assert predict.main(["--model", str(base / "2"), "--bids", str(controls), "--out", str(out),
                         "--workers", "0"]) == 1  # fmt: skip
    return dict(served_model, root=root, base=base, parent=base / "1", new=base / "2",
                controls=controls, corrupt=corrupt, stdout=stdout.getvalue(), stderr=stderr.getvalue(),
                rows=[row for row in read_csv(out) if row["status"] == "ok"])  # fmt: skip


def saved_variables(export_dir: Path) -> dict[str, np.ndarray]:
    """The model's variables as the SavedModel's checkpoint holds them, read without brainage_tf."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "model_variables" in name
    }


def test_a_new_version_holds_the_parent_weights_bit_for_bit(recalibrated):
    assert sorted(path.name for path in recalibrated["base"].iterdir()) == ["1", "2"]  # no staging left
    parent, new = saved_variables(recalibrated["parent"]), saved_variables(recalibrated["new"])
    assert len(parent) > 50 and parent.keys() == new.keys()
    for name, value in parent.items():
        assert value.dtype == new[name].dtype and value.tobytes() == new[name].tobytes(), name
    # Each weight sits where the model reads it: the same volumes give the same ages.
    volumes = np.stack([v.astype(np.float32) for v in recalibrated["stored"]["train"].values()])
    before = ExportedModel(recalibrated["parent"]).predict(volumes)["predicted_age"]
    after = ExportedModel(recalibrated["new"]).predict(volumes)["predicted_age"]
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    assert np.ptp(before) > 0.05  # the model tells the children apart: a scrambled model would not match


def test_predict_on_the_new_version_serves_the_bias_line_and_interval_of_the_controls(recalibrated):
    rows = recalibrated["rows"]
    ages = np.array([float(row["age"]) for row in rows])
    predicted = np.array([float(row["predicted_age"]) for row in rows])
    assert len(rows) == 12 and len({row["subject_id"] for row in rows}) == 12  # one scan per subject
    slope, intercept = np.polyfit(ages, predicted, 1)
    served = np.array([float(row["corrected_predicted_age"]) for row in rows])
    np.testing.assert_allclose(served, (predicted - intercept) / slope, rtol=1e-4, atol=1e-3)
    # Split conformal at 0.9 on 12 subjects: the ceil(13 * 0.9) = 12th smallest |age - predicted|.
    half_width = np.sort(np.abs(ages - predicted))[math.ceil(13 * 0.9) - 1]
    for row in rows:
        low, high, age = float(row["interval_low"]), float(row["interval_high"]), float(row["predicted_age"])
        assert abs((high - age) - half_width) < 1e-4 and abs((age - low) - half_width) < 1e-4
    # The parent's correction, fitted on its validation subjects, gives other ages.
    old = metadata_of(recalibrated["parent"])["bias_correction"]
    assert np.max(np.abs(served - (predicted - old["intercept"]) / old["slope"])) > 0.1


def test_the_metadata_records_the_controls_and_carries_the_rest_over(recalibrated):
    parent, new = metadata_of(recalibrated["parent"]), metadata_of(recalibrated["new"])
    assert set(new) == {*parent, "calibrated_on"}
    assert {key: new[key] for key in parent if key not in REFITTED} == {
        key: value for key, value in parent.items() if key not in REFITTED
    }
    for key in REFITTED:
        if key != "reference":
            assert new[key] != parent[key], key
    # The intensity ranges are the controls' own (all 12 children), the ages the training scans'.
    volumes = [
        v.astype(np.float64) for split in ("train", "test") for v in recalibrated["stored"][split].values()
    ]
    means, sds = [v.mean() for v in volumes], [v.std() for v in volumes]
    assert len(volumes) == 12
    np.testing.assert_allclose(new["reference"]["intensity_mean"], [min(means), max(means)], atol=1e-3)
    np.testing.assert_allclose(new["reference"]["intensity_std"], [min(sds), max(sds)], atol=1e-3)
    assert new["reference"]["age"] == parent["reference"]["age"]
    ages = [float(row["age"]) for row in recalibrated["rows"]]
    record = new["calibrated_on"]
    assert (record["scans"], record["subjects"], record["age_range"]) == (12, 12, [min(ages), max(ages)])
    # The gap's centiles are refitted with the bias line they belong to, one scan per control subject.
    assert new["normative"]["n_fit"] == 12 and new["normative"]["age_range"] == [min(ages), max(ages)]
    assert record["input"] == {"bids": str(recalibrated["controls"].resolve())}
    assert record["parent"] == {"path": str(recalibrated["parent"].resolve()),
                                "fingerprint": export_fingerprint(recalibrated["parent"])}  # fmt: skip
    when = datetime.datetime.fromisoformat(record["at"])
    assert abs(datetime.datetime.now(datetime.UTC) - when) < datetime.timedelta(hours=1)
    assert new["conformal"]["n_calibration"] == 12 and new["conformal"]["edges"] is None
    # Out-of-distribution ranges: the controls' volumes; the ages stay those the model trained on.
    volumes = [v.astype(np.float32) for v in recalibrated["stored"]["train"].values()]
    volumes += [v.astype(np.float32) for v in recalibrated["stored"]["test"].values()]
    means = [float(v.mean(dtype=np.float64)) for v in volumes]
    np.testing.assert_allclose(new["reference"]["intensity_mean"], [min(means), max(means)], rtol=1e-6)
    ncc = [float(row["registration_ncc"]) for row in recalibrated["rows"]]
    assert new["reference"]["registration_ncc_min"] == pytest.approx(min(ncc), abs=1e-6)
    assert new["reference"]["age"] == parent["reference"]["age"]
    assert abs(parent["reference"]["age"][0] - min(ages)) > 0.5  # so the line above tells them apart
    # What the loaded SavedModel says of itself is the new record too.
    import tensorflow as tf

    loaded = tf.saved_model.load(str(recalibrated["new"]))
    assert json.loads(loaded.metadata()["metadata_json"].numpy()) == new


def test_a_bad_control_is_named_and_left_out(recalibrated):
    corrupt = recalibrated["corrupt"]
    (line,) = recalibrated["stderr"].strip().splitlines()
    assert line.startswith(f"left out: {corrupt}: cannot read")
    assert recalibrated["stdout"].strip().endswith(f"12 used, 1 failed: {recalibrated['new']}")
    record = metadata_of(recalibrated["new"])["calibrated_on"]
    assert (record["scans"], record["subjects"]) == (12, 12)  # the unreadable 13th is not counted
    (failed,) = record["failed"]
    assert failed["path"] == str(corrupt) and failed["reason"].startswith(f"{corrupt}: cannot read")


def test_usage_errors_are_one_line_and_nothing_is_written(recalibrated, tmp_path, capsys):
    by_age = sorted(recalibrated["ages"], key=recalibrated["ages"].get)
    controls = [(f"c{i}", str(recalibrated["ages"][path]), path) for i, path in enumerate(by_age)]
    corrupt = tmp_path / "corrupt_T1w.nii.gz"
    corrupt.write_bytes(b"not a NIfTI file" * 10)
    lists = {
        "eight": manifest(tmp_path / "eight.csv", controls[:8]),
        "ageless": manifest(tmp_path / "ageless.csv", [*controls[:9], ("c99", "", by_age[-1])]),
    }
    parent, base = recalibrated["parent"], recalibrated["base"]
    before = snapshot(base)
    model, bids = ["--model", str(parent)], str(recalibrated["bids"])
    needs = "recalibration needs at least 9: 3 for the bias line and 9 for a finite 90% conformal interval"
    cases = {
        f"8 listed control subjects (8 scans), but {needs}": [
            *model, "--manifest", str(lists["eight"]), "--out", str(base)],
        f"{by_age[-1]}: no age for this control in {lists['ageless']}": [
            *model, "--manifest", str(lists["ageless"]), "--out", str(base)],
        "is an export version (or inside one)": [*model, "--bids", bids, "--out", str(parent)],
        "not allowed with argument": [*model, "--bids", "b", "--manifest", "m", "--out", str(base)],
        "--conformal-level must be in (0, 1)": [
            *model, "--bids", bids, "--out", str(base), "--conformal-level", "1"],
    }  # fmt: skip
    assert_one_line_usage_errors(calibrate.main, cases, ["--workers", "0"], capsys)
    # Nine listed, one unreadable: 8 usable. The unreadable one is named first, then the error line.
    nine = manifest(tmp_path / "nine.csv", [*controls[:8], ("bad", "7.5", str(corrupt))])
    assert calibrate.main([*model, "--manifest", str(nine), "--out", str(base), "--workers", "0"]) == 2
    left_out, error = capsys.readouterr().err.strip().splitlines()
    assert left_out.startswith(f"left out: {corrupt}: cannot read")
    assert error.startswith(
        f"python -m brainage_tf.calibrate: error: 8 usable control subjects (8 scans), but {needs}"
    )
    assert error.endswith("(1 failed)")
    assert snapshot(base) == before  # no version written, none changed
    with pytest.raises(UsageError, match="exists; exports are never overwritten"):
        write_version(None, {}, {}, parent)  # a version that appeared meanwhile is refused too
