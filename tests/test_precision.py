"""`--precision`: a mixed_bfloat16 run trains, records its policy, and its export still serves float32.

A tiny run on a toy TFDS dataset goes through the command line with `--precision auto`
on a faked /proc/cpuinfo, so the resolution, config.json, training, export and the
served signature are all checked on one run.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from toy_data import TINY_RUN_FLAGS, store_toy_tfds, toy_cohort

from brainage_tf import data, export, train
from brainage_tf.training import precision
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.run_directory import RunDirectory
from brainage_tf.training.trainer import Trainer

SHAPE = (16, 20, 14)


@pytest.fixture(scope="module")
def toy_tfds(tmp_path_factory) -> str:
    data_dir = tmp_path_factory.mktemp("tfds")
    store_toy_tfds(data_dir, "toy_precision", SHAPE, {"train": toy_cohort(40, SHAPE, seed=1)})
    return str(data_dir)


@pytest.fixture
def bf16_cpu(tmp_path, monkeypatch):
    """/proc/cpuinfo of a CPU with AVX512_BF16, whatever machine runs the test."""
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    monkeypatch.setattr(precision, "CPUINFO", fake)


def test_auto_on_a_bf16_cpu_trains_in_mixed_bfloat16_and_exports_float32_serving(
    toy_tfds, bf16_cpu, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    flags = ["--dataset", "toy_precision/tiny", "--data_dir", toy_tfds, "--out", str(run_dir)]
    assert train.main([*flags, *TINY_RUN_FLAGS, "--epochs", "4", "--precision", "auto"]) == 0
    assert "--precision auto: mixed_bfloat16 (CPU has avx512_bf16)" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["precision"] == "mixed_bfloat16"
    train_mae = [float(row["train_mae"]) for row in RunDirectory(run_dir).read_history()]
    assert len(train_mae) == 4 and all(math.isfinite(mae) for mae in train_mae)
    assert train_mae[-1] < train_mae[0]

    model = keras.models.load_model(run_dir / "best_model.keras")
    encoder = model.get_layer("slice_encoder").layer
    assert encoder.get_layer("resnet18_stem_conv").compute_dtype == "bfloat16"
    assert model.get_layer("age").compute_dtype == "float32"

    assert export.main(["--run", str(run_dir)]) == 0
    loaded = tf.saved_model.load(str(run_dir / "export" / "1"))
    serve = loaded.signatures["serving_default"]
    assert serve.structured_input_signature[1]["volume"].dtype == tf.float32
    volumes = toy_cohort(3, SHAPE, seed=7)[0]
    served = serve(volume=tf.constant(volumes))["predicted_age"]
    assert served.dtype == tf.float32
    expected = keras.ops.convert_to_numpy(model(volumes[..., np.newaxis], training=False))[:, 0]
    np.testing.assert_allclose(served.numpy(), expected, rtol=0, atol=1e-3)
    metadata = loaded.metadata()
    assert metadata["precision"].numpy().decode() == "mixed_bfloat16"
    assert json.loads(metadata["metadata_json"].numpy())["precision"] == "mixed_bfloat16"


def test_unknown_precision_exits_with_one_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train.main(["--precision", "bfloat8", "--data_dir", str(tmp_path), "--out", str(run_dir)]) == 2
    error = capsys.readouterr().err
    assert "unknown precision 'bfloat8'" in error and len(error.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_mixed_float16_steps_through_a_loss_scale(tmp_path):
    config = TrainConfig.demo().replace(
        epochs=1, batch_size=4, width_multiplier=0.125, slice_size=(40, 40), pool_size=2
    )
    trainer = Trainer(
        config.replace(precision="mixed_float16"),
        data.in_memory_source(*toy_cohort(24, SHAPE)),
        tf.distribute.OneDeviceStrategy("/cpu:0"),
        RunDirectory(tmp_path / "run"),
        log=lambda line: None,
    )
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert trainer.model.get_layer("bilstm").compute_dtype == "float16"
    batches = trainer.distribute(trainer.epoch_dataset(0))
    losses = [trainer.train_step(next(batches)) for _ in range(2)]
    assert all(math.isfinite(loss) for loss in losses)
    assert int(trainer.optimizer.iterations.numpy()) == 2
