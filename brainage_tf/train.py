"""Train a brain-age model: `python -m brainage_tf.train`.

With no arguments it builds the embedded `synthetic_cohort/small` TFDS dataset if
it is absent, trains slice_lstm with the demo preset and prints where the run's
outputs are. See docs/training.md for flags, presets, the run directory and
tf.distribute.

One custom training loop serves every strategy (one_device, mirrored,
multi_worker): Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy, and
one loop means one behaviour for checkpoints, resume and logging everywhere.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# Same as brainage_tf.models.MODEL_NAMES, repeated so flag checks run without importing Keras.
MODEL_NAMES = ("slice_lstm", "resnet3d")
DEFAULT_DATASET = "synthetic_cohort/small"
SLICE_AXES = ("axial", "coronal", "sagittal")

# Paper: MAE loss, Adam 1e-4 halved every 15 epochs, 60 epochs, batch size 1, full ResNet18.
# Demo: sized to finish in about 10 minutes on 2 CPU cores on synthetic_cohort/small
# (see docs/training.md for the measured step times that set it).
PRESETS: dict[str, dict] = {
    "paper": dict(epochs=60, batch_size=1, learning_rate=1e-4, halve_every_epochs=15,
                  width_multiplier=1.0, slice_size=(50, 50), pool_size=4),
    "demo": dict(epochs=30, batch_size=8, learning_rate=1e-3, halve_every_epochs=10,
                 width_multiplier=0.25, slice_size=(50, 50), pool_size=4),
}

HISTORY_FIELDS = ("epoch", "train_mae", "val_mae", "learning_rate", "seconds")


class UsageError(ValueError):
    """A flag, run directory or dataset choice that cannot work; reported before heavy work."""


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run; written to `<run_dir>/config.json`.

    Attributes:
        model: "slice_lstm" or "resnet3d".
        dataset: TFDS name with config, e.g. "synthetic_cohort/small".
        data_dir: TFDS data dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
        train_split: TFDS split to train on; validation is carved from it by subject.
        min_age: Youngest training age kept (years, inclusive).
        max_age: Oldest training age kept (years, inclusive).
        validation_fraction: Share of training subjects held out for model selection.
        preset: "paper" or "demo"; fills every hyper-parameter not set explicitly.
        epochs: Epochs to train.
        batch_size: Per-replica batch size; the global batch is this times the replicas.
        learning_rate: Initial Adam learning rate.
        halve_every_epochs: The learning rate halves after every this many epochs.
        width_multiplier: Scales every ResNet18 filter count.
        slice_axis: slice_lstm: "axial", "coronal" or "sagittal".
        slice_size: slice_lstm: (height, width) each slice is resized to inside the model.
        pool_size: slice_lstm: k of AveragePooling1D(k, strides=k) over the slices.
        seed: Seed of weights initialisation and shuffling.
        strategy: "auto", "one_device", "mirrored" or "multi_worker".
        jit_compile: XLA-compile the gradient step (for GPUs; 5-9x slower on CPU).
        checkpoints_to_keep: Most recent per-epoch checkpoints kept on disk.
    """

    model: str = "slice_lstm"
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    train_split: str = "train"
    min_age: float = 0.0
    max_age: float = 22.0
    validation_fraction: float = 0.2
    preset: str = "demo"
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    halve_every_epochs: int = 10
    width_multiplier: float = 0.25
    slice_axis: str = "axial"
    slice_size: tuple[int, int] = (50, 50)
    pool_size: int = 4
    seed: int = 0
    strategy: str = "auto"
    jit_compile: bool = False
    checkpoints_to_keep: int = 3

    def validate(self) -> None:
        """Raises UsageError for any value that cannot work (cheap checks only)."""
        if self.model not in MODEL_NAMES:
            raise UsageError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}.")
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}.")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}.")
        if self.slice_axis not in SLICE_AXES:
            raise UsageError(f"unknown slice axis {self.slice_axis!r}; "
                             f"choose one of {', '.join(SLICE_AXES)}.")
        if not (math.isfinite(self.min_age) and math.isfinite(self.max_age)):
            raise UsageError("--train-ages must be finite numbers.")
        if self.min_age > self.max_age:
            raise UsageError(f"--train-ages: minimum age {self.min_age} is above maximum age {self.max_age}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise UsageError(f"--validation-fraction must be in (0, 1), got {self.validation_fraction}.")
        for name in ("epochs", "batch_size", "halve_every_epochs", "pool_size", "checkpoints_to_keep"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.learning_rate <= 0 or self.width_multiplier <= 0:
            raise UsageError("learning rate and width multiplier must be positive.")
        if len(self.slice_size) != 2 or min(self.slice_size) < 8:
            raise UsageError(f"--slice-size needs two sizes of at least 8, got {self.slice_size}.")

    def to_json(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, values: dict) -> TrainConfig:
        """Inverse of to_json; unknown keys are an error so a stale config is not half-read."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UsageError(f"config.json has unknown keys {sorted(unknown)}.")
        values = dict(values)
        if "slice_size" in values:
            values["slice_size"] = tuple(values["slice_size"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in a (possibly single-process) cluster."""

    is_chief: bool = True
    task_type: str | None = None
    task_id: int = 0
    num_workers: int = 1


def worker_role_from_env() -> WorkerRole:
    """Reads TF_CONFIG (without importing TensorFlow) to find this worker's role.

    The chief is the task of type "chief", or worker 0 when the cluster has no chief.
    """
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = tf_config.get("cluster", {})
    task = tf_config.get("task", {})
    num_workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    if num_workers <= 1 or not task:
        return WorkerRole()
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return WorkerRole(is_chief, task_type, task_id, num_workers)


def make_strategy(name: str, role: WorkerRole):
    """Creates the tf.distribute strategy; must run before any other TensorFlow op.

    Args:
        name: "auto" (multi_worker when TF_CONFIG names several workers, mirrored with
            several GPUs, else one_device), "one_device", "mirrored" (all GPUs, or all
            logical CPUs when there is no GPU) or "multi_worker" (needs TF_CONFIG).
        role: This process's cluster role.

    Returns:
        A tf.distribute.Strategy.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "multi_worker" if role.num_workers > 1 else ("mirrored" if len(gpus) > 1 else "one_device")
    if name == "multi_worker":
        if role.num_workers < 2:
            raise UsageError("--strategy multi_worker needs TF_CONFIG describing at least 2 workers.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        devices = None if gpus else [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


def split_cpu(num_devices: int) -> None:
    """Splits the host CPU into logical devices (lets mirrored run on a CPU-only host)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Checks a run dir can be used; never lets a run overwrite another silently.

    Raises:
        UsageError: Not resuming and the dir exists non-empty, or resuming and it has no config.json.
    """
    if resume:
        if not (run_dir / "config.json").is_file():
            raise UsageError(f"--resume: {run_dir} has no config.json; nothing to resume.")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"run directory {run_dir} exists and is not empty; choose another --out "
                         "or pass --resume to continue it.")


def default_run_dir(model: str) -> Path:
    """A fresh `runs/<model>_<UTC time>` directory path under the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    candidate = Path("runs") / f"{model}_{stamp}"
    suffix = 1
    while candidate.exists():
        candidate = Path("runs") / f"{model}_{stamp}_{suffix}"
        suffix += 1
    return candidate


def worker_run_dir(run_dir: Path, role: WorkerRole) -> Path:
    """The chief writes to run_dir; every other worker to its own sibling `<run_dir>-<type><id>`."""
    if role.is_chief:
        return run_dir
    return run_dir.with_name(f"{run_dir.name}-{role.task_type}{role.task_id}")


def _append_history(path: Path, row: dict) -> None:
    """Appends one epoch to history.csv, writing the header on first use."""
    new_file = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
        if new_file:
            writer.writeheader()
        writer.writerow(row)


def _write_scalars(writer, step: int, **scalars: float) -> None:
    """Writes TensorBoard scalar summaries with TF's core summary op.

    tf.summary.scalar needs the tensorboard package, which TensorFlow 2.21 no longer
    installs; the core op plus the scalars-plugin metadata writes the same event.
    """
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    with writer.as_default(step=step):
        for tag, value in scalars.items():
            tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata.SerializeToString())
    writer.flush()


def run_training(config: TrainConfig, train_source, run_dir: Path, strategy, *,
                 role: WorkerRole = WorkerRole(), resume: bool = False,
                 log: Callable[[str], None] = print,
                 stop_after_epochs: int | None = None) -> dict:
    """Trains config.model on train_source and writes the run directory.

    Args:
        config: Validated run configuration.
        train_source: data.ExampleSource of the training split (validation is carved from it).
        run_dir: This worker's run directory (created if missing).
        strategy: tf.distribute strategy (created before any other TF op).
        role: This worker's cluster role; only the chief writes history, logs and models.
        resume: Continue from the last checkpoint in run_dir.
        log: Progress printer.
        stop_after_epochs: Stop after this many epochs of this session (simulates a kill in tests).

    Returns:
        The results dict also written to `<run_dir>/results.json` (chief).

    Raises:
        UsageError: The age range selects no training or validation subject, or fewer
            training examples than one global batch.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from brainage_tf import data
    from brainage_tf.models import build_model

    selection = data.Selection(config.min_age, config.max_age, config.validation_fraction)
    labels = data.read_labels(train_source)
    train_mask = data.role_mask(labels, selection, "train")
    val_mask = data.role_mask(labels, selection, "validation")
    num_train, num_val = int(train_mask.sum()), int(val_mask.sum())
    if num_train + num_val == 0:
        raise UsageError(f"ages {config.min_age}-{config.max_age} select no example of "
                         f"{train_source.description} ({len(labels.ages)} examples, ages "
                         f"{labels.ages.min() if len(labels.ages) else 'n/a'}-"
                         f"{labels.ages.max() if len(labels.ages) else 'n/a'}).")
    if num_val == 0 or num_train == 0:
        raise UsageError(f"ages {config.min_age}-{config.max_age} leave {num_train} training and "
                         f"{num_val} validation examples in {train_source.description}; "
                         "widen the age range or change --validation-fraction.")
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    if num_train < global_batch:
        raise UsageError(f"{num_train} training examples are fewer than one global batch of "
                         f"{global_batch}; lower --batch-size.")
    steps_per_epoch = num_train // global_batch
    train_mean_age = float(labels.ages[train_mask].mean())
    mean_predictor_mae = float(np.abs(labels.ages[val_mask] - train_mean_age).mean())

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        try:
            model = build_model(config.model, train_source.volume_shape, config.width_multiplier,
                                config.slice_axis, config.slice_size, config.pool_size)
        except ValueError as error:
            raise UsageError(f"{config.model} cannot take volumes of shape "
                             f"{train_source.volume_shape}: {error}") from None
        schedule = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=config.halve_every_epochs * steps_per_epoch,
            decay_rate=0.5, staircase=True)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        optimizer.build(model.trainable_variables)
        # Start the age head at the training mean, so early epochs learn anatomy, not an offset.
        model.get_layer("age").bias.assign([train_mean_age])
        completed_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        best_val_mae = tf.Variable(np.inf, dtype=tf.float32, trainable=False, name="best_val_mae")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        (run_dir / "config.json").write_text(json.dumps(config.to_json(), indent=2) + "\n")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=completed_epochs,
                                     best_val_mae=best_val_mae)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / "checkpoints"),
                                         max_to_keep=config.checkpoints_to_keep)
    if resume and manager.latest_checkpoint is None:
        log(f"no checkpoint in {run_dir / 'checkpoints'} yet (killed during epoch 1): starting over")
    elif resume:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f"resumed {manager.latest_checkpoint} after epoch {int(completed_epochs.numpy())}")
    start_epoch = int(completed_epochs.numpy())

    # A fresh shuffle seed per session, so a resumed run does not replay the first epochs' order.
    train_stream = data.training_dataset(train_source, selection, num_train, global_batch,
                                         seed=config.seed + start_epoch,
                                         num_workers=role.num_workers)
    train_iterator = iter(strategy.experimental_distribute_dataset(train_stream))
    val_dataset = data.evaluation_dataset(train_source, selection, "validation", num_val,
                                          batch_size=max(config.batch_size, 1))

    # No Python control flow below, so AutoGraph is off (it also warns on these closures).
    @tf.function(jit_compile=config.jit_compile, autograph=False)
    def loss_and_gradients(volumes, ages):
        with tf.GradientTape() as tape:
            predicted = model(volumes, training=True)[:, 0]
            loss = tf.nn.compute_average_loss(tf.abs(predicted - ages),
                                              global_batch_size=global_batch)
        return loss, tape.gradient(loss, model.trainable_variables)

    @tf.autograph.experimental.do_not_convert
    def replica_step(volumes, ages):
        loss, gradients = loss_and_gradients(volumes, ages)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    @tf.function(autograph=False)
    def train_step(batch):
        per_replica_loss = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    @tf.function(autograph=False)
    def absolute_error_sum(volumes, ages):
        return tf.reduce_sum(tf.abs(model(volumes, training=False)[:, 0] - ages))

    def validation_mae() -> float:
        total = sum(float(absolute_error_sum(volumes, ages)) for volumes, ages in val_dataset)
        return total / num_val

    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if role.is_chief else None
    log(f"{config.model} on {train_source.description}: {num_train} train / {num_val} validation "
        f"examples (ages {config.min_age}-{config.max_age}), {steps_per_epoch} steps of global batch "
        f"{global_batch} ({strategy.num_replicas_in_sync} replicas) per epoch; run dir {run_dir}")
    log(f"validation MAE of always predicting the training mean ({train_mean_age:.2f} y): "
        f"{mean_predictor_mae:.3f} y")

    session_start = time.perf_counter()
    last_val_mae = math.nan
    end_epoch = config.epochs
    if stop_after_epochs is not None:
        end_epoch = min(end_epoch, start_epoch + stop_after_epochs)
    for epoch in range(start_epoch, end_epoch):
        epoch_start = time.perf_counter()
        learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        train_mae = sum(float(train_step(next(train_iterator))) for _ in range(steps_per_epoch))
        train_mae /= steps_per_epoch
        last_val_mae = validation_mae()
        completed_epochs.assign(epoch + 1)
        improved = last_val_mae < float(best_val_mae.numpy())
        if improved:
            best_val_mae.assign(last_val_mae)
            if role.is_chief:
                model.save(run_dir / "best_model.keras")
        manager.save(checkpoint_number=epoch + 1)
        seconds = time.perf_counter() - epoch_start
        if role.is_chief:
            _append_history(run_dir / "history.csv", dict(
                epoch=epoch + 1, train_mae=f"{train_mae:.4f}", val_mae=f"{last_val_mae:.4f}",
                learning_rate=f"{learning_rate:.3g}", seconds=f"{seconds:.1f}"))
            _write_scalars(writer, epoch + 1, train_mae=train_mae, val_mae=last_val_mae,
                           learning_rate=learning_rate)
        log(f"epoch {epoch + 1}/{config.epochs}: train MAE {train_mae:.3f}  val MAE "
            f"{last_val_mae:.3f}{' (best)' if improved else ''}  lr {learning_rate:.3g}  {seconds:.1f} s")

    results = dict(
        completed_epochs=int(completed_epochs.numpy()), epochs=config.epochs,
        optimizer_steps=int(optimizer.iterations.numpy()), steps_per_epoch=steps_per_epoch,
        best_val_mae=float(best_val_mae.numpy()), last_val_mae=last_val_mae,
        mean_predictor_val_mae=mean_predictor_mae, train_mean_age=train_mean_age,
        num_train=num_train, num_val=num_val, global_batch_size=global_batch,
        replicas=strategy.num_replicas_in_sync, session_seconds=time.perf_counter() - session_start,
    )
    if role.is_chief:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; defaults of preset-controlled flags are None (= preset)."""
    parser = argparse.ArgumentParser(
        prog="python -m brainage_tf.train",
        description="Train slice_lstm (2D-ResNet18+LSTM) or resnet3d on a TFDS brain-MRI dataset. "
                    "With no arguments: the demo run on the embedded synthetic cohort.")
    parser.add_argument("--model", choices=MODEL_NAMES, default="slice_lstm")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="TFDS name/config (default %(default)s, built automatically if absent).")
    parser.add_argument("--data_dir", "--data-dir", dest="data_dir", default=None,
                        help="TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets).")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--train-ages", nargs=2, type=float, metavar=("MIN", "MAX"), default=(0.0, 22.0),
                        help="Train on subjects aged MIN-MAX years, inclusive (paper: 0 22 or 0 6).")
    parser.add_argument("--validation-fraction", type=float, default=0.2,
                        help="Share of training subjects held out for model selection.")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="demo")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="Per-replica batch size.")
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--halve-every-epochs", type=int)
    parser.add_argument("--width-multiplier", type=float)
    parser.add_argument("--slice-axis", choices=SLICE_AXES, default="axial")
    parser.add_argument("--slice-size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--pool-size", type=int, help="k of the average pooling over slices.")
    parser.add_argument("--out", type=Path, help="Run directory (default runs/<model>_<UTC time>).")
    parser.add_argument("--resume", action="store_true",
                        help="Continue the run in --out from its last checkpoint (its config.json wins; "
                             "--epochs may extend it).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto")
    parser.add_argument("--logical-cpus", type=int, default=0,
                        help="Split the CPU into this many logical devices (mirrored without GPUs).")
    parser.add_argument("--jit-compile", action="store_true", help="XLA (GPUs; slower on CPU).")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Resolves flags over the chosen preset into a validated TrainConfig."""
    values = dict(PRESETS[args.preset])
    for name in ("epochs", "batch_size", "learning_rate", "halve_every_epochs", "width_multiplier",
                 "pool_size"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.slice_size is not None:
        values["slice_size"] = tuple(args.slice_size)
    config = TrainConfig(
        model=args.model, dataset=args.dataset, data_dir=args.data_dir, train_split=args.train_split,
        min_age=args.train_ages[0], max_age=args.train_ages[1],
        validation_fraction=args.validation_fraction, preset=args.preset, slice_axis=args.slice_axis,
        seed=args.seed, strategy=args.strategy, jit_compile=args.jit_compile, **values)
    config.validate()
    return config


def open_training_source(config: TrainConfig, log: Callable[[str], None] = print):
    """The training split as an ExampleSource, building the embedded synthetic cohort if absent.

    Raises:
        data.DatasetError: Any other dataset that is unknown or not prepared.
    """
    from brainage_tf import data

    data_dir = config.data_dir or data.default_data_dir()
    name, _, builder_config = config.dataset.partition("/")
    if name == "synthetic_cohort" and not data.is_prepared(config.dataset, data_dir):
        log(f"building the embedded {config.dataset} dataset in {data_dir} (first run only)")
        try:
            log(data.build_synthetic_cohort(builder_config or "small", data_dir))
        except (ImportError, ValueError) as error:
            raise data.DatasetError(f"cannot build {config.dataset}: {error}") from None
    return data.tfds_source(config.dataset, config.train_split, data_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m brainage_tf.train`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    role = worker_role_from_env()
    try:
        run_dir = args.out if args.out is not None else default_run_dir(args.model)
        run_dir = worker_run_dir(run_dir, role)
        if args.resume:
            prepare_run_dir(run_dir, resume=True)
            config = TrainConfig.from_json(json.loads((run_dir / "config.json").read_text()))
            if args.epochs is not None:
                config.epochs = args.epochs
        else:
            config = config_from_args(args)
            prepare_run_dir(run_dir, resume=False)
        config.validate()
        if args.logical_cpus > 1:
            split_cpu(args.logical_cpus)
        strategy = make_strategy(config.strategy, role)
        from brainage_tf.data import DatasetError, default_data_dir

        config.data_dir = config.data_dir or default_data_dir()
        try:
            source = open_training_source(config)
        except DatasetError as error:
            raise UsageError(str(error)) from None
        started = time.perf_counter()
        results = run_training(config, source, run_dir, strategy, role=role, resume=args.resume)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if role.is_chief:
        print(f"done in {time.perf_counter() - started:.0f} s: best validation MAE "
              f"{results['best_val_mae']:.3f} y vs {results['mean_predictor_val_mae']:.3f} y for the "
              f"training-mean predictor.\nrun directory: {run_dir.resolve()}\n"
              f"  config.json, history.csv, results.json, best_model.keras, checkpoints/, tensorboard/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
