"""`python -m brainage_tf.predict`: the served tensor is the stored one, and a bad scan fails alone."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cli_checks import (
    assert_one_line_usage_errors,
    build_synthetic_dataset,
    copy_run,
    export_copy_with_metadata,
)
from toy_data import TINY_RUN_FLAGS, toy_record

from brainage_tf import evaluate, predict, skull_strip, train
from brainage_tf.preprocessing import GRIDS, PreprocessConfig, preprocess_scan
from brainage_tf.preprocessing_record import PREPROCESSING_VERSION, preprocessing_record
from brainage_tf.serving import batch, predictions, workers
from brainage_tf.serving.exported_model import OPTIONAL_OUTPUTS, ExportedModel
from brainage_tf.serving.metadata import METADATA_ASSET
from brainage_tf.serving.scans import ScanItem

TINY = GRIDS["tiny"].shape  # (24, 30, 21)
# One epoch is enough here: the predictions only have to exist. Training ends with the export.
TINY_TRAINING = [*TINY_RUN_FLAGS, "--epochs", "1", "--export"]
# Built with affine registration and the template's skull stripping from a JSON config whose name
# does not say so.
SYNTHETIC_AFFINE = "synthetic_cohort/mysite"
# The shared model's ages of different children differ by more than this, 500 times the 1e-4 y
# the equality tests allow: an answer to the wrong tensor would not pass them.
DISTINCT_YEARS = 0.05


def build_affine_cohort(root: Path) -> dict[str, np.ndarray]:
    """3 synthetic subjects built with affine registration and skull stripping `template` from a JSON config
    (as `tfds build` takes one).

    Its name (`mysite`) says nothing about either. Returns source_path -> stored
    float16 volume of every discovery example.
    """
    import tensorflow_datasets as tfds

    # Children of 10-22 y: their registrations take 5-13 s here, a 1-year-old's 26-28 s.
    arguments = dict(name=SYNTHETIC_AFFINE.partition("/")[2], grid="tiny", registration="affine",
                     skull_strip="template", discovery_subjects=3, replication_subjects=1, voxel_scale=3.9,
                     discovery_ages=[10, 22], replication_ages=[10, 22],
                     generator_workers=1)  # fmt: skip
    builder, bids = build_synthetic_dataset(root, arguments)
    volumes = {}
    for split in ("train", "test"):  # the discovery subjects
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            volumes[str(bids / example["source_path"].decode())] = example["volume"]
    assert len(volumes) == 3 and all(v.dtype == np.float16 and v.shape == TINY for v in volumes.values())
    return volumes


@pytest.fixture(scope="module")
def setup(served_model, tmp_path_factory):
    """The shared export of a 1-epoch synthetic run (`served_model`), and a cohort registered affinely.

    `goods` are the scans of the youngest, a middle and the oldest training subject, so their
    predicted ages differ most.
    """
    root = tmp_path_factory.mktemp("predict")
    train_split = served_model["stored"]["train"]
    by_age = sorted(train_split, key=served_model["ages"].get)
    goods = sorted([by_age[0], by_age[len(by_age) // 2], by_age[-1]])
    stored = {**train_split, **served_model["stored"]["test"]}
    return dict(served_model, stored=stored, goods=goods, affine_data=root / "data",
                stored_affine=build_affine_cohort(root))  # fmt: skip


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def record_fed_volumes(monkeypatch) -> list[np.ndarray]:
    """The list every volume fed to `ExportedModel.predict` is appended to, as float32."""
    fed = []
    original = ExportedModel.predict

    def recording(self, volumes):
        fed.extend(np.array(volumes, np.float32))
        return original(self, volumes)

    monkeypatch.setattr(ExportedModel, "predict", recording)
    return fed


def test_predict_feeds_the_model_exactly_the_stored_dataset_volume(setup, tmp_path, monkeypatch):
    fed = record_fed_volumes(monkeypatch)
    paths = setup["goods"]
    out = tmp_path / "p.csv"
    assert predict.main(["--model", str(setup["model"]), *paths, "--out", str(out), "--workers", "0"]) == 0
    assert [row["path"] for row in read_csv(out)] == paths and len(fed) == 3
    for path, volume in zip(paths, fed, strict=True):
        stored = setup["stored"][path]
        assert volume.dtype == np.float32 and volume.shape == stored.shape == TINY
        # The builder stores float16; predict feeds the same rounding, so the tensors are equal.
        assert np.array_equal(volume, stored.astype(np.float32)), path
        assert volume.std() > 0.5  # a real z-scored scan, not zeros


def test_a_dataset_named_otherwise_exports_its_affine_registration_and_predict_feeds_the_stored_tensor(
    setup, tmp_path, monkeypatch, capsys
):
    """Trained on `mysite`, built with affine registration and skull stripping: the export says so."""
    run_dir = tmp_path / "run"
    flags = ["--dataset", SYNTHETIC_AFFINE, "--data_dir", str(setup["affine_data"]), "--out", str(run_dir)]
    # Two training subjects: no validation part, both in one step.
    assert train.main([*flags, *TINY_TRAINING, "--validation-fraction", "0", "--batch-size", "2"]) == 0
    record = json.loads((run_dir / "config.json").read_text())["preprocessing"]
    assert record == preprocessing_record(
        PreprocessConfig(grid="tiny", registration="affine", skull_strip="template")
    )
    export_dir = run_dir / "export" / "1"
    metadata = json.loads((export_dir / "assets" / METADATA_ASSET).read_text())
    assert (metadata["grid"], metadata["registration"], metadata["preprocessing"]) == (
        "tiny",
        "affine",
        record,
    )
    fed = record_fed_volumes(monkeypatch)
    # One scan: a registration costs seconds, and the builder registered it in a Beam worker.
    path, stored = min(setup["stored_affine"].items())
    out = tmp_path / "p.csv"
    assert predict.main(["--model", str(export_dir), path, "--out", str(out), "--workers", "0"]) == 0
    (row,) = read_csv(out)
    assert row["status"] == "ok" and 0.0 < float(row["registration_ncc"]) <= 1.0
    assert 100.0 < float(row["brain_volume_ml"]) < 3000.0 and 0.0 < float(row["brain_fov_share"]) < 1.0
    (volume,) = fed
    assert np.array_equal(volume, stored.astype(np.float32)), path
    assert (stored == 0).mean() > 0.3  # stripped: the template's brain is about half the grid
    unregistered = preprocess_scan(path, PreprocessConfig(grid="tiny", registration="none")).volume
    assert not np.array_equal(stored, unregistered.astype(np.float16))  # registration changed the volume
    assert json.loads(out.with_suffix(".json").read_text())["preprocessing"] == record
    # Asking for another skull stripping than the export's is refused before any scan is read.
    contradicting = {"differs from the export's skull stripping 'template'": ["--skull-strip", "none", path]}
    tail = ["--model", str(export_dir), "--out", str(tmp_path / "other.csv"), "--workers", "0"]
    assert_one_line_usage_errors(predict.main, contradicting, tail, capsys)


@pytest.fixture(scope="module")
def evaluated_train(setup, tmp_path_factory) -> Path:
    """The evaluation folder of the shared run on its own training split (10 scans), made once."""
    root = tmp_path_factory.mktemp("evaluated")
    out_dir = root / "eval"
    run_dir = copy_run(setup["run"], root / "run")  # evaluation writes calibration.json into it
    argv = ["--run", str(run_dir), "--dataset", setup["dataset"], "--data_dir", str(setup["data_dir"])]
    assert evaluate.main([*argv, "--split", "train", "--ages", "0", "30", "--out", str(out_dir)]) == 0
    return out_dir


def test_the_ground_truth_survives_generation_ingest_and_evaluation(setup, evaluated_train):
    import pandas as pd

    from brainage_tf.synthetic import plan_visits

    table = pd.read_csv(evaluated_train / "predictions.csv")
    truth = plan_visits(setup["spec"]).set_index("participant_id").loc[table["subject_id"]]
    assert len(table) == 10 and not np.allclose(truth["tempo"], 1.0)
    # The generator's own values, through participants.tsv, the Beam ingest, float32 features, evaluate.
    np.testing.assert_allclose(table["tempo"], truth["tempo"], atol=1e-6)
    np.testing.assert_allclose(table["developmental_age"], truth["developmental_age"], atol=1e-4)
    summary = json.loads((evaluated_train / "metrics.json").read_text())
    floor = np.mean(np.abs(table["age"] * (table["tempo"] - 1)))
    assert summary["truth"]["oracle_floor"] == pytest.approx(floor, abs=1e-4) and summary["truth"]["n"] == 10
    assert summary["truth"]["mae"] == pytest.approx(summary["mae"])
    assert "longitudinal" not in summary  # one scan per child
    report = (evaluated_train / "report.md").read_text()
    assert f"| slice_lstm | 10 | {summary['mae']:.2f} | {floor:.2f} |" in report


def test_predictions_equal_the_evaluation_of_the_same_subjects(setup, evaluated_train, tmp_path):
    evaluated = {(row["subject_id"], row["session"]): float(row["predicted_age"])
                 for row in read_csv(evaluated_train / "predictions.csv")}  # fmt: skip
    out = tmp_path / "p.csv"
    assert predict.main(["--model", str(setup["model"]), "--bids", str(setup["bids"]), "--out", str(out),
                         "--workers", "0"]) == 0  # fmt: skip
    served = {(row["subject_id"], row["session"]): float(row["predicted_age"]) for row in read_csv(out)}
    assert len(evaluated) == len(setup["stored"]) - 2 and set(evaluated) <= set(served)  # 2 in test
    for key, age in evaluated.items():
        assert abs(served[key] - age) < 1e-4, key
    # The model tells the children apart, so ages predicted from another tensor would differ.
    assert max(evaluated.values()) - min(evaluated.values()) > DISTINCT_YEARS


def bad_and_odd_scans(good: str, folder: Path) -> dict[str, Path]:
    """Scan files made from one good synthetic scan: NaN background, NaN brain, 4D, corrupt, missing."""
    import nibabel as nib

    image = nib.load(good)
    data = image.get_fdata(dtype=np.float32)
    centre = tuple(size // 2 for size in data.shape)
    files = {name: folder / f"{name}.nii.gz" for name in ("nan_background", "nan_brain", "4d", "corrupt")}
    background = data.copy()
    background[:3, :3, :3] = np.nan  # a corner of the field of view: air
    nib.save(nib.Nifti1Image(background, image.affine), files["nan_background"])
    brain = data.copy()
    brain[centre[0] - 1 : centre[0] + 1, centre[1] - 1 : centre[1] + 1, centre[2]] = np.nan
    nib.save(nib.Nifti1Image(brain, image.affine), files["nan_brain"])
    nib.save(nib.Nifti1Image(np.stack([data, data], axis=-1), image.affine), files["4d"])
    files["corrupt"].write_bytes(b"this is not a NIfTI file" * 10)
    files["missing"] = folder / "missing.nii.gz"
    return files


def test_bad_scans_fail_alone_with_their_reason_and_the_rest_finish(setup, tmp_path):
    goods = setup["goods"]
    odd = bad_and_odd_scans(goods[0], tmp_path)
    paths = [*goods, *(str(path) for path in odd.values())]
    out = tmp_path / "predictions.csv"
    command = [sys.executable, "-m", "brainage_tf.predict", "--model", str(setup["model"]), *paths]
    done = subprocess.run([*command, "--out", str(out), "--workers", "2"], capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout.strip().endswith(f"4 predicted, 4 failed: {out}")
    rows = read_csv(out)
    assert [row["path"] for row in rows] == paths
    assert list(rows[0]) == [*batch.BASE_COLUMNS, *OPTIONAL_OUTPUTS, *batch.SCAN_COLUMNS]
    by_name = dict(zip([*goods, *odd], rows, strict=True))
    expected_failures = {
        "nan_brain": "reach into the brain",
        "4d": "expected one 3D volume, got a 4D image",
        "corrupt": "cannot read as a nibabel image",
        "missing": "file not found",
    }
    for name, reason in expected_failures.items():
        row = by_name[name]
        assert row["status"] == "failed" and row["predicted_age"] == "" and "\n" not in row["reason"]
        assert row["reason"].startswith(f"{odd[name]}: ") and reason in row["reason"], row["reason"]
    for name in [*goods, "nan_background"]:
        row = by_name[name]
        assert (
            row["status"] == "ok" and row["reason"] == "" and row["age"] == "" and row["brain_age_gap"] == ""
        )
        assert float(row["interval_low"]) <= float(row["predicted_age"]) <= float(row["interval_high"])
        assert 0.0 < float(row["registration_ncc"]) <= 1.0
    assert by_name["nan_background"]["non_finite_voxels"] == "27"
    assert {by_name[name]["non_finite_voxels"] for name in goods} == {"0"}
    # Background zeros barely move the prediction of the scan they were made from; another child does.
    predicted = {name: float(by_name[name]["predicted_age"]) for name in [*goods, "nan_background"]}
    assert abs(predicted["nan_background"] - predicted[goods[0]]) < DISTINCT_YEARS / 5
    assert max(predicted[name] for name in goods) - min(predicted[name] for name in goods) > DISTINCT_YEARS


def test_bids_and_manifest_ages_give_the_gap(setup, tmp_path):
    by_bids = tmp_path / "bids.csv"
    assert predict.main(["--model", str(setup["model"]), "--bids", str(setup["bids"]), "--out", str(by_bids),
                         "--workers", "0"]) == 0  # fmt: skip
    bids_rows = read_csv(by_bids)
    assert sorted(row["path"] for row in bids_rows) == sorted(setup["stored"])
    for row in bids_rows:
        assert row["status"] == "ok" and row["subject_id"].startswith("sub-") and row["age"] != ""
        age, predicted = float(row["age"]), float(row["predicted_age"])
        assert 0 <= age <= 22 and abs(float(row["brain_age_gap"]) - (predicted - age)) < 1e-5

    manifest = tmp_path / "scans.csv"
    goods = setup["goods"]
    manifest.write_text("subject_id,age_months,path\n" + "".join(
        f"m{index},{12 * (index + 1)},{path}\n" for index, path in enumerate(goods)))  # fmt: skip
    by_manifest = tmp_path / "manifest.csv"
    argv = ["--model", str(setup["model"]), "--manifest", str(manifest), "--out", str(by_manifest)]
    assert predict.main([*argv, "--workers", "0"]) == 0
    rows = read_csv(by_manifest)
    assert [(row["subject_id"], float(row["age"])) for row in rows] == [("m0", 1.0), ("m1", 2.0), ("m2", 3.0)]
    served = {row["path"]: float(row["predicted_age"]) for row in bids_rows}
    for row in rows:
        assert abs(float(row["predicted_age"]) - served[row["path"]]) < 1e-4  # same volume, same age
        assert abs(float(row["brain_age_gap"]) - (float(row["predicted_age"]) - float(row["age"]))) < 1e-5


def test_rows_carry_the_out_of_distribution_flag_of_the_export(setup, tmp_path):
    items = [ScanItem(path) for path in setup["goods"]]
    # Scans of its own training subjects lie in the ranges the export measured on its training scans.
    rows = predictions.predict_items(ExportedModel(setup["model"]), items)
    assert [(row["ood"], row["ood_reason"]) for row in rows] == [(False, "")] * 3
    # An export whose training scans had other whole-volume means flags the same scans.
    reference = {"age": [0.0, 22.0], "registration_ncc_min": 0.0,
                 "intensity_mean": [5.0, 6.0], "intensity_std": [0.0, 10.0]}  # fmt: skip
    elsewhere = export_copy_with_metadata(setup["model"], tmp_path / "elsewhere", reference=reference)
    rows = predictions.predict_items(ExportedModel(elsewhere), items)
    assert all(row["ood"] and "intensity mean" in row["ood_reason"] for row in rows), rows


def test_rows_of_known_age_get_the_gap_centile_of_the_exports_norms(setup, tmp_path):
    bias = {"slope": 0.8, "intercept": 1.0, "n_fit": 20, "method": "de Lange & Cole 2020"}
    norms = {"mean_intercept": 0.0, "mean_slope": 0.0, "sd_intercept": 0.5, "sd_slope": 0.1, "sd_floor": 0.05,
             "age_range": [0.0, 22.0], "n_fit": 10, "method": "Altman 1993, absolute residuals"}  # fmt: skip
    normed = export_copy_with_metadata(
        setup["model"], tmp_path / "normed", bias_correction=bias, normative=norms
    )
    model = ExportedModel(normed)
    items = [ScanItem(path, age=age) for path, age in zip(setup["goods"], (3.0, 9.0), strict=False)]
    rows = predictions.predict_items(model, [*items, ScanItem(setup["goods"][2])])
    assert {"corrected_brain_age_gap", "gap_z", "gap_centile"} <= set(predictions.prediction_columns(model))
    for row, age in zip(rows, (3.0, 9.0), strict=False):
        gap = row["predicted_age"] - (0.8 * age + 1.0)  # the de Lange & Cole corrected gap
        z = gap / (0.5 + 0.1 * age)
        assert row["corrected_brain_age_gap"] == pytest.approx(gap)
        assert row["gap_z"] == pytest.approx(z)
        assert row["gap_centile"] == pytest.approx(50.0 * (1.0 + math.erf(z / math.sqrt(2.0))))
    assert "gap_centile" not in rows[2]  # age unknown: no gap, no centile


def test_a_volume_off_the_grid_is_never_fed(setup, tmp_path, monkeypatch):
    metadata = SimpleNamespace(
        non_finite_voxels=0, registration_ncc=0.9, brain_volume_ml=math.nan, brain_fov_share=math.nan
    )
    off_grid = SimpleNamespace(volume=np.zeros((16, 20, 14)), metadata=metadata)
    monkeypatch.setattr(workers, "preprocess_path", lambda path, config: (off_grid, ""))
    model = ExportedModel(setup["model"])
    rows = predictions.predict_items(model, [ScanItem(path) for path in setup["goods"]])
    assert all(row["status"] == "failed" and "is not the export's grid" in row["reason"] for row in rows)
    with pytest.raises(ValueError, match="do not match"):
        model.predict(np.zeros((1, 16, 20, 14), np.float32))


def test_usage_errors_are_one_line_and_exit_2(setup, tmp_path, capsys):
    scan = setup["goods"][0]
    record = ExportedModel(setup["model"]).metadata["preprocessing"]
    exports = {
        name: export_copy_with_metadata(setup["model"], tmp_path / name, preprocessing=changed)
        for name, changed in (
            ("toy", toy_record((16, 20, 14))),
            ("unrecorded", None),
            # Registered: an unregistered version-1 record reads as today's (preprocessing_record).
            ("older", {**record, "version": PREPROCESSING_VERSION - 1, "registration": "affine"}),
        )
    }
    cases = {
        "no scans": ["--model", str(setup["model"])],
        "no preset grid": ["--model", str(exports["toy"]), scan],
        "no preprocessing record": ["--model", str(exports["unrecorded"]), scan],
        f"preprocessing version is {PREPROCESSING_VERSION - 1}, this package's is {PREPROCESSING_VERSION}": [
            "--model",
            str(exports["older"]),
            scan,
        ],
        "differs from the export's grid": ["--model", str(setup["model"]), "--grid", "small", scan],
        "not a SavedModel": ["--model", str(tmp_path), scan],
        "--workers must be": ["--model", str(setup["model"]), "--workers", "-1", scan],
        "invalid int value": ["--model", str(setup["model"]), "--workers", "x", scan],
    }
    assert_one_line_usage_errors(predict.main, cases, ["--out", str(tmp_path / "o.csv")], capsys)
    assert not (tmp_path / "o.csv").exists()


def _learned_export(setup, target: Path) -> Path:
    """A copy of the shared export whose record says its scans were skull stripped by deepbet."""
    record = ExportedModel(setup["model"]).metadata["preprocessing"]
    return export_copy_with_metadata(
        setup["model"], target, preprocessing={**record, "skull_strip": "deepbet"}
    )


@pytest.mark.skipif(not skull_strip.extra_installed(), reason=f"needs {skull_strip.SKULLSTRIP_INSTALL}")
def test_an_export_trained_on_learned_masks_gets_its_scans_stripped_so(setup, tmp_path, monkeypatch):
    export_dir, path = _learned_export(setup, tmp_path / "learned"), setup["goods"][0]
    fed = record_fed_volumes(monkeypatch)
    out = tmp_path / "p.csv"
    assert predict.main(["--model", str(export_dir), path, "--out", str(out), "--workers", "0"]) == 0
    (row,) = read_csv(out)
    expected = preprocess_scan(path, PreprocessConfig(grid="tiny", skull_strip="deepbet"))
    # The CSV's 6 decimals.
    assert float(row["brain_volume_ml"]) == pytest.approx(expected.metadata.brain_volume_ml, abs=1e-6)
    assert float(row["brain_fov_share"]) == pytest.approx(expected.metadata.brain_fov_share, abs=1e-6)
    assert np.array_equal(fed[0], expected.volume.astype(np.float16).astype(np.float32))
    assert not np.array_equal(fed[0], setup["stored"][path].astype(np.float32))  # not the unstripped volume


def test_an_export_trained_on_learned_masks_without_the_extra_is_a_one_line_error(
    setup, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "deepbet", None)  # `import deepbet` fails, as when it is not installed
    cases = {f"which are not installed; install them with: {skull_strip.SKULLSTRIP_INSTALL}": [
        "--model", str(_learned_export(setup, tmp_path / "learned")), setup["goods"][0]
    ]}  # fmt: skip
    assert_one_line_usage_errors(predict.main, cases, ["--out", str(tmp_path / "o.csv")], capsys)
