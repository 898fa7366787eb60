"""Tests of `python -m brainage_tf.train`: flags, the training core, resume and tf.distribute.

The training core runs on in-memory toy cohorts; the command line runs on a tiny
TFDS dataset written by this test, so nothing here depends on the project's
TFDS builders.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from brainage_tf import data
from brainage_tf.toy_data import toy_cohort
from brainage_tf.train import PRESETS, TrainConfig, build_parser, config_from_args, main, run_training

REPO = Path(__file__).resolve().parents[1]
TOY_SHAPE = (36, 20, 14)
TINY_FLAGS = ["--epochs", "1", "--batch-size", "2", "--width-multiplier", "0.125",
              "--slice-size", "40", "40", "--pool-size", "2"]


def _tiny_config(**overrides) -> TrainConfig:
    values = dict(epochs=3, batch_size=4, learning_rate=3e-3, halve_every_epochs=20,
                  width_multiplier=0.125, slice_size=(40, 40), pool_size=2)
    values.update(overrides)
    return TrainConfig(**values)


def _one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def _history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def toy_tfds(tmp_path_factory) -> str:
    """A prepared TFDS dataset `toy_cohort/tiny` (40 subjects, 36x20x14) in a temp data dir."""
    import tensorflow_datasets as tfds

    data_dir = tmp_path_factory.mktemp("tfds")
    volumes, ages, subject_ids = toy_cohort(40, TOY_SHAPE, seed=1)
    examples = [(index, {"volume": volume.astype(np.float16), "age": age, "subject_id": subject_id})
                for index, (volume, age, subject_id) in enumerate(zip(volumes, ages, subject_ids))]
    features = tfds.features.FeaturesDict({
        "volume": tfds.features.Tensor(shape=TOY_SHAPE, dtype=np.float16, encoding="zlib"),
        "age": np.float32,
        "subject_id": tfds.features.Text(),
    })
    tfds.dataset_builders.store_as_tfds_dataset(
        name="toy_cohort", version="1.0.0", features=features, split_datasets={"train": examples},
        config="tiny", data_dir=str(data_dir))
    return str(data_dir)


def _run_cli(args, env_extra=None, cwd=None) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    env.pop("TF_CONFIG", None)
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "brainage_tf.train", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


# --- flags -------------------------------------------------------------------------------------

def test_presets_fill_unset_flags_and_explicit_flags_win():
    paper = config_from_args(build_parser().parse_args(["--preset", "paper"]))
    assert (paper.epochs, paper.batch_size) == (60, 1)
    assert (paper.learning_rate, paper.halve_every_epochs) == (1e-4, 15)
    assert paper.slice_size == (50, 50) and paper.width_multiplier == 1.0
    demo = config_from_args(build_parser().parse_args(["--epochs", "3", "--train-ages", "0", "6"]))
    assert demo.epochs == 3 and demo.batch_size == PRESETS["demo"]["batch_size"]
    assert (demo.min_age, demo.max_age) == (0.0, 6.0)


def test_unknown_model_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "vgg16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'vgg16'" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--train-ages", "10", "5"], "minimum age 10.0 is above maximum age 5.0"),
    (["--dataset", "no_such_cohort/small"], "unknown TFDS dataset 'no_such_cohort/small'"),
    (["--validation-fraction", "1.5"], "--validation-fraction"),
])
def test_bad_flags_exit_before_any_work(flags, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*flags, "--data_dir", str(tmp_path / "tfds"), "--out", str(run_dir)]) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_age_range_selecting_no_subject_exits(toy_tfds, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["--dataset", "toy_cohort/tiny", "--data_dir", toy_tfds, "--train-ages", "30", "40",
                 "--out", str(run_dir)])
    assert code == 2
    assert "ages 30.0-40.0 select no example of toy_cohort/tiny:train" in capsys.readouterr().err
    assert not run_dir.exists()


def test_volumes_too_small_for_the_model_exit(toy_tfds, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["--dataset", "toy_cohort/tiny", "--data_dir", toy_tfds, "--model", "slice_lstm",
                 "--slice-size", "20", "20", "--out", str(run_dir)])
    assert code == 2
    assert "too small for ResNet18" in capsys.readouterr().err
    assert not run_dir.exists()


def test_existing_run_dir_is_never_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "history.csv").write_text("precious\n")
    assert main(["--out", str(run_dir)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (run_dir / "history.csv").read_text() == "precious\n"
    assert main(["--out", str(tmp_path / "other"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


# --- training core -----------------------------------------------------------------------------

@pytest.mark.parametrize("model, shape", [("slice_lstm", (16, 20, 14)), ("resnet3d", (36, 36, 36))])
def test_training_learns_a_toy_signal(model, shape, tmp_path):
    volumes, ages, subject_ids = toy_cohort(48, shape, seed=0)
    source = data.in_memory_source(volumes, ages, subject_ids)
    results = run_training(_tiny_config(model=model, epochs=8), source, tmp_path / "run", _one_device(),
                           log=lambda line: None)
    history = _history(tmp_path / "run")
    assert [int(row["epoch"]) for row in history] == list(range(1, 9))
    assert float(history[-1]["train_mae"]) < 0.6 * float(history[0]["train_mae"])
    assert results["best_val_mae"] < 0.5 * results["mean_predictor_val_mae"]
    assert (tmp_path / "run" / "best_model.keras").is_file()


def test_resume_continues_at_the_next_epoch_with_optimizer_and_schedule(tmp_path):
    volumes, ages, subject_ids = toy_cohort(24, (16, 20, 14), seed=2)
    source = data.in_memory_source(volumes, ages, subject_ids)
    config = _tiny_config(epochs=3, halve_every_epochs=1, learning_rate=1e-3)
    run_dir = tmp_path / "run"
    run_training(config, source, run_dir, _one_device(), log=lambda line: None, stop_after_epochs=1)
    assert [row["epoch"] for row in _history(run_dir)] == ["1"]
    logged = []
    results = run_training(config, source, run_dir, _one_device(), resume=True, log=logged.append)
    assert logged[0].startswith("resumed") and logged[0].endswith("after epoch 1")
    history = _history(run_dir)
    assert [row["epoch"] for row in history] == ["1", "2", "3"]
    # The learning rate halves every epoch, so the resumed epochs run at 1/2 and 1/4 of it.
    assert [float(row["learning_rate"]) for row in history] == [1e-3, 5e-4, 2.5e-4]
    assert results["completed_epochs"] == 3
    # Adam's step counter (which also positions the schedule) continued from the checkpoint.
    assert results["optimizer_steps"] == 3 * results["steps_per_epoch"]


# --- command line and tf.distribute --------------------------------------------------------------

def test_command_line_run_writes_a_complete_run_directory(toy_tfds, tmp_path):
    import keras

    run_dir = tmp_path / "run"
    assert main(["--dataset", "toy_cohort/tiny", "--data_dir", toy_tfds, "--out", str(run_dir),
                 "--strategy", "one_device", *TINY_FLAGS]) == 0
    assert {path.name for path in run_dir.iterdir()} >= {
        "config.json", "history.csv", "results.json", "best_model.keras", "checkpoints", "tensorboard"}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "toy_cohort/tiny" and config["epochs"] == 1
    assert any((run_dir / "tensorboard").iterdir())
    model = keras.models.load_model(run_dir / "best_model.keras")
    assert model.input.shape == (None, *TOY_SHAPE, 1)
    assert main(["--out", str(run_dir), "--resume", "--epochs", "2"]) == 0
    assert [row["epoch"] for row in _history(run_dir)] == ["1", "2"]


@pytest.mark.parametrize("model", ["slice_lstm", "resnet3d"])
def test_mirrored_on_two_logical_cpus(model, toy_tfds, tmp_path):
    run_dir = tmp_path / "run"
    process = _run_cli(["--dataset", "toy_cohort/tiny", "--data_dir", toy_tfds, "--model", model,
                        "--strategy", "mirrored", "--logical-cpus", "2", "--out", str(run_dir),
                        *TINY_FLAGS])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    results = json.loads((run_dir / "results.json").read_text())
    assert results["replicas"] == 2 and results["global_batch_size"] == 4
    assert len(_history(run_dir)) == 1


@pytest.mark.slow
def test_multi_worker_with_two_local_processes(toy_tfds, tmp_path):
    # The loop is model-agnostic and resnet3d is covered under mirrored; slice_lstm keeps this fast.
    model = "slice_lstm"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    run_dir = tmp_path / "run"
    processes = [
        _run_cli(["--dataset", "toy_cohort/tiny", "--data_dir", toy_tfds, "--model", model,
                  "--strategy", "multi_worker", "--out", str(run_dir), *TINY_FLAGS],
                 env_extra={"TF_CONFIG": json.dumps({"cluster": cluster,
                                                     "task": {"type": "worker", "index": index}})})
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output
    chief_results = json.loads((run_dir / "results.json").read_text())
    assert chief_results["replicas"] == 2 and chief_results["global_batch_size"] == 4
    assert (run_dir / "best_model.keras").is_file() and len(_history(run_dir)) == 1
    worker_dir = tmp_path / "run-worker1"
    # The other worker keeps its own checkpoints (for resume) but writes no history or model.
    assert (worker_dir / "checkpoints" / "checkpoint").is_file()
    assert not (worker_dir / "history.csv").exists() and not (worker_dir / "best_model.keras").exists()
    # Both workers trained the same replicated model: identical validation MAE per epoch.
    chief_lines = [line for line in outputs[0].splitlines() if line.startswith("epoch ")]
    worker_lines = [line for line in outputs[1].splitlines() if line.startswith("epoch ")]
    assert [line.split("val MAE")[1].split()[0] for line in chief_lines] == \
           [line.split("val MAE")[1].split()[0] for line in worker_lines]


@pytest.mark.slow
def test_keras_fit_fails_under_multi_worker_so_train_uses_its_own_loop(tmp_path):
    # Documents the Keras 3 limit behind the custom loop (keras-team/keras#20585): model.fit of a
    # one-layer model under MultiWorkerMirroredStrategy with 2 local workers. If this starts
    # passing, model.fit has become an option for multi_worker.
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    processes = [
        subprocess.Popen([sys.executable, str(REPO / "tests" / "keras_fit_multi_worker_probe.py")],
                         env=dict(env, TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": index}})),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        for index in range(2)
    ]
    outputs = [process.communicate(timeout=180)[0] for process in processes]
    for output in outputs:
        assert "FIT_FAILED: ValueError: Attempt to convert a value (PerReplica" in output, output
