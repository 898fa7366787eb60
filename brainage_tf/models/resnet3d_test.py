"""Tests of the resnet3d baseline."""

import keras
import numpy as np

from brainage_tf.models import build_model
from brainage_tf.models.resnet3d import ResNet3D

VOLUME_SHAPE = (36, 20, 14)


def test_output_shape():
    model = ResNet3D(VOLUME_SHAPE, width_multiplier=0.125)
    assert model(np.zeros((2, *VOLUME_SHAPE, 1), np.float32)).shape == (2, 1)
    assert model.input.shape == (None, *VOLUME_SHAPE, 1)


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = build_model("resnet3d", VOLUME_SHAPE, width_multiplier=0.125)
    volumes = np.random.default_rng(0).standard_normal((2, *VOLUME_SHAPE, 1)).astype(np.float32)
    model.save(tmp_path / "resnet3d.keras")
    reloaded = keras.models.load_model(tmp_path / "resnet3d.keras")
    assert isinstance(reloaded, ResNet3D)
    np.testing.assert_array_equal(reloaded.predict(volumes, verbose=0), model.predict(volumes, verbose=0))


def test_mixed_bfloat16_keeps_the_head_and_variables_float32():
    model = build_model("resnet3d", VOLUME_SHAPE, width_multiplier=0.125, precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"
    backbone = model.get_layer("volume_resnet18")
    assert backbone.get_layer("resnet18_stem_conv").compute_dtype == "bfloat16"
    assert model.get_layer("age").compute_dtype == "float32"
    floats = [variable for variable in model.variables if keras.backend.is_float_dtype(variable.dtype)]
    assert floats and {variable.dtype for variable in floats} == {"float32"}
    output = model(np.ones((1, *VOLUME_SHAPE, 1), np.float32))
    assert keras.ops.convert_to_numpy(output).dtype == np.float32
