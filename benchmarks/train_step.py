"""Seconds per Adam/MAE training step of the brain-age models, in TensorFlow or PyTorch.

One configuration per process, so its peak RSS is its own (`benchmarks/run.py` starts
one process per configuration and alternates frameworks):

    python benchmarks/train_step.py --model slice_lstm --grid paper --precision mixed_bfloat16
    python benchmarks/train_step.py --framework torch --model resnet3d --grid paper
    python benchmarks/train_step.py --model slice_lstm --steps 8 --no-grappler
    python benchmarks/train_step.py --model slice_lstm --steps 8 --keras-adam

prints one JSON line: the first step (tracing, compilation, allocation), the median of
the following steps, the ops of the traced step (TensorFlow), the peak RSS, and the
matmul ceiling of the step's dtype measured in the same process just before the steps
(so the fraction of the ceiling compares figures taken under the same load). The
TensorFlow step is the product's own: `brainage_tf.training.trainer.Trainer.train_step`
with the paper preset, fed from memory.
A PyTorch process never imports TensorFlow, nor a TensorFlow process torch, so each
peak RSS holds one framework only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from timing import matmul_gflops, peak_rss_mb, time_calls  # noqa: E402

from brainage_tf.model_registry import DEFAULT_MODEL, model_names  # noqa: E402
from brainage_tf.preprocessing import GRID_NAMES, GRIDS  # noqa: E402
from brainage_tf.training.config import PRECISIONS  # noqa: E402

# The in-process ceiling: a 2048^2 matmul takes about 0.1 s in float32 on 2 cores.
CEILING_MATMUL_SIZE = 2048
CEILING_CALLS = 5


def trainer_step(model_name: str, precision: str, volumes: np.ndarray, ages: np.ndarray, run_dir: Path):
    """The product's own training step (a paper-preset `Trainer` over the volumes held in memory), and
    a function that counts the ops of its traced step."""
    import keras
    import tensorflow as tf

    from brainage_tf import data
    from brainage_tf.training.config import TrainConfig
    from brainage_tf.training.run_directory import RunDirectory
    from brainage_tf.training.trainer import Trainer

    config = TrainConfig.paper().replace(model=model_name, precision=precision, batch_size=len(ages) // 2)
    source = data.in_memory_source(volumes, ages, [f"sub-{index}" for index in range(len(ages))])
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    keras.utils.set_random_seed(0)
    trainer = Trainer(config, source, strategy, RunDirectory(run_dir), log=lambda line: None)
    batches = trainer.distribute(trainer.epoch_dataset(0))
    return lambda: trainer.train_step(next(batches)), lambda: traced_ops(trainer, next(batches))


def traced_ops(trainer, batch) -> int:
    """Ops of the traced training step, its nested functions' included: what tracing and Grappler handle."""
    graph = trainer._train_step.get_concrete_function(batch).graph
    return len(graph.get_operations()) + sum(len(f.node_def) for f in graph.as_graph_def().library.function)


def measure(framework: str, model_name: str, grid: str, precision: str, batch: int, steps: int) -> dict:
    """Times one configuration in this process; returns the JSON-ready result."""
    shape = GRIDS[grid].shape
    rng = np.random.default_rng(0)
    # Two batches, so the epoch (of two steps) is a real shuffled, prefetched stream.
    volumes = rng.standard_normal((2 * batch, *shape)).astype(np.float32)
    ages = rng.uniform(0, 22, 2 * batch).astype(np.float32)
    result = dict(framework=framework, model=model_name, grid=grid, precision=precision, batch=batch)
    dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
    result["ceiling_gflops"] = matmul_gflops(framework, dtype, CEILING_MATMUL_SIZE, CEILING_CALLS)
    if framework == "torch":
        import torch
        import torch_models

        torch.manual_seed(0)
        twin = torch_models.build(model_name, shape)
        step = torch_models.training_step(twin, precision)
        x, y = torch.from_numpy(volumes[:batch]), torch.from_numpy(ages[:batch])
        timing = time_calls(lambda: step(x, y), steps)
        result["threads"] = torch.get_num_threads()
    else:
        with tempfile.TemporaryDirectory() as run_dir:
            step, count_ops = trainer_step(model_name, precision, volumes, ages, Path(run_dir))
            timing = time_calls(step, steps)
            result["traced_ops"] = count_ops()
    result.update(timing.to_json(), peak_rss_mb=peak_rss_mb())
    return result


def main() -> None:
    """Measures one configuration; prints a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("tf", "torch"), default="tf")
    parser.add_argument("--model", choices=model_names(), default=DEFAULT_MODEL)
    parser.add_argument("--grid", choices=GRID_NAMES, default="paper")
    parser.add_argument("--precision", choices=PRECISIONS[1:3], default="float32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4, help="Steps timed after the first.")
    parser.add_argument(
        "--no-grappler",
        action="store_true",
        help="TensorFlow without Grappler (disable_meta_optimizer): what graph optimization costs the "
        "first step and gains the later ones.",
    )
    parser.add_argument(
        "--keras-adam",
        action="store_true",
        help="Keras's own Adam instead of the trainer's fused one: what the fused update saves.",
    )
    args = parser.parse_args()
    if args.keras_adam:
        import keras

        from brainage_tf.training import trainer

        trainer.FusedAdam = keras.optimizers.Adam
    if args.no_grappler:
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    result = measure(args.framework, args.model, args.grid, args.precision, args.batch, args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
