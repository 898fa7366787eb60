"""`python -m brainage_tf.export` on a tiny trained run, loaded back where brainage_tf is not imported."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_checks import copy_run
from toy_data import TINY_RUN_FLAGS, TOY_VERSION, store_toy_tfds, toy_cohort, toy_record

from brainage_tf import evaluate, export, train
from brainage_tf.errors import UsageError
from brainage_tf.evaluation.calibration import BiasCorrection, ConformalIntervals
from brainage_tf.preprocessing import PreprocessConfig
from brainage_tf.preprocessing_record import PREPROCESSING_VERSION, preprocessing_record
from brainage_tf.serving import export as serving_export
from brainage_tf.serving.metadata import next_version
from brainage_tf.training.config import TrainConfig

SHAPE = (16, 20, 14)
# The run's ages of its 6 test volumes spread over more than this, 5,000 times the 1e-5 y the
# export may differ from Keras by.
DISTINCT_YEARS = 0.05

# Runs in a fresh interpreter: only TensorFlow and numpy, never brainage_tf (nor TFDS).
LOAD_EXPORT = """
import json, sys
import numpy as np
import tensorflow as tf

export_dir, volumes_path, records_path = sys.argv[1:4]
loaded = tf.saved_model.load(export_dir)
records = [record.numpy() for record in tf.data.TFRecordDataset(records_path)]

def call(name, **inputs):
    return {key: value.numpy().tolist() for key, value in loaded.signatures[name](**inputs).items()}

def plain(value):
    value = value.numpy()
    return value.decode() if isinstance(value, bytes) else value.tolist()

result = {
    "signatures": sorted(loaded.signatures),
    "serving_default": call("serving_default", volume=tf.constant(np.load(volumes_path))),
    "predict_examples": call("predict_examples", examples=tf.constant(records)),
    "metadata": {key: plain(value) for key, value in loaded.metadata().items()},
    "asset": json.loads(open(loaded.metadata_asset.asset_path.numpy().decode()).read()),
}
assert "brainage_tf" not in sys.modules, sorted(name for name in sys.modules if "brainage" in name)
assert "tensorflow_datasets" not in sys.modules
print(json.dumps(result))
"""


def decode_records(path: Path) -> tuple[list[str], np.ndarray]:
    """Subject ids and volumes of a TFDS TFRecord file, read with protobuf, zlib and numpy only."""
    import tensorflow as tf

    subjects, volumes = [], []
    for record in tf.data.TFRecordDataset(str(path)):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        subjects.append(feature["subject_id"].bytes_list.value[0].decode())
        raw = zlib.decompress(feature["volume"].bytes_list.value[0])
        volumes.append(np.frombuffer(raw, np.float16).reshape(SHAPE).astype(np.float32))
    return subjects, np.stack(volumes)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 2-epoch run on a toy cohort, evaluated once (calibration.json), exported as version 1."""
    root = tmp_path_factory.mktemp("export")
    volumes, ages, _ = toy_cohort(6, SHAPE, seed=2)
    subjects = np.array([f"test-{index:02d}" for index in range(6)])
    splits = {"train": toy_cohort(40, SHAPE, seed=1), "test": (volumes, ages, subjects)}
    store_toy_tfds(root / "tfds", "toy_export", SHAPE, splits)
    run_dir = root / "run"
    flags = ["--dataset", "toy_export/tiny", "--data_dir", str(root / "tfds"), "--out", str(run_dir)]
    assert train.main([*flags, *TINY_RUN_FLAGS]) == 0
    assert evaluate.main(["--run", str(run_dir)]) == 0
    assert export.main(["--run", str(run_dir)]) == 0
    (records_path,) = (root / "tfds" / "toy_export" / "tiny" / TOY_VERSION).glob("toy_export-test.tfrecord*")
    record_subjects, record_volumes = decode_records(records_path)
    # The wire format read by hand is the stored cohort: zlib-compressed float16 bytes.
    stored = dict(zip(subjects, volumes.astype(np.float16).astype(np.float32), strict=True))
    assert np.array_equal(record_volumes, np.stack([stored[subject] for subject in record_subjects]))
    volumes_path = root / "volumes.npy"
    np.save(volumes_path, record_volumes)
    return dict(run=run_dir, export=run_dir / "export" / "1", records=records_path, volumes=volumes_path)


def load_in_fresh_python(export_dir: Path, volumes_path: Path, records_path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_EXPORT, str(export_dir), str(volumes_path), str(records_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def keras_predictions(run_dir: Path, volumes: np.ndarray) -> np.ndarray:
    import keras

    import brainage_tf.models  # noqa: F401  (registers the model classes)

    model = keras.models.load_model(run_dir / "best_model.keras")
    return np.asarray(model(volumes[..., np.newaxis], training=False))[:, 0]


def test_both_signatures_match_keras_without_brainage_tf(exported):
    result = load_in_fresh_python(exported["export"], exported["volumes"], exported["records"])
    assert result["signatures"] == ["predict_examples", "serving_default"]
    served, from_records = result["serving_default"], result["predict_examples"]
    outputs = {"predicted_age", "corrected_predicted_age", "interval_low", "interval_high"}
    assert set(served) == set(from_records) == outputs
    predicted = np.array(served["predicted_age"])
    expected = keras_predictions(exported["run"], np.load(exported["volumes"]))
    assert predicted.shape == (6,) and np.max(np.abs(predicted - expected)) < 1e-5
    # The model tells the test volumes apart, so the export fed another tensor would not match it.
    assert np.ptp(expected) > DISTINCT_YEARS, expected
    for name in outputs:  # the real serialized records give what the volumes give
        np.testing.assert_allclose(from_records[name], served[name], rtol=0, atol=1e-6)
    calibration = json.loads((exported["run"] / "calibration.json").read_text())
    correction = BiasCorrection.from_json(calibration["bias_correction"])
    corrected = correction.apply_without_age(predicted)
    np.testing.assert_allclose(served["corrected_predicted_age"], corrected, rtol=1e-5, atol=1e-4)
    low, high = ConformalIntervals.from_json(calibration["conformal"]).interval(predicted)
    np.testing.assert_allclose(served["interval_low"], low, rtol=0, atol=1e-5)
    np.testing.assert_allclose(served["interval_high"], high, rtol=0, atol=1e-5)

    asset, metadata = result["asset"], result["metadata"]
    assert asset["grid_shape"] == list(SHAPE) and asset["registration"] == "none"
    assert asset["model"] == "slice_lstm" and asset["dataset"] == "toy_export/tiny"
    assert asset["normalization"] == "zscore" and asset["training_age_range"] == [0.0, 22.0]
    assert asset["grid"] is None  # the toy shape is no preset grid
    # The whole record, as training copied it from the dataset into config.json.
    recorded = json.loads((exported["run"] / "config.json").read_text())["preprocessing"]
    assert asset["preprocessing"] == recorded == toy_record(SHAPE)
    assert metadata["grid_shape"] == list(SHAPE) and metadata["registration"] == "none"
    assert metadata["model_name"] == "slice_lstm" and metadata["slice_axis"] == "axial"
    assert json.loads(metadata["metadata_json"]) == asset


def test_saved_model_cli_shows_and_runs_the_export(exported, tmp_path):
    cli = Path(sys.executable).with_name("saved_model_cli")
    command = (
        [str(cli)] if cli.exists() else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    )
    shown = subprocess.run([*command, "show", "--dir", str(exported["export"]), "--all"], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "signature_def['serving_default']" in shown.stdout
    assert "signature_def['predict_examples']" in shown.stdout
    assert "inputs['examples']" in shown.stdout and "shape: (-1, 16, 20, 14)" in shown.stdout
    volumes = np.load(exported["volumes"])[:2]
    np.save(tmp_path / "volume.npy", volumes)
    run_args = ["run", "--dir", str(exported["export"]), "--tag_set", "serve", "--signature_def"]
    run_args += ["serving_default", "--inputs", f"volume={tmp_path / 'volume.npy'}"]
    ran = subprocess.run([*command, *run_args], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    printed = re.search(r"Result for output key predicted_age:\s*\[([^\]]*)\]", ran.stdout)
    assert printed, ran.stdout
    ages = np.array(printed.group(1).split(), float)
    np.testing.assert_allclose(ages, keras_predictions(exported["run"], volumes), atol=1e-4)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_an_export_is_never_overwritten_and_versions_count_up(exported, capsys):
    run_dir, first = exported["run"], exported["export"]
    before = snapshot(first)
    assert export.main(["--run", str(run_dir), "--version", "1"]) == 2
    error = capsys.readouterr().err
    assert "exists" in error and "never overwritten" in error and len(error.strip().splitlines()) == 1
    assert snapshot(first) == before
    assert export.main(["--run", str(run_dir)]) == 0
    assert (run_dir / "export" / "2" / "saved_model.pb").is_file()
    assert next_version(run_dir / "export") == 3
    assert sorted(path.name for path in (run_dir / "export").iterdir()) == ["1", "2"]  # no staging left


def test_per_bin_intervals_follow_the_predicted_age(exported, tmp_path):
    import tensorflow as tf

    volumes = np.load(exported["volumes"])
    predicted = np.sort(keras_predictions(exported["run"], volumes))
    # The smallest prediction falls below the edges (global width, infinite), the rest in two bins.
    edges = (float(predicted[0] + predicted[1]) / 2, float(np.median(predicted)), 22.0)
    intervals = ConformalIntervals(0.9, edges, (1.0, 2.0), float("inf"), 6, (3, 2), (False, False))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "best_model.keras"):
        (run_dir / name).write_bytes((exported["run"] / name).read_bytes())
    (run_dir / "calibration.json").write_text(
        json.dumps({"bias_correction": None, "conformal": intervals.to_json()})
    )
    loaded = tf.saved_model.load(str(serving_export.export_run(run_dir, version=7)))
    outputs = {
        key: value.numpy() for key, value in loaded.signatures["serving_default"](volume=volumes).items()
    }
    assert set(outputs) == {"predicted_age", "interval_low", "interval_high"}
    low, high = intervals.interval(outputs["predicted_age"].astype(float))
    assert np.isinf(low).sum() == 1 and np.isinf(high).sum() == 1
    np.testing.assert_allclose(outputs["interval_low"], low, rtol=0, atol=1e-5)
    np.testing.assert_allclose(outputs["interval_high"], high, rtol=0, atol=1e-5)


def test_run_without_a_finished_model_exits(exported, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((exported["run"] / "config.json").read_text())
    assert export.main(["--run", str(unfinished)]) == 2
    error = capsys.readouterr().err
    assert "has no best_model.keras" in error and len(error.strip().splitlines()) == 1
    assert not (unfinished / "export").exists()


@pytest.mark.parametrize("registration", ["none", "affine"])
def test_the_preprocessing_keys_come_from_the_record_not_the_dataset_name(registration):
    record = preprocessing_record(PreprocessConfig(grid="small", registration=registration))
    # A JSON-config dataset: its name says nothing, and a misleading one changes nothing.
    for dataset in ("nihpd/mysite", "synthetic_cohort/tiny_affine"):
        config = TrainConfig(dataset=dataset, preprocessing=record)
        metadata = serving_export.export_metadata(config, (64, 80, 56), "best", {})
        assert metadata["preprocessing"] == record
        assert (metadata["grid"], metadata["grid_shape"], metadata["voxel_size_mm"]) == (
            "small",
            [64, 80, 56],
            3.0,
        )
        assert metadata["registration"] == registration
    with pytest.raises(UsageError, match=r"grid shape \[64, 80, 56\], but its model takes .* \(24, 30, 21\)"):
        serving_export.export_metadata(config, (24, 30, 21), "best", {})
    expected = f"preprocessing version is 0, this package's is {PREPROCESSING_VERSION}; retrain"
    with pytest.raises(UsageError, match=expected):
        serving_export.export_metadata(
            config.replace(preprocessing={**record, "version": 0}), SHAPE, "best", {}
        )


def test_a_run_without_a_record_exports_with_grid_null():
    # In-memory training: nothing says how the volumes were made, so predict will refuse the export.
    metadata = serving_export.export_metadata(
        TrainConfig(dataset="synthetic_cohort/small"), SHAPE, "best", {}
    )
    assert (metadata["grid"], metadata["voxel_size_mm"], metadata["registration"]) == (None, None, None)
    assert metadata["grid_shape"] == list(SHAPE) and metadata["preprocessing"] is None


def test_training_loads_its_selected_model_once_to_calibrate_and_export(served_model, tmp_path, monkeypatch):
    import keras

    from brainage_tf.training.run_directory import RunDirectory
    from brainage_tf.training.train_lib import export_for_serving

    run = copy_run(served_model["run"], tmp_path / "run")  # no calibration.json: it is fitted
    loads = []
    load_model = keras.models.load_model
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: loads.append(a) or load_model(*a, **k))
    export = export_for_serving(RunDirectory(run))
    assert (run / "calibration.json").is_file() and (export / "saved_model.pb").is_file()
    assert len(loads) == 1
