"""Does Keras 3 `model.fit` train under MultiWorkerMirroredStrategy? A probe run by hand, not by the suite.

brainage_tf trains with its own loop because `model.fit` failed here with 2 local workers
("Attempt to convert a value (PerReplica...)", keras-team/keras#20585; docs/training.md).
The suite tests that our loop trains under multi_worker, never that Keras fails, so an
upstream fix cannot break CI; run this after a Keras or TensorFlow upgrade instead:

    python tests/keras_fit_multi_worker_probe.py

It starts itself as 2 workers on 127.0.0.1 and prints each worker's FIT_OK or
FIT_FAILED: <error>. Exit code 0: `model.fit` trained in both, so it has become an
option for multi_worker; 1: the trap still holds.
"""

import json
import os
import subprocess
import sys
import traceback

from cli_checks import free_ports  # run as a script: tests/ is on sys.path

WORKERS = 2
TIMEOUT_S = 300


def launch() -> int:
    """Runs this file as every worker of a local cluster; returns 0 when `model.fit` trained in all."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(WORKERS)]}
    processes = [
        subprocess.Popen(
            [sys.executable, __file__],
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(WORKERS)
    ]
    verdicts = []
    for index, process in enumerate(processes):
        output = process.communicate(timeout=TIMEOUT_S)[0]
        lines = [line for line in output.splitlines() if line.startswith(("FIT_OK", "FIT_FAILED"))]
        verdicts.append(lines[-1] if lines else f"no verdict (exit code {process.returncode})")
        print(f"worker {index}: {verdicts[-1]}")
    trained = all(verdict == "FIT_OK" for verdict in verdicts)
    print("model.fit trains under MultiWorkerMirroredStrategy" if trained else "the trap still holds")
    return 0 if trained else 1


def probe() -> None:
    """One worker: fit a one-layer model for 2 steps and print FIT_OK or FIT_FAILED: <error>."""
    import numpy as np
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras  # after the strategy, which must come before other TF ops

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


if __name__ == "__main__":
    if "TF_CONFIG" in os.environ:
        probe()
    else:
        sys.exit(launch())
