"""Keras Adam with TensorFlow's fused update kernel: the same arithmetic in one op per variable.

Keras 3's Adam updates each variable with about a dozen graph ops (two powers, the step
size, two moment updates, the square root, the division, three assigns). Traced for the
62-122 variables of our models, that is about half of the training step's ops, which
the first step pays for in tracing and Grappler. `ResourceApplyAdam` is TensorFlow's
kernel for the same update (`tf.compat.v1.train.AdamOptimizer` used it):

    m <- beta_1 m + (1 - beta_1) g;  v <- beta_2 v + (1 - beta_2) g^2
    variable <- variable - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon)

which is Keras Adam's formula (`keras/src/optimizers/adam.py`, the non-AMSGrad branch).
The variables (the moments, the iteration count) are Keras Adam's own, so checkpoints
and the exact resume are unchanged. AMSGrad and sparse gradients take Keras's path.
`fused_adam_test.py` checks it equal to Keras Adam over several steps, under one device
and a MirroredStrategy of two.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose dense update is one `ResourceApplyAdam` per variable."""

    def update_step(self, gradient, variable, learning_rate):
        """Applies one Adam step to `variable` (a tf.Variable, or its replica under tf.distribute)."""
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index].value, self._velocities[index].value
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.handle,
            v=velocity.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
