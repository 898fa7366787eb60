"""FusedAdam makes Keras Adam's updates: the same weights and moments after several steps.

Not bit for bit: the kernel takes 1 - beta in float32 (1 - 0.999f = 0.00099998713), Keras in
float64 before its cast (0.001), so each update differs by about 1e-5 of itself (measured:
1.7e-6 after 6 steps of about 0.05). An update with another beta, without the bias
correction or the epsilon, differs by 1e-3 of itself or more.
"""

import keras
import numpy as np
import tensorflow as tf

from brainage_tf.training.fused_adam import FusedAdam


def _trained_weights(optimizer_class, steps: int = 6, schedule: bool = True) -> list[np.ndarray]:
    """A small dense network after `steps` updates from fixed gradients, with a decaying rate
    in a tf.function, or with a constant rate (one Keras variable for every step) eagerly."""
    keras.utils.set_random_seed(3)
    variables = [tf.Variable(np.random.default_rng(0).normal(size=shape).astype(np.float32))
                 for shape in ((5, 4), (4,), (4, 1))]  # fmt: skip
    decaying = keras.optimizers.schedules.ExponentialDecay(0.05, 2, decay_rate=0.5, staircase=True)
    optimizer = optimizer_class(learning_rate=decaying if schedule else 0.05)
    optimizer.build(variables)
    rng = np.random.default_rng(1)
    gradients = [[rng.normal(size=v.shape).astype(np.float32) for v in variables] for _ in range(steps)]

    def step(grads):
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    step = tf.function(step, autograph=False) if schedule else step

    for grads in gradients:
        step([tf.constant(g) for g in grads])
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]


def test_fused_adam_makes_keras_adams_updates():
    keras_adam, fused = _trained_weights(keras.optimizers.Adam), _trained_weights(FusedAdam)
    assert len(keras_adam) == len(fused)  # the same optimizer variables: checkpoints stay compatible
    for expected, actual in zip(keras_adam, fused, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
    # The weights moved: six steps of a rate from 0.05 down to 0.0125.
    assert np.abs(keras_adam[0] - np.random.default_rng(0).normal(size=(5, 4))).max() > 0.05


def test_each_step_has_its_own_bias_correction_eagerly_with_a_constant_rate():
    # The same learning-rate variable every step: scalars shared across steps would keep step 1's beta^t.
    keras_adam, fused = (
        _trained_weights(keras.optimizers.Adam, schedule=False),
        _trained_weights(FusedAdam, schedule=False),
    )
    for expected, actual in zip(keras_adam, fused, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
