"""`python -m brainage_tf.predict`: the served tensor is the stored one, and a bad scan fails alone."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toy_data import TINY_RUN_FLAGS, store_toy_tfds, toy_cohort

from brainage_tf import evaluate, export, predict, train
from brainage_tf.preprocessing import GRIDS

TINY = GRIDS["tiny"].shape  # (24, 30, 21)
# One epoch is enough here: the predictions only have to exist.
TINY_TRAINING = [*TINY_RUN_FLAGS, "--epochs", "1"]


def build_synthetic_cohort(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """3 synthetic subjects written by generate_cohort, built by the synthetic_cohort builder (tiny grid).

    Returns the discovery BIDS folder and source_path -> stored float16 volume of every example.
    """
    import tensorflow_datasets as tfds

    from brainage_tf.synthetic import generate_cohort
    from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import (
        GENERATED_FOLDER,
        Builder,
        SyntheticConfig,
        cohort_folder_name,
    )

    config = SyntheticConfig(name="tiny_predict", grid="tiny", registration="none", discovery_subjects=3,
                             replication_subjects=1, voxel_scale=3.9, generator_workers=1)  # fmt: skip
    (_, discovery), *_ = config.cohorts()
    bids = root / "downloads" / GENERATED_FOLDER / cohort_folder_name(discovery)
    generate_cohort(bids, workers=1, progress=False, **discovery)  # the builder reuses this folder
    builder = Builder(config=config, data_dir=str(root / "data"))
    builder.download_and_prepare(download_dir=str(root / "downloads"))
    stored = {}
    for split in ("train", "test"):  # the discovery subjects
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            stored[str(bids / example["source_path"].decode())] = example["volume"]
    assert len(stored) == 3 and all(v.dtype == np.float16 and v.shape == TINY for v in stored.values())
    return bids, stored


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The built synthetic cohort and a 1-epoch run on toy volumes of the tiny grid, evaluated, exported."""
    root = tmp_path_factory.mktemp("predict")
    bids, stored = build_synthetic_cohort(root)
    splits = {"train": toy_cohort(24, TINY, seed=1), "test": toy_cohort(6, TINY, seed=2)}
    store_toy_tfds(root / "tfds", "toy_predict", TINY, splits)
    run_dir = root / "run"
    flags = ["--dataset", "toy_predict/tiny", "--data_dir", str(root / "tfds"), "--out", str(run_dir)]
    assert train.main([*flags, *TINY_TRAINING]) == 0
    assert evaluate.main(["--run", str(run_dir)]) == 0
    assert export.main(["--run", str(run_dir)]) == 0
    model = run_dir / "export" / "1"
    assert json.loads((model / "assets" / export.METADATA_ASSET).read_text())["grid"] == "tiny"
    return dict(root=root, bids=bids, stored=stored, model=model)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_feeds_the_model_exactly_the_stored_dataset_volume(setup, tmp_path, monkeypatch):
    fed = []
    original = predict.ExportedModel.predict

    def recording(self, volumes):
        fed.extend(np.array(volumes, np.float32))
        return original(self, volumes)

    monkeypatch.setattr(predict.ExportedModel, "predict", recording)
    paths = sorted(setup["stored"])
    out = tmp_path / "p.csv"
    assert predict.main(["--model", str(setup["model"]), *paths, "--out", str(out), "--workers", "1"]) == 0
    assert [row["path"] for row in read_csv(out)] == paths and len(fed) == 3
    for path, volume in zip(paths, fed, strict=True):
        stored = setup["stored"][path]
        assert volume.dtype == np.float32 and volume.shape == stored.shape == TINY
        # The builder stores float16: the served float32 volume rounds to exactly the stored bytes.
        assert np.array_equal(volume.astype(np.float16), stored), path
        np.testing.assert_allclose(volume, stored.astype(np.float32), rtol=2**-10, atol=2**-14)
        assert volume.std() > 0.5  # a real z-scored scan, not zeros


def test_corrupt_scan_fails_alone_and_bids_ages_give_the_gap(setup, tmp_path):
    corrupt = tmp_path / "x.nii.gz"
    corrupt.write_bytes(b"this is not a NIfTI file" * 10)
    paths = [*sorted(setup["stored"]), str(corrupt)]
    out = tmp_path / "predictions.csv"
    command = [sys.executable, "-m", "brainage_tf.predict", "--model", str(setup["model"]), *paths]
    done = subprocess.run([*command, "--out", str(out), "--workers", "2"], capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    rows = read_csv(out)
    assert [row["path"] for row in rows] == paths
    assert list(rows[0]) == [*predict.BASE_COLUMNS, *predict.OPTIONAL_OUTPUTS, "status", "reason"]
    *good, bad = rows
    assert bad["status"] == "failed" and str(corrupt) in bad["reason"] and "\n" not in bad["reason"]
    assert bad["predicted_age"] == "" and "cannot read" in bad["reason"]
    for row in good:
        assert (
            row["status"] == "ok" and row["reason"] == "" and row["age"] == "" and row["brain_age_gap"] == ""
        )
        assert np.isfinite(float(row["predicted_age"]))
        assert float(row["interval_low"]) <= float(row["predicted_age"]) <= float(row["interval_high"])

    by_bids = tmp_path / "bids.csv"
    assert predict.main(["--model", str(setup["model"]), "--bids", str(setup["bids"]), "--out", str(by_bids),
                         "--workers", "1"]) == 0  # fmt: skip
    bids_rows = read_csv(by_bids)
    assert sorted(row["path"] for row in bids_rows) == sorted(setup["stored"])
    served = {row["path"]: float(row["predicted_age"]) for row in good}
    for row in bids_rows:
        assert row["status"] == "ok" and row["subject_id"].startswith("sub-") and row["age"] != ""
        age, predicted = float(row["age"]), float(row["predicted_age"])
        assert 0 <= age <= 22 and abs(predicted - served[row["path"]]) < 1e-4  # same volume, same age
        assert abs(float(row["brain_age_gap"]) - (predicted - age)) < 1e-5


def test_a_volume_off_the_grid_is_never_fed(setup, tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "preprocess_scan_volume", lambda path, config: np.zeros((16, 20, 14)))
    model = predict.ExportedModel(setup["model"])
    rows = predict.predict_items(model, [predict.ScanItem(path) for path in sorted(setup["stored"])])
    assert all(row["status"] == "failed" and "is not the export's grid" in row["reason"] for row in rows)
    with pytest.raises(ValueError, match="do not match"):
        model.predict(np.zeros((1, 16, 20, 14), np.float32))


def test_usage_errors_are_one_line_and_exit_2(setup, tmp_path, capsys):
    scan = sorted(setup["stored"])[0]
    toy = tmp_path / "toy_export"
    shutil.copytree(setup["model"], toy)
    asset = toy / "assets" / export.METADATA_ASSET
    asset.write_text(json.dumps({**json.loads(asset.read_text()), "grid": None}))
    cases = {
        "no scans": ["--model", str(setup["model"])],
        "no preset grid": ["--model", str(toy), scan],
        "differs from the export's grid": ["--model", str(setup["model"]), "--grid", "small", scan],
        "not a SavedModel": ["--model", str(tmp_path), scan],
        "--workers must be": ["--model", str(setup["model"]), "--workers", "0", scan],
        "invalid int value": ["--model", str(setup["model"]), "--workers", "x", scan],
    }
    for expected, argv in cases.items():
        try:
            code = predict.main([*argv, "--out", str(tmp_path / "o.csv")])
        except SystemExit as exit_:
            code = exit_.code
        error = capsys.readouterr().err
        assert code == 2 and expected in error and len(error.strip().splitlines()) == 1, (expected, error)
    assert not (tmp_path / "o.csv").exists()
