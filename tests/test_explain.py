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
from cli_checks import assert_one_line_usage_errors, copy_run, export_copy_with_metadata

from brainage_tf import evaluate, explain
from brainage_tf.explanation import sanity
from brainage_tf.explanation.saliency import SaliencySettings, gradients, keras_age_function, saliency_map
from brainage_tf.preprocessing import GRIDS
from brainage_tf.serving import explanations
from brainage_tf.serving.batch import Interrupted
from brainage_tf.serving.exported_model import ExportedModel
from brainage_tf.serving.scans import ScanItem, folder_names

GRID = GRIDS["tiny"]  # (24, 30, 21): 10 slabs of the --pool-size 2 of toy_data.TINY_RUN_FLAGS
SLABS = 10
# The shared model's ages of the youngest and oldest training child differ by more than this,
# 500 times the 1e-4 y the equality checks allow: an answer to the wrong tensor would not pass.
DISTINCT_YEARS = 0.05


@pytest.fixture(scope="module")
def setup(served_model, tmp_path_factory):
    """The shared synthetic run's export, and scans of its youngest and oldest training subjects.

    The scans are their stored volumes saved as MNI-space NIfTI on the tiny grid, plus the
    first again in LPS voxel order: the same brain, other voxel axes.
    """
    root = tmp_path_factory.mktemp("explain")
    train_split = served_model["stored"]["train"]
    by_age = sorted(train_split, key=served_model["ages"].get)
    volumes = np.stack([train_split[by_age[0]], train_split[by_age[-1]]]).astype(np.float32)
    scans = []
    for index, volume in enumerate(volumes):
        scans.append(root / f"scan{index}.nii.gz")
        nib.save(nib.Nifti1Image(volume, GRID.affine), scans[-1])
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [GRID.shape[0] - 1, GRID.shape[1] - 1]
    scans.append(root / "scan0_lps.nii.gz")
    nib.save(nib.Nifti1Image(volumes[0][::-1, ::-1].copy(), GRID.affine @ flip), scans[-1])
    return dict(root=root, run=served_model["run"], model=served_model["model"], scans=scans, volumes=volumes)


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
    # The ages of the stored volumes the scans were saved from, which the model tells apart.
    served = ExportedModel(setup["model"]).predict(setup["volumes"])["predicted_age"]
    assert [float(row["predicted_age"]) for row in rows[:3]] == pytest.approx([*served, served[0]], abs=1e-4)
    assert abs(served[0] - served[1]) > DISTINCT_YEARS

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


def test_evaluate_explain_writes_one_map_per_age_group(setup, tmp_path):
    run_dir = copy_run(setup["run"], tmp_path / "run")  # evaluation writes into the run directory
    assert evaluate.main(["--run", str(run_dir), "--explain"]) == 0
    out = run_dir / "eval" / "synthetic_cohort-tiny_served-test" / "explain"
    summary = json.loads((out / "group_maps.json").read_text())
    assert sum(group["n"] for group in summary["groups"].values()) == 2  # the test split of 12 children
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
