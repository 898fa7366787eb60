"""Tests of the folded TimeDistributed and the instance-norm helper."""

import keras
import numpy as np

from brainage_tf.models.layers import FoldedTimeDistributed, dtype_policy_scope, instance_norm


def test_folded_time_distributed_matches_keras_time_distributed():
    conv = keras.layers.Conv2D(3, 3, padding="same")
    inputs = np.random.default_rng(0).standard_normal((2, 5, 8, 8, 1)).astype(np.float32)
    folded = FoldedTimeDistributed(conv)(inputs)
    looped = keras.layers.TimeDistributed(conv)(inputs)
    assert folded.shape == (2, 5, 8, 8, 3)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(folded), keras.ops.convert_to_numpy(looped), atol=1e-5
    )


def test_folded_time_distributed_keeps_time_steps_apart():
    # Slice t of the output must depend only on slice t of the input.
    layer = FoldedTimeDistributed(keras.layers.GlobalAveragePooling2D())
    inputs = np.zeros((1, 3, 4, 4, 2), np.float32)
    inputs[0, 1] = 5.0
    outputs = keras.ops.convert_to_numpy(layer(inputs))
    np.testing.assert_allclose(outputs[0, :, 0], [0.0, 5.0, 0.0])


def test_folded_time_distributed_round_trips_through_keras_file(tmp_path):
    inputs = keras.Input((4, 6, 6, 1))
    outputs = FoldedTimeDistributed(keras.layers.Conv2D(2, 3), name="folded")(inputs)
    model = keras.Model(inputs, outputs)
    volume = np.random.default_rng(1).standard_normal((2, 4, 6, 6, 1)).astype(np.float32)
    model.save(tmp_path / "folded.keras")
    reloaded = keras.models.load_model(tmp_path / "folded.keras")
    assert isinstance(reloaded.get_layer("folded"), FoldedTimeDistributed)
    np.testing.assert_array_equal(reloaded.predict(volume, verbose=0), model.predict(volume, verbose=0))


def test_instance_norm_normalises_each_example_and_channel_separately():
    rng = np.random.default_rng(2)
    # Two examples with very different scales and offsets per channel.
    features = np.stack([rng.normal(10.0, 3.0, (7, 9, 4)), rng.normal(-2.0, 0.1, (7, 9, 4))])
    normalised = keras.ops.convert_to_numpy(instance_norm(4, name="norm")(features.astype(np.float32)))
    np.testing.assert_allclose(normalised.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(axis=(1, 2)), 1.0, atol=1e-2)


def test_dtype_policy_scope_restores_the_global_policy_even_after_an_error():
    assert keras.config.dtype_policy().name == "float32"
    with dtype_policy_scope("mixed_bfloat16"):
        assert keras.layers.Dense(1).compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"
    try:
        with dtype_policy_scope("mixed_float16"):
            raise RuntimeError("model construction failed")
    except RuntimeError:
        pass
    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Dense(1).compute_dtype == "float32"
