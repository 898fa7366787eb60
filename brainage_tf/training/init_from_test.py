"""Fine-tuning on tiny in-memory models: the parent's exact weights, a frozen encoder, an exact resume.

The parents are freshly built models saved as run directories (no training needed: any
weights other than the child's own initialisation show where the child started).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from brainage_tf import data
from brainage_tf.errors import UsageError
from brainage_tf.model_registry import get_model_spec
from brainage_tf.models import build_model
from brainage_tf.preprocessing import PreprocessConfig
from brainage_tf.preprocessing_record import preprocessing_record
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.init_from import Parent, check_preprocessing, start_from_parent, weights_fingerprint
from brainage_tf.training.run_directory import RunDirectory
from brainage_tf.training.trainer import Trainer

# resnet3d needs 33 voxels along one axis; slice_lstm takes the same volumes.
SHAPE = (36, 20, 14)


def tiny(**changes) -> TrainConfig:
    """The demo preset shrunk to seconds."""
    values = dict(epochs=1, batch_size=4, learning_rate=3e-3, width_multiplier=0.125, slice_size=(40, 40))
    return TrainConfig.demo().replace(**{**values, "pool_size": 2, "strategy": "one_device", **changes})


def source(count: int = 16) -> data.ExampleSource:
    rng = np.random.default_rng(0)
    volumes = rng.normal(size=(count, *SHAPE)).astype(np.float32)
    return data.in_memory_source(volumes, rng.uniform(0, 22, count), [f"sub-{i:03d}" for i in range(count)])


def saved_parent(folder: Path, config: TrainConfig) -> Path:
    """A parent run directory: config.json and best_model.keras of a model built with seed 1."""
    keras.utils.set_random_seed(1)
    run = RunDirectory(folder)
    run.start(config, resume=False)
    run.save_model(build_model(volume_shape=SHAPE, **config.model_arguments()))
    return folder


def trainer_for(config: TrainConfig, run_dir: Path) -> Trainer:
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    return Trainer(config, source(), strategy, RunDirectory(run_dir), log=lambda line: None)


def encoder_gradients(trainer: Trainer, encoder: set[str]) -> list[float]:
    """Largest |gradient| of the training loss on one batch, per encoder weight."""
    volumes, ages = next(iter(trainer.epoch_dataset(0)))
    weights = [
        weight.value for layer in trainer.model.layers if layer.name in encoder for weight in layer.weights
    ]
    with tf.GradientTape() as tape:
        tape.watch(weights)
        loss = tf.reduce_mean(tf.abs(trainer.model(volumes, training=True)[:, 0] - ages))
    return [float(tf.reduce_max(tf.abs(gradient))) for gradient in tape.gradient(loss, weights)]


@pytest.mark.parametrize("model, precision", [("slice_lstm", "float32"), ("resnet3d", "mixed_bfloat16")])
def test_a_frozen_encoder_keeps_the_parents_weights_bit_for_bit_while_the_rest_trains(
    model, precision, tmp_path
):
    parent_dir = saved_parent(tmp_path / "parent", tiny(model=model))
    parent = keras.models.load_model(parent_dir / "best_model.keras")
    # Seed 7: the child's own initialisation differs from the parent's everywhere.
    trainer = trainer_for(
        tiny(model=model, precision=precision, init_from=str(parent_dir), freeze="encoder", seed=7),
        tmp_path / "run",
    )
    trainer.fit()
    assert trainer.optimizer.iterations.numpy() >= 2
    encoder = set(get_model_spec(model).encoder_layers)
    # The loss does depend on every encoder weight: they stay put because they are frozen.
    assert min(encoder_gradients(trainer, encoder)) > 0.0
    weighted = [layer for layer in trainer.model.layers if layer.weights]
    assert encoder <= {layer.name for layer in weighted} and len(weighted) > len(encoder)
    for layer in weighted:
        theirs = parent.get_layer(layer.name).get_weights()
        changes = [
            np.abs(mine - their).max() for mine, their in zip(layer.get_weights(), theirs, strict=True)
        ]
        if layer.name in encoder:
            assert max(changes) == 0.0, layer.name  # bit-equal: the optimizer never touched them
        else:
            assert min(changes) > 0.0, layer.name  # every weight of every other layer trained


def test_a_resumed_finetuning_run_equals_an_uninterrupted_one_and_never_reads_its_parent_again(tmp_path):
    parent_dir = saved_parent(tmp_path / "parent", tiny())
    config = tiny(init_from=str(parent_dir), freeze="encoder", epochs=2, seed=7)
    straight = trainer_for(config, tmp_path / "straight")
    straight.fit()
    trainer_for(config, tmp_path / "killed").fit(stop_after_epochs=1)
    shutil.rmtree(parent_dir)  # a resume that re-initialised from the parent would fail now
    recorded = RunDirectory(tmp_path / "killed").read_config()
    resumed = trainer_for(recorded, tmp_path / "killed")
    resumed.fit(resume=True)
    assert recorded.init_fingerprint == straight.config.init_fingerprint is not None
    for row, again in zip(straight.run.read_history(), resumed.run.read_history(), strict=True):
        for field in ("epoch", "train_mae", "val_mae", "learning_rate"):
            assert float(again[field]) == pytest.approx(float(row[field]), rel=1e-5, abs=1e-6), field
    for straight_weight, resumed_weight in zip(
        straight.model.get_weights(), resumed.model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(resumed_weight, straight_weight, rtol=1e-4, atol=1e-6)


def test_a_run_starts_from_the_parents_exact_weights_and_refuses_a_parent_that_changed(tmp_path):
    parent_dir = saved_parent(tmp_path / "parent", tiny())
    parent = keras.models.load_model(parent_dir / "best_model.keras").get_weights()
    keras.utils.set_random_seed(7)
    model = build_model(volume_shape=SHAPE, **tiny().model_arguments())
    started = start_from_parent(model, tiny(init_from=str(parent_dir)), source(), log=lambda line: None)
    assert all(np.array_equal(mine, theirs) for mine, theirs in zip(model.get_weights(), parent, strict=True))
    assert started.init_from == str(parent_dir.absolute())
    assert started.init_fingerprint == weights_fingerprint(parent)
    assert started.lineage == {
        "path": started.init_from,
        "fingerprint": started.init_fingerprint,
        "freeze": "none",
    }
    recorded = started.replace(init_fingerprint="sha256:" + "0" * 64)
    with pytest.raises(UsageError, match=r"not the sha256:0{64} the run recorded: the parent changed\.$"):
        start_from_parent(model, recorded, source(), log=lambda line: None)


def test_the_training_data_must_be_preprocessed_as_the_parents():
    record = preprocessing_record(PreprocessConfig(grid="small", registration="none"))
    recorded = Parent(Path("/runs/parent"), "run", {"model": "slice_lstm"}, record)
    check_preprocessing(recorded, record, "site:train")
    check_preprocessing(recorded, None, "in-memory")  # in-memory data carry no record to compare
    other = {**record, "registration": "affine"}
    with pytest.raises(UsageError) as refused:
        check_preprocessing(recorded, other, "site:train")
    assert str(refused.value) == (
        "site:train was preprocessed otherwise than the training data of the parent /runs/parent (parent "
        "vs dataset: registration 'none' vs 'affine'); fine-tune on a dataset built with its settings."
    )
    with pytest.raises(UsageError, match=r"^--init-from /runs/parent: it has no preprocessing record, so"):
        check_preprocessing(Parent(Path("/runs/parent"), "run", {}, None), record, "site:train")


def test_a_config_from_before_fine_tuning_reads_back_as_trained_from_scratch():
    older = TrainConfig.demo().to_json()
    for key in ("init_from", "init_fingerprint", "freeze"):
        del older[key]
    config = TrainConfig.from_json(older)
    assert config.lineage is None and config.freeze == "none"
