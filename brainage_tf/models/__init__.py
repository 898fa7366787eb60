"""Brain-age models: slice_lstm (2D-ResNet18+LSTM) and resnet3d (3D-ResNet18 baseline).

`build_model` builds any model of `brainage_tf.model_registry` by name. Importing this
package imports Keras (and its backend) and every registered model's module, so
`keras.models.load_model` finds their classes; `brainage_tf` itself imports neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from brainage_tf.model_registry import get_model_spec, model_fields, model_specs
from brainage_tf.models.layers import FoldedTimeDistributed, dtype_policy_scope, instance_norm
from brainage_tf.models.resnet import ResNet18Backbone
from brainage_tf.models.resnet3d import ResNet3D
from brainage_tf.models.slice_lstm import SliceLSTM

for _spec in model_specs():  # a model registered beyond the two above is loadable too
    _spec.load_builder()


def build_model(
    model_name: str, volume_shape: Sequence[int], precision: str = "float32", **fields
) -> keras.Model:
    """Builds a registered brain-age model by name, through its spec's builder.

    Args:
        model_name: A registered name: "slice_lstm" or "resnet3d".
        volume_shape: Spatial shape (x, y, z) of the preprocessed volumes.
        precision: Keras dtype policy of every layer but the float32 age head (variables stay float32).
        **fields: Model fields of `TrainConfig` (width_multiplier, slice_axis, slice_size,
            pool_size); the model gets those its spec names, and its own defaults for the rest.

    Returns:
        The uncompiled Keras model, input (batch, x, y, z, 1), output (batch, 1).

    Raises:
        UnknownModelError: No model of that name (a ValueError).
        ValueError: A volume shape of another rank than the model takes, or one the model cannot take.
        TypeError: A field that no registered model is built from (a misspelling).
    """
    spec = get_model_spec(model_name)
    unknown = sorted(set(fields) - model_fields())
    if unknown:
        raise TypeError(f"build_model: no registered model is built from {', '.join(unknown)}.")
    volume_shape = tuple(int(size) for size in volume_shape)
    if len(volume_shape) != spec.input_rank:
        raise ValueError(f"{model_name} takes volumes of rank {spec.input_rank}, got shape {volume_shape}.")
    used = {name: value for name, value in fields.items() if name in spec.config_fields}
    return spec.load_builder()(volume_shape, precision=precision, name=spec.name, **used)


__all__ = [
    "build_model",
    "FoldedTimeDistributed",
    "dtype_policy_scope",
    "instance_norm",
    "ResNet18Backbone",
    "ResNet3D",
    "SliceLSTM",
]
