"""One optimizer step on the same global batch under one_device and under mirrored on 2 logical CPUs.

Run by tests/test_training.py in a fresh process (logical devices must be set before
TensorFlow starts). Prints one JSON line: replicas, losses, how far the step moved
the weights, and how far apart the two updated models are.

Usage: python tests/distribute_probe.py WORK_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from toy_data import toy_cohort

from brainage_tf import data
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.distribute import split_cpu
from brainage_tf.training.run_directory import RunDirectory
from brainage_tf.training.trainer import Trainer

split_cpu(2)
work_dir = Path(sys.argv[1])
source = data.in_memory_source(*toy_cohort(24, (16, 20, 14), seed=5))
# Global batch 4 in both: one_device takes 4 at once, mirrored 2 per replica.
strategies = [
    (tf.distribute.OneDeviceStrategy("/cpu:0"), 4),
    (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), 2),
]
losses, initial, updated, replicas = [], [], [], []
for index, (strategy, batch_size) in enumerate(strategies):
    config = TrainConfig.demo().replace(
        batch_size=batch_size, width_multiplier=0.125, slice_size=(40, 40), pool_size=2, learning_rate=1e-2
    )
    trainer = Trainer(config, source, strategy, RunDirectory(work_dir / f"run{index}"), log=lambda line: None)
    initial.append(trainer.model.get_weights())
    losses.append(trainer.train_step(next(trainer.distribute(trainer.epoch_dataset(0)))))
    updated.append(trainer.model.get_weights())
    replicas.append(strategy.num_replicas_in_sync)

assert all(np.array_equal(a, b) for a, b in zip(*initial, strict=True)), (
    "the two models started from different weights"
)
print(
    json.dumps(
        dict(
            replicas=replicas,
            loss=losses,
            max_weight_change=max(
                float(np.abs(a - b).max()) for a, b in zip(initial[0], updated[0], strict=True)
            ),
            max_weight_difference=max(float(np.abs(a - b).max()) for a, b in zip(*updated, strict=True)),
        )
    )
)
