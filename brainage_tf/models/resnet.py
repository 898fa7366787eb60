"""ResNet18 feature extractor, one definition for 2D slices and 3D volumes.

The standard ResNet18 layout (He et al. 2016): a 7x7 stride-2 stem with 64
filters, a 3x3 stride-2 max pool, and four stages of two basic blocks with
64/128/256/512 filters and strides 1, 2, 2, 2, then global average pooling.
Following the brain-age paper, instance normalisation and a ReLU follow every
convolution (batch normalisation is unusable at its batch size of 1). The same
builder serves slice_lstm (spatial_rank=2) and resnet3d (spatial_rank=3).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from brainage_tf.defaults import BLOCKS_PER_STAGE, STAGE_FILTERS, STAGE_STRIDES, STEM_FILTERS
from brainage_tf.models.layers import instance_norm

# (layer kind, spatial rank) -> Keras layer class: the one place the 2D/3D choice is made,
# as MONAI's `Conv[Conv.CONV, spatial_dims]`.
LAYERS = {
    ("conv", 2): keras.layers.Conv2D,
    ("conv", 3): keras.layers.Conv3D,
    ("max_pool", 2): keras.layers.MaxPooling2D,
    ("max_pool", 3): keras.layers.MaxPooling3D,
    ("global_avg_pool", 2): keras.layers.GlobalAveragePooling2D,
    ("global_avg_pool", 3): keras.layers.GlobalAveragePooling3D,
}
SPATIAL_RANKS = tuple(sorted({rank for _, rank in LAYERS}))


def layer_class(kind: str, spatial_rank: int) -> type[keras.layers.Layer]:
    """The Keras layer class of a kind ("conv", "max_pool", "global_avg_pool") at a spatial rank.

    Raises:
        ValueError: A rank the table has no layers for.
    """
    if spatial_rank not in SPATIAL_RANKS:
        raise ValueError(f"spatial_rank must be one of {SPATIAL_RANKS}, got {spatial_rank}.")
    return LAYERS[kind, spatial_rank]


def scaled_filters(filters: int, width_multiplier: float) -> int:
    """Number of filters after applying the width multiplier, at least 1."""
    return max(1, int(round(filters * width_multiplier)))


def conv_norm(x, filters: int, kernel_size: int, strides: int, spatial_rank: int, name: str):
    """Convolution (no bias: the norm's offset replaces it) then instance norm.

    Args:
        x: Input tensor, channels last.
        filters: Output channels.
        kernel_size: Kernel size along every spatial axis.
        strides: Stride along every spatial axis.
        spatial_rank: 2 or 3 (`SPATIAL_RANKS`).
        name: Prefix of the two layer names (`{name}_conv`, `{name}_norm`).

    Returns:
        The normalised feature map (before any activation).
    """
    x = layer_class("conv", spatial_rank)(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    return instance_norm(filters, name=f"{name}_norm")(x)


def basic_block(x, filters: int, strides: int, spatial_rank: int, name: str):
    """ResNet basic block: two 3x3(x3) conv-norm layers and a residual shortcut.

    The shortcut is a 1x1(x1) strided conv-norm projection when the block changes
    resolution or width, the identity otherwise.

    Args:
        x: Input tensor, channels last.
        filters: Output channels.
        strides: Stride of the first convolution (and of the projection).
        spatial_rank: 2 or 3.
        name: Prefix of every layer name in the block.

    Returns:
        The block output after the final ReLU.
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_norm(x, filters, 1, strides, spatial_rank, name=f"{name}_shortcut")
    y = conv_norm(x, filters, 3, strides, spatial_rank, name=f"{name}_1")
    y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
    y = conv_norm(y, filters, 3, 1, spatial_rank, name=f"{name}_2")
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out_relu")(y)


def resnet18_features(x, spatial_rank: int, width_multiplier: float = 1.0, name: str = "resnet18"):
    """Applies the ResNet18 layers to a tensor and returns the pooled feature vector.

    Args:
        x: Input tensor (batch, *spatial, channels).
        spatial_rank: 2 (slices) or 3 (volumes).
        width_multiplier: Scales every filter count (1.0 is the standard ResNet18).
        name: Prefix of every layer name.

    Returns:
        Tensor (batch, 512 * width_multiplier) after global average pooling.

    Raises:
        ValueError: The input is so small that the last stage has a single position.
    """
    max_pool = layer_class("max_pool", spatial_rank)  # checks the rank before any layer is made
    inputs_shape = x.shape[1:-1]
    x = conv_norm(x, scaled_filters(STEM_FILTERS, width_multiplier), 7, 2, spatial_rank, name=f"{name}_stem")
    x = keras.layers.ReLU(name=f"{name}_stem_relu")(x)
    x = max_pool(pool_size=3, strides=2, padding="same", name=f"{name}_stem_pool")(x)
    for stage, (filters, stride) in enumerate(zip(STAGE_FILTERS, STAGE_STRIDES, strict=True), start=1):
        for block in range(1, BLOCKS_PER_STAGE + 1):
            x = basic_block(
                x,
                scaled_filters(filters, width_multiplier),
                strides=stride if block == 1 else 1,
                spatial_rank=spatial_rank,
                name=f"{name}_stage{stage}_block{block}",
            )
    if all(dim == 1 for dim in x.shape[1:-1]):
        raise ValueError(
            f"Input spatial shape {tuple(inputs_shape)} is too small for ResNet18: its stride of 32 "
            "leaves one position per channel, where instance normalisation sets every feature "
            "to its learned offset and the output no longer depends on the input. Use at least "
            "33 voxels along one spatial axis (e.g. slice_size 50x50, the paper's)."
        )
    return layer_class("global_avg_pool", spatial_rank)(name=f"{name}_avg_pool")(x)


@keras.saving.register_keras_serializable(package="brainage_tf")
class ResNet18Backbone(keras.Model):
    """ResNet18 without its classifier: image -> globally pooled feature vector.

    Args:
        image_shape: Input shape without batch, channels last, e.g. (50, 50, 1)
            for a slice or (64, 80, 56, 1) for a volume. Its length minus one is
            the spatial rank (2 or 3).
        width_multiplier: Scales every filter count; 1.0 is the standard network,
            smaller values make tests and CPU demos fast.
        **kwargs: Passed to keras.Model (e.g. name).
    """

    def __init__(self, image_shape: Sequence[int], width_multiplier: float = 1.0, **kwargs):
        image_shape = tuple(image_shape)
        spatial_rank = len(image_shape) - 1
        inputs = keras.Input(shape=image_shape, name="image")
        outputs = resnet18_features(inputs, spatial_rank, width_multiplier)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.image_shape = image_shape
        self.spatial_rank = spatial_rank
        self.width_multiplier = width_multiplier

    def get_config(self) -> dict:
        """Constructor arguments, so from_config rebuilds the same graph."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_shape": list(self.image_shape),
            "width_multiplier": self.width_multiplier,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """Rebuilds the backbone from get_config's output."""
        return cls(**config)
