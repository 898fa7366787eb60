"""What the training core promises, each checked so that breaking it fails a test.

Runs on in-memory toy cohorts (tests/toy_data.py) under OneDeviceStrategy; the
command line and the multi-device strategies are in test_train_cli.py.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from toy_data import toy_cohort

from brainage_tf import data
from brainage_tf.errors import UsageError
from brainage_tf.preprocessing import PreprocessConfig
from brainage_tf.preprocessing_record import preprocessing_record
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.fused_adam import FusedAdam
from brainage_tf.training.run_directory import RunDirectory
from brainage_tf.training.trainer import Trainer, selection_of, with_preprocessing

TESTS = Path(__file__).resolve().parent
SLICE_SHAPE = (16, 20, 14)


def tiny_config(**changes) -> TrainConfig:
    """The demo preset shrunk to seconds: an eighth-width ResNet18 on 40x40 slices."""
    return TrainConfig.demo().replace(
        **{
            **dict(
                epochs=3,
                batch_size=4,
                learning_rate=3e-3,
                halve_every_epochs=20,
                width_multiplier=0.125,
                slice_size=(40, 40),
                pool_size=2,
            ),
            **changes,
        }
    )


def toy_source(num_subjects: int, shape=SLICE_SHAPE, seed: int = 0) -> data.ExampleSource:
    return data.in_memory_source(*toy_cohort(num_subjects, shape, seed=seed))


def make_trainer(config: TrainConfig, source: data.ExampleSource, run_dir: Path, log=None) -> Trainer:
    return Trainer(
        config,
        source,
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        RunDirectory(run_dir),
        log=log or (lambda line: None),
    )


@pytest.mark.parametrize("model, shape", [("slice_lstm", SLICE_SHAPE), ("resnet3d", (36, 36, 36))])
def test_training_learns_a_toy_signal(model, shape, tmp_path):
    trainer = make_trainer(tiny_config(model=model, epochs=8), toy_source(48, shape), tmp_path / "run")
    results = trainer.fit()
    history = trainer.run.read_history()
    assert [int(row["epoch"]) for row in history] == list(range(1, 9))
    assert float(history[-1]["train_mae"]) < 0.6 * float(history[0]["train_mae"])
    assert results["best_val_mae"] < 0.5 * results["mean_predictor_val_mae"]
    assert trainer.run.best_model_path.is_file()


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path):
    config = tiny_config(epochs=4, halve_every_epochs=1, learning_rate=2e-3)
    source = toy_source(24, seed=2)
    uninterrupted = make_trainer(config, source, tmp_path / "straight")
    uninterrupted.fit()

    make_trainer(config, source, tmp_path / "killed").fit(stop_after_epochs=2)
    logged = []
    resumed = make_trainer(config, source, tmp_path / "killed", log=logged.append)
    resumed.fit(resume=True)

    assert any(line.endswith("after epoch 2") for line in logged)
    straight_rows, resumed_rows = uninterrupted.run.read_history(), resumed.run.read_history()
    assert [row["epoch"] for row in resumed_rows] == ["1", "2", "3", "4"]
    for straight, again in zip(straight_rows, resumed_rows, strict=True):
        for field in ("train_mae", "val_mae", "learning_rate"):
            assert float(again[field]) == pytest.approx(float(straight[field]), rel=1e-5, abs=1e-6), field
    straight_weights, resumed_weights = uninterrupted.model.get_weights(), resumed.model.get_weights()
    assert len(straight_weights) == len(resumed_weights) > 10
    for straight, again in zip(straight_weights, resumed_weights, strict=True):
        np.testing.assert_allclose(again, straight, rtol=1e-4, atol=1e-6)
    # The resumed epochs changed the weights: equality above is not two untouched initialisations.
    first_session = make_trainer(config, source, tmp_path / "two_epochs")
    first_session.fit(stop_after_epochs=2)
    assert (
        max(
            np.abs(a - b).max()
            for a, b in zip(first_session.model.get_weights(), straight_weights, strict=True)
        )
        > 1e-4
    )


def test_paper_schedule_is_adam_halving_after_every_15_epochs(tmp_path):
    # 12 subjects, no validation part, batch 1 at the paper's settings: 12 steps per epoch.
    config = TrainConfig.paper().replace(width_multiplier=0.125, slice_size=(40, 40), pool_size=2)
    trainer = make_trainer(config, toy_source(12), tmp_path / "run")
    assert trainer.plan.steps_per_epoch == 12
    # Keras Adam with its update in one kernel (fused_adam_test.py: equal to Keras Adam's).
    assert type(trainer.optimizer) is FusedAdam and isinstance(trainer.optimizer, keras.optimizers.Adam)
    expected = {
        0: 1e-4,
        15 * 12 - 1: 1e-4,
        15 * 12: 5e-5,
        30 * 12 - 1: 5e-5,
        30 * 12: 2.5e-5,
        45 * 12: 1.25e-5,
        60 * 12 - 1: 1.25e-5,
    }
    for step, learning_rate in expected.items():
        trainer.optimizer.iterations.assign(step)
        assert trainer.learning_rate == pytest.approx(learning_rate, rel=1e-6), step


def test_learning_rate_logged_per_epoch_follows_the_schedule_in_a_real_run(tmp_path):
    trainer = make_trainer(
        tiny_config(epochs=5, halve_every_epochs=2, learning_rate=1e-3), toy_source(24), tmp_path / "run"
    )
    results = trainer.fit()
    assert results["steps_per_epoch"] > 1
    assert [float(row["learning_rate"]) for row in trainer.run.read_history()] == [
        1e-3,
        1e-3,
        5e-4,
        5e-4,
        2.5e-4,
    ]


def test_train_step_loss_is_the_mean_absolute_error_of_its_predictions(tmp_path):
    trainer = make_trainer(tiny_config(), toy_source(24), tmp_path / "run")
    one_batch = trainer.epoch_dataset(0).take(1)
    volumes, ages = next(iter(one_batch))
    # GroupNormalization has no training-mode difference and there is no dropout,
    # so these are the predictions the step computes its loss on.
    predicted = trainer.model(volumes, training=True).numpy()[:, 0]
    assert trainer.train_step(next(trainer.distribute(one_batch))) == pytest.approx(
        float(np.mean(np.abs(predicted - ages.numpy()))), rel=1e-5
    )


def test_reported_validation_mae_is_the_mean_absolute_error_of_the_saved_model(tmp_path):
    volumes, ages, subject_ids = toy_cohort(40, SLICE_SHAPE, seed=3)
    trainer = make_trainer(
        tiny_config(epochs=2), data.in_memory_source(volumes, ages, subject_ids), tmp_path / "run"
    )
    results = trainer.fit()
    # The epoch is picked on the selection part of validation only: its calibration part stays unseen.
    labels = data.Labels(ages, subject_ids)
    in_validation = data.role_mask(labels, selection_of(trainer.config), "selection")
    in_calibration = data.role_mask(labels, selection_of(trainer.config), "calibration")
    assert in_validation.sum() > 0 and in_calibration.sum() > 0
    best = keras.models.load_model(trainer.run.best_model_path)
    predicted = best.predict(volumes[in_validation][..., None], verbose=0)[:, 0]
    numpy_mae = float(np.mean(np.abs(predicted - ages[in_validation])))
    assert results["best_val_mae"] == pytest.approx(numpy_mae, rel=1e-4)
    best_row = min(trainer.run.read_history(), key=lambda row: float(row["val_mae"]))
    assert float(best_row["val_mae"]) == pytest.approx(numpy_mae, rel=1e-4)


def test_mirrored_on_two_logical_cpus_gives_the_one_device_update(tmp_path):
    # Logical CPUs must be configured before TensorFlow starts, so this runs in a fresh process.
    process = subprocess.run(
        [sys.executable, str(TESTS / "distribute_probe.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [1, 2]
    assert report["loss"][0] == pytest.approx(report["loss"][1], rel=1e-5)
    assert report["max_weight_change"] > 1e-4
    assert report["max_weight_difference"] < 1e-5 * max(1.0, report["max_weight_change"])


def test_no_validation_trains_on_every_subject_and_keeps_the_final_epoch(tmp_path):
    config = tiny_config(epochs=3, validation_fraction=0.0)
    trainer = make_trainer(config, toy_source(20), tmp_path / "run")
    results = trainer.fit()
    assert results["num_train"] == 20 and results["num_val"] == 0
    assert results["model_selection"] == "final epoch" and results["best_val_mae"] is None
    assert [row["val_mae"] for row in trainer.run.read_history()] == ["", "", ""]
    saved = keras.models.load_model(trainer.run.best_model_path)
    probe = np.random.default_rng(0).normal(size=(2, *SLICE_SHAPE, 1)).astype(np.float32)
    np.testing.assert_allclose(
        saved.predict(probe, verbose=0), trainer.model.predict(probe, verbose=0), rtol=1e-5, atol=1e-5
    )


def test_paper_preset_keeps_every_training_subject_and_demo_holds_out_a_fifth():
    assert TrainConfig.paper().validation_fraction == 0.0
    assert TrainConfig.demo().validation_fraction == 0.2


def test_a_run_from_before_the_calibration_part_reads_back_with_none():
    # Such a run picked its epoch on every validation subject: none may calibrate its intervals.
    older = TrainConfig.demo().to_json()
    del older["calibration_fraction"], older["calibration_seed"]
    assert TrainConfig.from_json(older).calibration_fraction == 0.0
    assert TrainConfig.from_json(TrainConfig.demo().to_json()).calibration_fraction == 0.5


def test_paper_preset_on_another_grid_warns(tmp_path):
    logged = []
    config = TrainConfig.paper().replace(epochs=1, width_multiplier=0.125, slice_size=(40, 40), pool_size=2)
    make_trainer(config, toy_source(8), tmp_path / "run", log=logged.append)
    assert any(line.startswith("warning: --preset paper on volumes of shape (16, 20, 14)") for line in logged)
    logged.clear()
    make_trainer(config.replace(preset="demo"), toy_source(8), tmp_path / "run2", log=logged.append)
    assert not any(line.startswith("warning") for line in logged)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(min_age=30.0, max_age=40.0), "select no example"),
        (dict(batch_size=64), "fewer than one global batch"),
    ],
)
def test_selections_that_cannot_train_are_usage_errors(changes, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        make_trainer(tiny_config(**changes), toy_source(24), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_new_run_takes_its_datasets_record_and_a_resume_refuses_another():
    source = toy_source(4)
    assert source.preprocessing is None and with_preprocessing(TrainConfig(), source).preprocessing is None
    record = preprocessing_record(PreprocessConfig(grid="tiny", registration="none"))
    recorded = dataclasses.replace(source, preprocessing=record)
    started = with_preprocessing(TrainConfig(), recorded)
    assert started.preprocessing == record
    assert with_preprocessing(started, recorded) == started  # a resume on the same data
    rebuilt = dataclasses.replace(source, preprocessing={**record, "registration": "affine"})
    with pytest.raises(UsageError, match=r"\(run vs dataset: registration 'none' vs 'affine'\); train a new"):
        with_preprocessing(started, rebuilt)


def test_progress_bar_within_each_epoch_only_when_asked(tmp_path, capsys):
    config = tiny_config(epochs=1)
    Trainer(
        config,
        toy_source(24),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        RunDirectory(tmp_path / "a"),
        log=lambda line: None,
        progress_bar=True,
    ).fit()
    bar = capsys.readouterr().err
    assert "epoch 1/1" in bar and "step" in bar
    make_trainer(config, toy_source(24), tmp_path / "b").fit()
    assert "step" not in capsys.readouterr().err
