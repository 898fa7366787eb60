"""Seconds per training step of the brain-age models on this machine.

Prints one table row per case: model, volume grid, slices, batch, width, the first
step (tracing + compilation) and the median of the following steps. The
`encoder_*` rows isolate the slice encoder to show why slices are folded into the
batch: Keras 3's TimeDistributed unrolls one graph copy per slice.

    python benchmarks/train_step.py                 # default table (a few minutes on 2 cores)
    python benchmarks/train_step.py --quick         # smaller table
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from brainage_tf.models import FoldedTimeDistributed, ResNet18Backbone, build_model  # noqa: E402


def time_steps(
    model: keras.Model, inputs: np.ndarray, targets: np.ndarray, steps: int, jit_compile: bool = False
) -> tuple[float, float]:
    """Runs `steps` Adam/MAE training steps; returns (first step s, median later step s)."""
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(tf.reshape(model(x, training=True), tf.shape(y)) - y))
        return tape.gradient(loss, model.trainable_variables)

    @tf.function
    def step(x, y):
        optimizer.apply_gradients(zip(gradients(x, y), model.trainable_variables, strict=True))

    durations = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        step(inputs, targets)
        durations.append(time.perf_counter() - start)
    return durations[0], statistics.median(durations[1:])


def slice_encoder(wrapper: type, slices: int, slice_size: int, width: float) -> keras.Model:
    """Input (slices, size, size, 1) -> per-slice ResNet18 features, with the given wrapper."""
    inputs = keras.Input((slices, slice_size, slice_size, 1))
    backbone = ResNet18Backbone((slice_size, slice_size, 1), width)
    return keras.Model(inputs, wrapper(backbone)(inputs))


def main() -> None:
    """Prints the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--jit", action="store_true", help="Also time XLA-compiled steps.")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    cases = [
        # (label, model builder, input shape without batch, batch)
        ("encoder_folded", lambda: slice_encoder(FoldedTimeDistributed, 8, 50, 0.25), (8, 50, 50, 1), 1),
        (
            "encoder_keras_td",
            lambda: slice_encoder(keras.layers.TimeDistributed, 8, 50, 0.25),
            (8, 50, 50, 1),
            1,
        ),
        (
            "slice_lstm",
            lambda: build_model("slice_lstm", (64, 80, 56), 0.25, slice_size=(50, 50)),
            (64, 80, 56, 1),
            8,
        ),
        ("resnet3d", lambda: build_model("resnet3d", (64, 80, 56), 0.25), (64, 80, 56, 1), 8),
    ]
    if not args.quick:
        cases += [
            (
                "slice_lstm",
                lambda: build_model("slice_lstm", (64, 80, 56), 1.0, slice_size=(50, 50)),
                (64, 80, 56, 1),
                1,
            ),
            (
                "slice_lstm",
                lambda: build_model("slice_lstm", (128, 160, 112), 1.0, slice_size=(50, 50)),
                (128, 160, 112, 1),
                1,
            ),
            ("resnet3d", lambda: build_model("resnet3d", (64, 80, 56), 1.0), (64, 80, 56, 1), 1),
        ]
    print(f"{'model':<18}{'input':<22}{'batch':>6}{'params':>11}{'jit':>5}{'first s':>9}{'s/step':>9}")
    for label, make_model, shape, batch in cases:
        for jit in (False, True) if args.jit else (False,):
            model = make_model()
            inputs = rng.standard_normal((batch, *shape)).astype(np.float32)
            targets = rng.uniform(0, 22, (batch, 1)).astype(np.float32)
            if label.startswith("encoder"):
                targets = np.zeros(model.output_shape[1:], np.float32)[None].repeat(batch, 0)
            first, steady = time_steps(model, inputs, targets, args.steps, jit)
            print(
                f"{label:<18}{'x'.join(map(str, shape[:-1])):<22}{batch:>6}{model.count_params():>11,}"
                f"{'on' if jit else 'off':>5}{first:>9.2f}{steady:>9.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
