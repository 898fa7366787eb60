"""`python -m brainage_tf.explain` and `evaluate --explain` on a tiny trained, exported slice_lstm run."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from cli_checks import assert_one_line_usage_errors, export_copy_with_metadata
from toy_data import TINY_RUN_FLAGS, store_toy_tfds, toy_cohort

from brainage_tf import evaluate, explain, export, train
from brainage_tf.explanation import sanity
from brainage_tf.explanation.saliency import SaliencySettings, gradients, keras_age_function, saliency_map
from brainage_tf.preprocessing import GRIDS
from brainage_tf.serving import explanations
from brainage_tf.serving.batch import Interrupted
from brainage_tf.serving.exported_model import ExportedModel, model_input
from brainage_tf.serving.scans import ScanItem, folder_names
from brainage_tf.serving.workers import preprocess_path

GRID = GRIDS["tiny"]  # (24, 30, 21): 10 slabs of TINY_RUN_FLAGS' --pool-size 2
SLABS = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 1-epoch toy run on the tiny grid, exported, and three test volumes saved as MNI-space NIfTI scans."""
    root = tmp_path_factory.mktemp("explain")
    volumes, ages, _ = toy_cohort(6, GRID.shape, seed=2)
    splits = {
        "train": toy_cohort(24, GRID.shape, seed=1),
        "test": (volumes, ages, np.array([f"t{i}" for i in range(6)])),
    }
    store_toy_tfds(root / "tfds", "toy_explain", GRID.shape, splits)
    run_dir = root / "run"
    flags = ["--dataset", "toy_explain/tiny", "--data_dir", str(root / "tfds"), "--out", str(run_dir)]
    assert train.main([*flags, *TINY_RUN_FLAGS, "--epochs", "1"]) == 0
    assert export.main(["--run", str(run_dir)]) == 0
    scans = []
    for index in range(2):
        scans.append(root / f"scan{index}.nii.gz")
        nib.save(nib.Nifti1Image(volumes[index], GRID.affine), scans[-1])
    # The first scan again, stored in LPS voxel order: the same brain, other voxel axes.
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [GRID.shape[0] - 1, GRID.shape[1] - 1]
    scans.append(root / "scan0_lps.nii.gz")
    nib.save(nib.Nifti1Image(volumes[0][::-1, ::-1].copy(), GRID.affine @ flip), scans[-1])
    return dict(root=root, run=run_dir, model=run_dir / "export" / "1", scans=scans, volumes=volumes)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_explain_writes_every_output_and_a_bad_scan_fails_alone(setup, tmp_path, capsys):
    corrupt = tmp_path / "broken.nii.gz"
    corrupt.write_bytes(b"not a scan" * 20)
    out = tmp_path / "explained"
    argv = ["--model", str(setup["model"]), *map(str, setup["scans"]), str(corrupt), "--out", str(out)]
    assert explain.main([*argv, "--samples", "8"]) == 1
    rows = read_csv(out / explanations.SUMMARY_CSV)
    assert [row["status"] for row in rows] == ["ok", "ok", "ok", "failed"]
    assert str(corrupt) in rows[-1]["reason"] and "cannot read" in rows[-1]["reason"]
    assert [row["output_dir"] for row in rows] == ["scan0", "scan1", "scan0_lps", ""]
    assert all(float(row["registration_ncc"]) > 0 and row["non_finite_voxels"] == "0" for row in rows[:3])
    model = ExportedModel(setup["model"])
    fed = np.stack(
        [model_input(preprocess_path(str(scan), model.preprocess_config)[0]) for scan in setup["scans"][:2]]
    )
    served = model.predict(fed)["predicted_age"]
    assert [float(row["predicted_age"]) for row in rows[:2]] == pytest.approx(served, abs=1e-4)

    folder = out / "scan0"
    mni = nib.load(folder / "saliency_mni.nii.gz")
    assert (
        mni.shape == GRID.shape
        and np.allclose(mni.affine, GRID.affine)
        and int(mni.header["sform_code"]) == 4
    )
    assert (
        mni.header["descrip"].tobytes().rstrip(b"\0").decode()
        == "smoothgrad n=8 noise=0.15 seed=0 slice_lstm"
    )
    assert np.abs(mni.get_fdata()).sum() > 0
    sidecar = json.loads((folder / "saliency_mni.json").read_text())
    assert sidecar["method"]["method"] == "smoothgrad" and sidecar["method"]["samples"] == 8
    assert sidecar["predicted_age"] == pytest.approx(served[0], abs=1e-4) and "MNI152" in sidecar["space"]
    native = nib.load(folder / "saliency_native.nii.gz")
    assert np.allclose(native.get_fdata(), mni.get_fdata(), atol=1e-6)  # a scan on the grid: the same voxels
    # The LPS copy's native map is the same map in its own voxel order.
    lps = nib.load(out / "scan0_lps" / "saliency_native.nii.gz")
    assert np.allclose(lps.affine, nib.load(setup["scans"][2]).affine)
    np.testing.assert_allclose(lps.get_fdata(), mni.get_fdata()[::-1, ::-1], atol=1e-6)
    table = pd.read_csv(folder / "slab_importance.csv")
    assert len(table) == SLABS and table["last_slice"].max() == 19
    assert np.allclose(table["importance"], (table["occluded_age"] - table["predicted_age"]).abs(), atol=1e-5)
    for name in ("slab_importance.png", "montage.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    assert "3 explained, 1 failed" in capsys.readouterr().out


@pytest.fixture(scope="module")
def keras_model(setup):
    """The run's Keras model and its age function (traced once for the tests that share it)."""
    import keras

    import brainage_tf.models  # noqa: F401  (registers the model classes)

    model = keras.models.load_model(setup["run"] / "best_model.keras")
    return model, keras_age_function(model)


def test_the_exports_gradient_is_the_keras_models(setup, keras_model):
    _, age_fn = keras_model
    served = ExportedModel(setup["model"])
    volumes = setup["volumes"][:2]
    from_keras = gradients(age_fn, volumes)
    np.testing.assert_allclose(gradients(served.age_tensor, volumes), from_keras, rtol=1e-3, atol=1e-6)
    assert np.abs(from_keras).max() > 0


def test_model_randomisation_moves_the_map_more_than_the_noise_seed(setup, keras_model):
    model, age_fn = keras_model
    volume, settings = setup["volumes"][0], SaliencySettings(samples=16)
    trained = saliency_map(age_fn, volume, settings)
    reseeded = saliency_map(age_fn, volume, SaliencySettings(samples=16, seed=1))
    randomised = saliency_map(keras_age_function(sanity.reinitialised(model)), volume, settings)
    rho_random = sanity.rank_correlation(trained, randomised)
    assert rho_random < sanity.RANDOMISATION_MAX_RANK_CORRELATION
    assert rho_random < sanity.rank_correlation(trained, reseeded)


def test_evaluate_explain_writes_one_map_per_age_group(setup):
    assert evaluate.main(["--run", str(setup["run"]), "--explain"]) == 0
    out = setup["run"] / "eval" / "toy_explain-tiny-test" / "explain"
    summary = json.loads((out / "group_maps.json").read_text())
    assert sum(group["n"] for group in summary["groups"].values()) == 6
    for group in summary["groups"].values():
        image = nib.load(out / group["file"])
        assert image.shape == GRID.shape and np.allclose(image.affine, GRID.affine)
        assert image.get_fdata().mean() == pytest.approx(1.0, rel=1e-3)  # a mean of maps of mean 1
    assert (out / "group_montage.png").read_bytes()[:4] == b"\x89PNG"


def test_usage_errors_are_one_line_and_exit_2(setup, tmp_path, capsys):
    scan = str(setup["scans"][0])
    old = export_copy_with_metadata(setup["model"], tmp_path / "old_export", pool_size=None)
    cases = {
        "no scans": ["--model", str(setup["model"])],
        "samples and batch size must be at least 1": ["--model", str(setup["model"]), "--samples", "0", scan],
        "noise must be": ["--model", str(setup["model"]), "--noise", "2", scan],
        "pass --slab-size": ["--model", str(old), scan],
        "between 1 and the grid's 21 axial slices": [
            "--model",
            str(setup["model"]),
            "--slab-size",
            "30",
            scan,
        ],
        "invalid choice": ["--model", str(setup["model"]), "--method", "gradcam", scan],
        "not a SavedModel": ["--model", str(tmp_path), scan],
    }
    assert_one_line_usage_errors(explain.main, cases, ["--out", str(tmp_path / "out")], capsys)
    assert not (tmp_path / "out").exists()
    assert (
        evaluate.main(
            ["--compare", str(setup["run"]), str(setup["run"]), "--out", str(tmp_path), "--explain"]
        )
        == 2
    )


def test_resnet3d_exports_get_the_default_slice_lstm_slabs():
    metadata = {"model": "resnet3d", "slice_axis": None, "pool_size": None, "grid_shape": [64, 80, 56]}
    assert explanations.slab_settings(metadata, None, None) == ("axial", 4)
    assert explanations.slab_settings(metadata, "coronal", 5) == ("coronal", 5)


def test_every_scan_gets_its_own_folder_name():
    items = [
        ScanItem("/a/T1w.nii.gz"),
        ScanItem("/b/T1w.nii.gz"),
        ScanItem("/c/x.nii.gz", subject_id="sub-01", session="ses-2"),
        ScanItem("/d/scan.MNC"),
        ScanItem(""),
    ]
    assert folder_names(items) == ["T1w", "T1w-2", "sub-01_ses-2", "scan", "scan-2"]


def test_a_scan_whose_explanation_fails_gets_a_failed_row(setup, tmp_path, monkeypatch):
    def explain_scan(model, item, scan, settings, slabs, out_dir):
        if item.path.endswith("scan1.nii.gz"):
            raise RuntimeError("disk full")
        out_dir.mkdir()
        return 7.0

    monkeypatch.setattr(explanations, "explain_scan", explain_scan)
    model = ExportedModel(setup["model"])
    items = [ScanItem(str(path)) for path in setup["scans"][:2]]
    counts = explanations.explain_items(model, items, SaliencySettings(), ("axial", 2), tmp_path)
    assert counts == {"rows": 2, "ok": 1, "failed": 1}
    rows = read_csv(tmp_path / explanations.SUMMARY_CSV)
    assert [row["status"] for row in rows] == ["ok", "failed"] and rows[0]["predicted_age"] == "7.000000"
    assert rows[1]["reason"] == f"{setup['scans'][1]}: RuntimeError: disk full"


def test_an_interrupted_explain_resumes_and_remakes_only_unfinished_folders(setup, tmp_path, monkeypatch):
    out = tmp_path / "explained"
    argv = ["--model", str(setup["model"]), *map(str, setup["scans"]), "--out", str(out), "--samples", "2"]
    argv += ["--workers", "0"]
    real = explanations.explain_scan

    def interrupted_in_the_second(model, item, scan, settings, slabs, out_dir):
        if out_dir.name == "scan1":  # SIGTERM half-way through this scan's files
            out_dir.mkdir()
            (out_dir / "saliency_mni.nii.gz").write_bytes(b"half-written")
            raise Interrupted(signal.SIGTERM)
        return real(model, item, scan, settings, slabs, out_dir)

    monkeypatch.setattr(explanations, "explain_scan", interrupted_in_the_second)
    assert explain.main(argv) == 128 + signal.SIGTERM
    assert (out / "scan0" / explanations.COMPLETION_MARKER).is_file()
    assert not (out / "scan1" / explanations.COMPLETION_MARKER).exists()
    assert not (out / explanations.SUMMARY_CSV).exists()
    kept = (out / "scan0" / "montage.png").stat().st_mtime_ns
    monkeypatch.setattr(explanations, "explain_scan", real)
    assert explain.main([*argv, "--resume"]) == 0
    rows = read_csv(out / explanations.SUMMARY_CSV)
    assert [(row["output_dir"], row["status"]) for row in rows] == [
        ("scan0", "ok"),
        ("scan1", "ok"),
        ("scan0_lps", "ok"),
    ]
    assert (out / "scan0" / "montage.png").stat().st_mtime_ns == kept  # finished: not made again
    assert nib.load(out / "scan1" / "saliency_mni.nii.gz").shape == GRID.shape  # unfinished: made again

    # A folder without its marker is unfinished, whatever the summary says: the next resume remakes it.
    (out / "scan0_lps" / explanations.COMPLETION_MARKER).unlink()
    (out / "scan0_lps" / "stale.txt").write_text("from an interrupted run")
    assert explain.main([*argv, "--resume"]) == 0
    assert (out / "scan0_lps" / explanations.COMPLETION_MARKER).is_file()
    assert not (out / "scan0_lps" / "stale.txt").exists()
    assert (out / "scan0" / "montage.png").stat().st_mtime_ns == kept
    # Other saliency settings would mix maps made two ways: refused.
    assert explain.main([*argv[:-4], "--samples", "3", "--workers", "0", "--resume"]) == 2
