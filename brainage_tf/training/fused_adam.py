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


class _StepScalars:
    """The update's scalars of one optimizer step, by dtype (a plain object: Keras tracks dict attributes)."""

    def __init__(self):
        self.by_dtype = {}


class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose dense update is one `ResourceApplyAdam` per variable."""

    _step_scalars: _StepScalars | None = None

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """Keras's update of every variable, with the scalars they share computed once for the step.

        Computed per variable, beta_1^t, beta_2^t and the casts were 18 % of slice_lstm's traced
        step (3,685 ops with them, 3,015 without; `benchmarks/train_step.py` counts them), paid in
        tracing and Grappler by the first step.
        """
        self._step_scalars = _StepScalars()
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._step_scalars = None

    def update_step(self, gradient, variable, learning_rate):
        """Applies one Adam step to `variable` (a tf.Variable, or its replica under tf.distribute)."""
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = self._step_scalars or _StepScalars()  # update_step called on its own: nothing shared
        if dtype not in step.by_dtype:
            iteration = tf.cast(self.iterations + 1, dtype)
            beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
            step.by_dtype[dtype] = dict(
                beta1_power=tf.pow(beta_1, iteration),
                beta2_power=tf.pow(beta_2, iteration),
                lr=tf.cast(learning_rate, dtype),
                beta1=beta_1,
                beta2=beta_2,
                epsilon=tf.cast(self.epsilon, dtype),
            )
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index].value, self._velocities[index].value
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.handle,
            v=velocity.handle,
            grad=tf.cast(gradient, dtype),
            **step.by_dtype[dtype],
        )
