"""Forward FLOPs of a brain-age model per volume: counted from its layers, and by the TF profiler.

The analytic count is 2 FLOPs per multiply-add of every convolution, LSTM and dense
layer, which is where all but a few percent of the work is (normalisation, ReLU,
pooling and resizing are a few FLOPs per activation). A training step costs about
3x the forward pass (the backward pass computes gradients of both activations and
weights), the convention `benchmarks/run.py` uses for achieved GFLOP/s.
"""

from __future__ import annotations

import math

import keras

from brainage_tf.models import FoldedTimeDistributed

TRAINING_FLOPS_PER_FORWARD_FLOP = 3


def _spatial(shape) -> int:
    return math.prod(int(dim) for dim in shape[1:-1])


def layer_flops(layer: keras.layers.Layer) -> float:
    """Forward FLOPs of one example through one layer (nested models and wrappers included)."""
    if isinstance(layer, FoldedTimeDistributed):
        return int(layer.input.shape[1]) * layer_flops(layer.layer)
    if isinstance(layer, keras.Model):
        return sum(layer_flops(inner) for inner in layer.layers)
    if isinstance(layer, keras.layers.Bidirectional | keras.layers.LSTM):
        # The Bidirectional wrapper holds the call's shapes; its two LSTMs are copies never called.
        directions = 2 if isinstance(layer, keras.layers.Bidirectional) else 1
        units = layer.forward_layer.units if directions == 2 else layer.units
        steps, inputs = int(layer.input.shape[1]), int(layer.input.shape[2])
        return directions * steps * 2 * 4 * units * (inputs + units)
    if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv3D):
        kernel = math.prod(layer.kernel_size) * int(layer.input.shape[-1]) * layer.filters
        return 2 * kernel * _spatial(layer.output.shape)
    if isinstance(layer, keras.layers.Dense):
        return 2 * int(layer.input.shape[-1]) * layer.units
    return 0


def analytic_gflops(model: keras.Model) -> float:
    """Forward GFLOPs per volume of a brainage_tf model, from its layers' shapes."""
    return layer_flops(model) / 1e9


def profiler_gflops(model: keras.Model) -> float:
    """Forward GFLOPs per volume as the TF profiler counts them on the traced graph (batch 1)."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda volume: model(volume, training=False)).get_concrete_function(spec).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return model_analyzer.profile(graph, options=options).total_float_ops / 1e9
