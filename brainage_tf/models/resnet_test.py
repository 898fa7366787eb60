"""Tests of the ResNet18 feature extractor shared by the 2D and 3D models."""

import keras
import numpy as np
import pytest

from brainage_tf.models.resnet import ResNet18Backbone, scaled_filters


def _layer_types(model, layer_type):
    return [layer for layer in model.layers if isinstance(layer, layer_type)]


@pytest.mark.parametrize("image_shape", [(40, 40, 1), (36, 20, 14, 1)])
def test_output_is_pooled_feature_vector_of_scaled_width(image_shape):
    backbone = ResNet18Backbone(image_shape, width_multiplier=0.125)
    volume = np.zeros((3, *image_shape), np.float32)
    assert backbone(volume).shape == (3, scaled_filters(512, 0.125))


def test_standard_resnet18_layout():
    backbone = ResNet18Backbone((50, 50, 1))
    convolutions = _layer_types(backbone, keras.layers.Conv2D)
    # stem + 8 blocks x 2 convs + 3 projection shortcuts = 20 convolutions.
    assert len(convolutions) == 20
    stem = backbone.get_layer("resnet18_stem_conv")
    assert stem.kernel_size == (7, 7) and stem.strides == (2, 2) and stem.filters == 64
    assert backbone.get_layer("resnet18_stem_pool").strides == (2, 2)
    assert [
        backbone.get_layer(f"resnet18_stage{stage}_block1_1_conv").strides[0] for stage in (1, 2, 3, 4)
    ] == [1, 2, 2, 2]
    assert backbone.get_layer("resnet18_stage4_block2_2_conv").filters == 512
    # One instance norm (GroupNormalization with a group per channel) after every convolution.
    norms = _layer_types(backbone, keras.layers.GroupNormalization)
    assert len(norms) == len(convolutions)
    assert all(norm.groups == norm.gamma.shape[0] for norm in norms)


def test_three_dimensional_backbone_uses_3x3x3_block_kernels():
    backbone = ResNet18Backbone((36, 20, 14, 1), width_multiplier=0.125)
    assert backbone.get_layer("resnet18_stage2_block1_1_conv").kernel_size == (3, 3, 3)
    assert len(_layer_types(backbone, keras.layers.Conv3D)) == 20


def test_layer_names_are_deterministic():
    names = [layer.name for layer in ResNet18Backbone((40, 40, 1), 0.125).layers]
    again = [layer.name for layer in ResNet18Backbone((40, 40, 1), 0.125).layers]
    assert names == again


def test_input_too_small_for_instance_norm_is_refused():
    with pytest.raises(ValueError, match="too small"):
        ResNet18Backbone((32, 32, 1), 0.125)


def test_a_rank_without_layers_in_the_table_is_refused():
    with pytest.raises(ValueError, match=r"spatial_rank must be one of \(2, 3\), got 1"):
        ResNet18Backbone((40, 1), 0.125)
