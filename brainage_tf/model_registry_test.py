"""The model registry: one-line errors, and a third model that only registers itself.

The toy model below is registered by this test alone, as a study's own module would
register one: training's arguments, the flags, the export's metadata and explanation's
slabs then serve it without a line of theirs changed.
"""

import dataclasses

import keras
import numpy as np
import pytest

from brainage_tf import model_registry
from brainage_tf.errors import UsageError
from brainage_tf.model_registry import (
    DEFAULT_MODEL,
    ModelSpec,
    Slabs,
    UnknownModelError,
    get_model_spec,
    model_names,
    register_model,
)
from brainage_tf.models import build_model
from brainage_tf.models.layers import dtype_policy_scope
from brainage_tf.serving.explanations import slab_settings
from brainage_tf.serving.export import export_metadata
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.flags import build_parser

SHAPE = (6, 5, 6)


def build_toy(volume_shape, precision, name, pool_size=2):
    """A tiny regressor: mean of every `pool_size` axial slices, then Dense(1)."""
    with dtype_policy_scope(precision):
        inputs = keras.Input(shape=(*volume_shape, 1), name="volume")
        pooled = keras.layers.AveragePooling3D((1, 1, pool_size), name="slab_mean")(inputs)
        age = keras.layers.Dense(1, name="age", dtype="float32")(keras.layers.Flatten()(pooled))
    return keras.Model(inputs, age, name=name)


@pytest.fixture
def toy(monkeypatch):
    """The toy registered for one test; the registry is restored afterwards."""
    monkeypatch.setattr(model_registry, "_SPECS", dict(model_registry._SPECS))
    return register_model(
        ModelSpec(
            name="toy",
            builder=build_toy,
            summary="mean of axial slabs, then a dense layer",
            config_fields=("pool_size",),
            slabs=Slabs(size_field="pool_size"),
        )
    )


def toy_config(**changes) -> TrainConfig:
    """A toy run's config whose other model fields differ from the defaults, to be left out."""
    return TrainConfig(model="toy", pool_size=3, slice_axis="coronal", width_multiplier=0.5, **changes)


def test_an_unknown_name_is_one_line_listing_the_known_ones():
    expected = "unknown model 'vgg'; choose one of slice_lstm, resnet3d."
    with pytest.raises(UnknownModelError) as raised:
        get_model_spec("vgg")
    assert str(raised.value) == expected
    with pytest.raises(UnknownModelError) as raised:
        build_model("vgg", SHAPE)
    assert str(raised.value) == expected
    with pytest.raises(UsageError) as raised:
        slab_settings({"model": "vgg", "grid_shape": list(SHAPE)}, None, None)
    assert str(raised.value) == f"the export's {expected}"


def test_the_built_in_models_are_registered_with_fields_training_has():
    assert model_names() == ("slice_lstm", "resnet3d") and DEFAULT_MODEL == model_names()[0]
    config_fields = {field.name for field in dataclasses.fields(TrainConfig)}
    for name in model_names():
        spec = get_model_spec(name)
        assert set(spec.config_fields) <= config_fields
        assert isinstance(spec.load_builder(), type) and issubclass(spec.load_builder(), keras.Model)


def test_registration_refuses_what_the_rest_could_not_serve(toy):
    cases = {
        "registered already": dataclasses.replace(toy),
        "is not 'module:attribute'": dataclasses.replace(toy, name="toy2", builder="brainage_tf.models"),
        "repeat": dataclasses.replace(toy, name="toy2", config_fields=("pool_size", "pool_size")),
        "slab field 'slice_axis' is not one of its config fields": dataclasses.replace(
            toy, name="toy2", slabs=Slabs("slice_axis", "pool_size")
        ),
    }
    for message, spec in cases.items():
        with pytest.raises(ValueError, match=message):
            register_model(spec)
    assert model_names() == ("slice_lstm", "resnet3d", "toy")


def test_a_registered_model_is_trained_from_its_own_fields_only(toy):
    config = toy_config()
    config.validate()
    assert build_parser().parse_args(["--model", "toy"]).model == "toy"
    arguments = config.model_arguments()
    assert arguments == {"model_name": "toy", "precision": "float32", "pool_size": 3}
    model = build_model(volume_shape=SHAPE, **arguments)
    # 6 axial slices pooled by 3 leave 6 x 5 x 2 features: the config's pool size reached the builder.
    assert model.name == "toy" and model.count_params() == 6 * 5 * 2 + 1
    assert model(np.zeros((2, *SHAPE, 1), np.float32)).shape == (2, 1)
    # Fields of the other models are not the toy's: accepted and left out, as for resnet3d.
    assert build_model("toy", SHAPE, slice_axis="sagittal", pool_size=2).count_params() == 6 * 5 * 3 + 1
    with pytest.raises(TypeError, match="no registered model is built from pool"):
        build_model("toy", SHAPE, pool=2)
    with pytest.raises(ValueError, match="toy takes volumes of rank 3"):
        build_model("toy", SHAPE[:2])


def test_the_export_records_the_fields_each_model_is_built_from(toy):
    model_fields = ("width_multiplier", "slice_axis", "slice_size", "pool_size")

    def recorded(config):
        metadata = export_metadata(config, SHAPE, "best", {})
        return {field: metadata[field] for field in model_fields if field in metadata}

    assert recorded(toy_config()) == {"pool_size": 3}
    assert recorded(toy_config().replace(model="resnet3d")) == {"width_multiplier": 0.5}
    slice_lstm = recorded(toy_config().replace(model="slice_lstm"))
    assert slice_lstm == {
        "width_multiplier": 0.5,
        "slice_axis": "coronal",
        "slice_size": [50, 50],
        "pool_size": 3,
    }


def test_explanation_occludes_the_slabs_each_spec_defines(toy):
    def slabs(config, **flags):
        metadata = export_metadata(config, SHAPE, "best", {})
        return slab_settings(metadata, flags.get("axis"), flags.get("size"))

    # The toy's slab is its own pooling window along the default axis, not the config's slice axis.
    assert slabs(toy_config()) == ("axial", 3)
    assert slabs(toy_config().replace(model="slice_lstm", pool_size=2)) == ("coronal", 2)
    assert slabs(toy_config().replace(model="resnet3d", pool_size=2)) == ("axial", 4)  # none of its own
    assert slabs(toy_config(), axis="sagittal", size=1) == ("sagittal", 1)
    # A run's config.json holds every field: only those of the model's slab count.
    for model, expected in (
        ("toy", ("axial", 3)),
        ("resnet3d", ("axial", 4)),
        ("slice_lstm", ("coronal", 3)),
    ):
        config = toy_config().replace(model=model).to_json()
        assert slab_settings({**config, "grid_shape": list(SHAPE)}, None, None) == expected
    with pytest.raises(UsageError) as raised:  # a toy export from before pool_size was recorded
        slab_settings({"model": "toy", "grid_shape": list(SHAPE)}, None, None)
    assert "no pool_size" in str(raised.value) and "the run's --pool-size" in str(raised.value)
