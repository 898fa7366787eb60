"""3D-ResNet18 baseline of the paper: the whole volume through Conv3D ResNet18, then Dense(1)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from brainage_tf.models.layers import dtype_policy_scope
from brainage_tf.models.resnet import ResNet18Backbone


@keras.saving.register_keras_serializable(package="brainage_tf")
class ResNet3D(keras.Model):
    """3D ResNet18 brain-age regressor (3x3x3 kernels, instance norm, global average pool).

    Args:
        volume_shape: Spatial shape of the preprocessed volume (x, y, z); the model
            input is (x, y, z, 1).
        width_multiplier: Scales every filter count (1.0 = standard ResNet18).
        precision: Keras dtype policy of every layer but the age head, which stays float32:
            "float32", "mixed_bfloat16" or "mixed_float16" (variables are float32 in all three).
        **kwargs: Passed to keras.Model (e.g. name).
    """

    def __init__(
        self,
        volume_shape: Sequence[int],
        width_multiplier: float = 1.0,
        precision: str = "float32",
        **kwargs,
    ):
        volume_shape = tuple(int(dim) for dim in volume_shape)
        if len(volume_shape) != 3:
            raise ValueError(f"volume_shape must be (x, y, z), got {volume_shape}.")
        with dtype_policy_scope(precision):
            inputs = keras.Input(shape=(*volume_shape, 1), name="volume")
            features = ResNet18Backbone((*volume_shape, 1), width_multiplier, name="volume_resnet18")(inputs)
            # The age head computes in float32 under every policy: ages of 0-22 years need its precision.
            age = keras.layers.Dense(1, name="age", dtype="float32")(features)
            super().__init__(inputs=inputs, outputs=age, **kwargs)
        self.volume_shape = volume_shape
        self.width_multiplier = width_multiplier
        self.precision = precision

    def get_config(self) -> dict:
        """Constructor arguments, so from_config rebuilds the same graph."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "volume_shape": list(self.volume_shape),
            "width_multiplier": self.width_multiplier,
            "precision": self.precision,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """Rebuilds the model from get_config's output."""
        return cls(**config)
