"""2D-ResNet18+LSTM (He et al., ISBI 2020): a volume read as a sequence of 2D slices.

volume (x, y, z, 1)
  -> slices along `slice_axis`             (batch, slices, h, w, 1)
  -> each slice resized to `slice_size`     (batch, slices, 50, 50, 1)
  -> 2D ResNet18 per slice (folded)         (batch, slices, 512)
  -> AveragePooling1D(k, strides=k)         (batch, slices // k, 512)
  -> Bidirectional(LSTM(64, all outputs))   (batch, slices // k, 128)
  -> Flatten -> Dense(1)                    (batch, 1) age in years

Resizing is a layer of the model, so serving takes the same preprocessed volume
that training takes and no slice-resizing code exists outside the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from brainage_tf.defaults import (
    DEFAULT_POOL_SIZE,
    DEFAULT_SLICE_AXIS,
    DEFAULT_SLICE_SIZE,
    LSTM_UNITS,
    SLICE_AXIS_INDEX,
)
from brainage_tf.models.layers import FoldedTimeDistributed, dtype_policy_scope
from brainage_tf.models.resnet import ResNet18Backbone


def slice_permutation(slice_axis: str) -> tuple[int, int, int, int]:
    """Keras Permute dims that move the slicing axis first: (slice, in-plane, in-plane, channel).

    In-plane axes keep their RAS+ order (axial slices are (x, y)).

    Args:
        slice_axis: "axial" (z), "coronal" (y) or "sagittal" (x).

    Returns:
        1-based dims for keras.layers.Permute on a (x, y, z, channel) volume.
    """
    if slice_axis not in SLICE_AXIS_INDEX:
        raise ValueError(f"slice_axis must be one of {sorted(SLICE_AXIS_INDEX)}, got {slice_axis!r}.")
    axis = SLICE_AXIS_INDEX[slice_axis]
    in_plane = [dim for dim in range(3) if dim != axis]
    return (axis + 1, in_plane[0] + 1, in_plane[1] + 1, 4)


@keras.saving.register_keras_serializable(package="brainage_tf")
class SliceLSTM(keras.Model):
    """2D-ResNet18+LSTM brain-age regressor.

    Args:
        volume_shape: Spatial shape of the preprocessed volume (x, y, z); the model
            input is (x, y, z, 1).
        slice_axis: Plane the volume is cut into: "axial" (default, along z),
            "coronal" or "sagittal".
        slice_size: (height, width) every slice is resized to; the paper's 50x50.
        pool_size: k of AveragePooling1D(k, strides=k) over the slice sequence.
            Trailing slices that do not fill a window are dropped.
        width_multiplier: Scales every ResNet18 filter count (1.0 = standard).
        lstm_units: Units of each LSTM direction (the paper's 64).
        precision: Keras dtype policy of every layer but the age head, which stays float32:
            "float32", "mixed_bfloat16" or "mixed_float16" (variables are float32 in all three).
        **kwargs: Passed to keras.Model (e.g. name).
    """

    def __init__(
        self,
        volume_shape: Sequence[int],
        slice_axis: str = DEFAULT_SLICE_AXIS,
        slice_size: Sequence[int] = DEFAULT_SLICE_SIZE,
        pool_size: int = DEFAULT_POOL_SIZE,
        width_multiplier: float = 1.0,
        lstm_units: int = LSTM_UNITS,
        precision: str = "float32",
        **kwargs,
    ):
        volume_shape = tuple(int(dim) for dim in volume_shape)
        slice_size = tuple(int(dim) for dim in slice_size)
        if len(volume_shape) != 3:
            raise ValueError(f"volume_shape must be (x, y, z), got {volume_shape}.")
        num_slices = volume_shape[SLICE_AXIS_INDEX.get(slice_axis, 0)]
        if not 1 <= pool_size <= num_slices:
            raise ValueError(
                f"pool_size must be between 1 and the {num_slices} {slice_axis} slices, got {pool_size}."
            )
        with dtype_policy_scope(precision):
            inputs = keras.Input(shape=(*volume_shape, 1), name="volume")
            slices = keras.layers.Permute(slice_permutation(slice_axis), name="to_slices")(inputs)
            resized = FoldedTimeDistributed(
                keras.layers.Resizing(*slice_size, interpolation="bilinear", name="resize"),
                name="slice_resize",
            )(slices)
            encoder = ResNet18Backbone((*slice_size, 1), width_multiplier, name="slice_resnet18")
            features = FoldedTimeDistributed(encoder, name="slice_encoder")(resized)
            pooled = keras.layers.AveragePooling1D(pool_size, strides=pool_size, name="slice_pool")(features)
            sequence = keras.layers.Bidirectional(
                keras.layers.LSTM(lstm_units, return_sequences=True, name="lstm"), name="bilstm"
            )(pooled)
            flat = keras.layers.Flatten(name="flatten")(sequence)
            # The age head computes in float32 under every policy: ages of 0-22 years need its precision.
            age = keras.layers.Dense(1, name="age", dtype="float32")(flat)
            super().__init__(inputs=inputs, outputs=age, **kwargs)
        self.volume_shape = volume_shape
        self.slice_axis = slice_axis
        self.slice_size = slice_size
        self.pool_size = pool_size
        self.width_multiplier = width_multiplier
        self.lstm_units = lstm_units
        self.precision = precision

    def get_config(self) -> dict:
        """Constructor arguments, so from_config rebuilds the same graph."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "volume_shape": list(self.volume_shape),
            "slice_axis": self.slice_axis,
            "slice_size": list(self.slice_size),
            "pool_size": self.pool_size,
            "width_multiplier": self.width_multiplier,
            "lstm_units": self.lstm_units,
            "precision": self.precision,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """Rebuilds the model from get_config's output."""
        return cls(**config)
