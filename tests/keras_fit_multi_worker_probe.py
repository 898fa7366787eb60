"""Probe run by tests/test_train_cli.py in every worker process of a MultiWorkerMirroredStrategy cluster.

Does Keras 3 `model.fit` train under MultiWorkerMirroredStrategy (keras-team/keras#20585)?
Prints FIT_OK, or FIT_FAILED: <error> after the traceback.
"""

import os
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402  (TF_CPP_MIN_LOG_LEVEL must be set before TensorFlow loads)
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras  # noqa: E402  (after the strategy, which must come before other TF ops)

with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mae")
x = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).repeat().batch(8)
try:
    model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
except Exception as error:  # noqa: BLE001  the probe reports any failure
    traceback.print_exc()
    print(f"FIT_FAILED: {type(error).__name__}: {str(error).splitlines()[0][:300]}", flush=True)
else:
    print("FIT_OK", flush=True)
