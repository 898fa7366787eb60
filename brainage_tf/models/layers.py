"""Layers shared by the models: instance normalisation, a folded TimeDistributed, a dtype-policy scope.

The layers are plain Keras 3 layers, so the models that use them stay functional,
serialisable to `.keras` and backend-neutral.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
from keras import ops


@contextlib.contextmanager
def dtype_policy_scope(policy: str) -> Iterator[None]:
    """Makes `policy` Keras's global dtype policy inside the block, and restores the previous one.

    A layer takes the global policy when it is constructed, so building a model inside
    this block gives it the policy for good, without leaking it into other models, tests
    or the caller's own layers.

    Args:
        policy: A Keras dtype policy name: "float32", "mixed_bfloat16" or "mixed_float16".
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def instance_norm(channels: int, name: str) -> keras.layers.GroupNormalization:
    """Instance normalisation as a GroupNormalization with one group per channel.

    Every channel of every example is normalised over its spatial axes only, which
    is instance normalisation (Ulyanov et al. 2016): the statistics never mix
    examples, so it behaves the same at batch size 1 (the paper's) as at 64.

    Args:
        channels: Number of channels of the feature map it normalises.
        name: Layer name.

    Returns:
        A GroupNormalization layer with `groups=channels` and learnable scale/offset.
    """
    return keras.layers.GroupNormalization(groups=channels, epsilon=1e-5, name=name)


@keras.saving.register_keras_serializable(package="brainage_tf")
class FoldedTimeDistributed(keras.layers.TimeDistributed):
    """TimeDistributed that folds the time axis into the batch axis.

    Keras 3's TimeDistributed unrolls a Python loop over time steps, one graph
    copy per step: with 128 slices the first training step of slice_lstm had not
    finished after 5 minutes. Folding (batch, time, ...) into (batch * time, ...)
    runs the wrapped layer once, as one big batch, with identical results for any
    layer that treats batch elements independently (convolutions, instance norm,
    pooling, resizing; not BatchNormalization in training mode).
    """

    def call(self, inputs, training=None, mask=None):
        """Applies the wrapped layer to every time step in one batched call.

        Args:
            inputs: Tensor of shape (batch, time, ...) with static time and inner dims.
            training: Forwarded to the wrapped layer.
            mask: Unsupported; must be None.

        Returns:
            Tensor of shape (batch, time, ...) with the wrapped layer's output dims.
        """
        if mask is not None:
            raise ValueError("FoldedTimeDistributed does not support masks.")
        steps = inputs.shape[1]
        if steps is None or any(dim is None for dim in inputs.shape[2:]):
            raise ValueError(
                "FoldedTimeDistributed needs static time and inner dimensions, got "
                f"input shape {inputs.shape}."
            )
        folded = ops.reshape(inputs, (-1, *inputs.shape[2:]))
        outputs = self.layer(folded, training=training)
        return ops.reshape(outputs, (-1, steps, *outputs.shape[1:]))
