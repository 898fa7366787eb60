"""Brain-age models: slice_lstm (2D-ResNet18+LSTM) and resnet3d (3D-ResNet18 baseline).

Importing this package imports Keras (and its backend); `brainage_tf` itself does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from brainage_tf.defaults import DEFAULT_POOL_SIZE, DEFAULT_SLICE_AXIS, DEFAULT_SLICE_SIZE, MODEL_NAMES
from brainage_tf.models.layers import FoldedTimeDistributed, dtype_policy_scope, instance_norm
from brainage_tf.models.resnet import ResNet18Backbone
from brainage_tf.models.resnet3d import ResNet3D
from brainage_tf.models.slice_lstm import SliceLSTM


def build_model(
    model_name: str,
    volume_shape: Sequence[int],
    width_multiplier: float = 1.0,
    slice_axis: str = DEFAULT_SLICE_AXIS,
    slice_size: Sequence[int] = DEFAULT_SLICE_SIZE,
    pool_size: int = DEFAULT_POOL_SIZE,
    precision: str = "float32",
) -> keras.Model:
    """Builds a brain-age model by name.

    Args:
        model_name: "slice_lstm" or "resnet3d".
        volume_shape: Spatial shape (x, y, z) of the preprocessed volumes.
        width_multiplier: Scales every ResNet18 filter count.
        slice_axis: slice_lstm only: "axial", "coronal" or "sagittal".
        slice_size: slice_lstm only: (height, width) each slice is resized to.
        pool_size: slice_lstm only: k of the average pooling over slices.
        precision: Keras dtype policy of every layer but the float32 age head (variables stay float32).

    Returns:
        The uncompiled Keras model, input (batch, x, y, z, 1), output (batch, 1).
    """
    if model_name == "slice_lstm":
        return SliceLSTM(
            volume_shape,
            slice_axis=slice_axis,
            slice_size=slice_size,
            pool_size=pool_size,
            width_multiplier=width_multiplier,
            precision=precision,
            name="slice_lstm",
        )
    if model_name == "resnet3d":
        return ResNet3D(volume_shape, width_multiplier=width_multiplier, precision=precision, name="resnet3d")
    raise ValueError(f"Unknown model {model_name!r}; choose one of {', '.join(MODEL_NAMES)}.")


__all__ = [
    "MODEL_NAMES",
    "build_model",
    "FoldedTimeDistributed",
    "dtype_policy_scope",
    "instance_norm",
    "ResNet18Backbone",
    "ResNet3D",
    "SliceLSTM",
]
