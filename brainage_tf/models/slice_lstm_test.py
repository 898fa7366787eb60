"""Tests of slice_lstm (2D-ResNet18+LSTM)."""

import keras
import numpy as np
import pytest

from brainage_tf.models.slice_lstm import SliceLSTM, slice_permutation

VOLUME_SHAPE = (16, 20, 14)


def _tiny(**kwargs):
    arguments = dict(slice_size=(40, 40), pool_size=2, width_multiplier=0.125)
    arguments.update(kwargs)
    return SliceLSTM(VOLUME_SHAPE, **arguments)


def _volumes(count, seed=0):
    return np.random.default_rng(seed).standard_normal((count, *VOLUME_SHAPE, 1)).astype(np.float32)


def test_output_shape_and_sequence_length():
    model = _tiny(pool_size=4)
    assert model(_volumes(2)).shape == (2, 1)
    # 14 axial slices pooled by 4 -> 3 LSTM steps of 2 x 64 units.
    features = model.get_layer("slice_encoder").output.shape[-1]
    assert model.get_layer("slice_pool").output.shape == (None, 3, features)
    assert model.get_layer("bilstm").output.shape == (None, 3, 128)


@pytest.mark.parametrize(
    "axis, expected_axes", [("axial", (2, 0, 1)), ("coronal", (1, 0, 2)), ("sagittal", (0, 1, 2))]
)
def test_slices_run_along_the_chosen_axis(axis, expected_axes):
    model = _tiny(slice_axis=axis)
    volume = _volumes(1)
    to_slices = keras.Model(model.input, model.get_layer("to_slices").output)
    slices = keras.ops.convert_to_numpy(to_slices(volume))
    np.testing.assert_array_equal(slices[0, ..., 0], np.transpose(volume[0, ..., 0], expected_axes))
    assert slice_permutation(axis)[-1] == 4


def test_slices_are_resized_inside_the_model():
    model = _tiny()
    assert model.get_layer("slice_resize").output.shape == (None, 14, 40, 40, 1)


def test_instance_norm_normalises_every_slice_per_channel():
    model = _tiny()
    volume = _volumes(2, seed=3) * 4.0 + 7.0
    resized = keras.Model(model.input, model.get_layer("slice_resize").output)(volume)
    slices = keras.ops.reshape(resized, (-1, 40, 40, 1))
    encoder = model.get_layer("slice_encoder").layer
    stem_norm = keras.Model(encoder.input, encoder.get_layer("resnet18_stem_norm").output)
    features = keras.ops.convert_to_numpy(stem_norm(slices))
    assert features.shape[0] == 2 * 14
    np.testing.assert_allclose(features.mean(axis=(1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(features.var(axis=(1, 2)), 1.0, atol=2e-2)


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = _tiny(slice_axis="coronal")
    volumes = _volumes(2, seed=4)
    model.save(tmp_path / "slice_lstm.keras")
    reloaded = keras.models.load_model(tmp_path / "slice_lstm.keras")
    assert isinstance(reloaded, SliceLSTM)
    assert reloaded.get_config() == model.get_config()
    np.testing.assert_array_equal(reloaded.predict(volumes, verbose=0), model.predict(volumes, verbose=0))


def test_pool_size_larger_than_slice_count_is_refused():
    with pytest.raises(ValueError, match="pool_size"):
        _tiny(pool_size=15)


def test_unknown_slice_axis_is_refused():
    with pytest.raises(ValueError, match="slice_axis"):
        _tiny(slice_axis="oblique")


def test_mixed_bfloat16_computes_in_bfloat16_but_the_head_and_variables_stay_float32(tmp_path):
    model = _tiny(precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # not leaked out of model construction
    encoder = model.get_layer("slice_encoder").layer
    assert encoder.get_layer("resnet18_stage1_block1_1_conv").compute_dtype == "bfloat16"
    assert model.get_layer("bilstm").compute_dtype == "bfloat16"
    assert model.get_layer("age").compute_dtype == "float32"
    floats = [variable for variable in model.variables if keras.backend.is_float_dtype(variable.dtype)]
    assert floats and {variable.dtype for variable in floats} == {"float32"}
    volumes = _volumes(2, seed=5)
    assert keras.ops.convert_to_numpy(model(volumes)).dtype == np.float32
    model.save(tmp_path / "mixed.keras")
    reloaded = keras.models.load_model(tmp_path / "mixed.keras")
    assert reloaded.precision == "mixed_bfloat16"
    assert (
        reloaded.get_layer("slice_encoder").layer.get_layer("resnet18_stem_conv").compute_dtype == "bfloat16"
    )
    np.testing.assert_array_equal(reloaded.predict(volumes, verbose=0), model.predict(volumes, verbose=0))
