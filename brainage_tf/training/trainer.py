"""The trainer: build the model and optimizer, step, evaluate, fit.

One custom loop serves every strategy (one_device, mirrored, multi_worker):
Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy (see
tests/keras_fit_multi_worker_probe.py), and one loop means one behaviour for
checkpoints, resume and logging everywhere.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from brainage_tf import data
from brainage_tf.errors import UsageError
from brainage_tf.evaluation.calibration import DEFAULT_CONFORMAL_LEVEL, min_calibration_subjects
from brainage_tf.models import build_model
from brainage_tf.preprocessing import GRIDS
from brainage_tf.preprocessing_record import record_differences
from brainage_tf.progress import progress_bar
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.fused_adam import FusedAdam
from brainage_tf.training.init_from import freeze, start_from_parent
from brainage_tf.training.precision import resolve_precision
from brainage_tf.training.run_directory import RunDirectory


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """What the selected examples allow, decided before any weight exists.

    Attributes:
        num_train: Training examples in the age range.
        num_val: Examples of the validation part's selection subjects, which pick the best
            epoch (0 without a validation part).
        num_calibration: Examples of its calibration subjects, kept out of that choice.
        calibration_subjects: Subjects of the calibration part.
        global_batch: Per-replica batch times replicas.
        steps_per_epoch: Full global batches per epoch.
        train_mean_age: Mean training age; the age head's initial bias.
        mean_predictor_val_mae: Validation MAE of always predicting train_mean_age (None without validation).
    """

    num_train: int
    num_val: int
    num_calibration: int
    calibration_subjects: int
    global_batch: int
    steps_per_epoch: int
    train_mean_age: float
    mean_predictor_val_mae: float | None


def plan_training(config: TrainConfig, labels: data.Labels, replicas: int, description: str) -> TrainingPlan:
    """Counts the examples each role gets and checks they can train.

    Raises:
        UsageError: No example in the age range, no training or validation example
            left, or fewer training examples than one global batch.
    """
    missing = sorted(set(config.train_subjects) - set(labels.subject_ids.astype(str)))
    if missing:
        raise UsageError(
            f"--train-subjects: {len(missing)} of the {len(set(config.train_subjects))} listed subjects "
            f"are not in {description}, e.g. {', '.join(missing[:3])}."
        )
    selection = selection_of(config)
    train_mask = data.role_mask(labels, selection, "train")
    val_mask = data.role_mask(labels, selection, "selection")
    calibration_mask = data.role_mask(labels, selection, "calibration")
    num_train, num_val = int(train_mask.sum()), int(val_mask.sum())
    num_calibration = int(calibration_mask.sum())
    ages = f"ages {config.min_age}-{config.max_age}"
    if num_train + num_val + num_calibration == 0:
        age_span = f"{labels.ages.min()}-{labels.ages.max()}" if len(labels.ages) else "n/a"
        raise UsageError(
            f"{ages} select no example of {description} ({len(labels.ages)} examples, ages {age_span})."
        )
    if num_train == 0 or (config.selects_best_epoch and num_val == 0):
        raise UsageError(
            f"{ages} leave {num_train} training and {num_val} validation examples that pick the epoch in "
            f"{description}; widen the age range or change --validation-fraction or --calibration-fraction."
        )
    global_batch = config.batch_size * replicas
    if num_train < global_batch:
        raise UsageError(
            f"{num_train} training examples are fewer than one global batch of "
            f"{global_batch}; lower --batch-size."
        )
    train_mean_age = float(labels.ages[train_mask].mean())
    mean_predictor = float(np.abs(labels.ages[val_mask] - train_mean_age).mean()) if num_val else None
    return TrainingPlan(
        num_train,
        num_val,
        num_calibration,
        len(set(labels.subject_ids[calibration_mask])),
        global_batch,
        num_train // global_batch,
        train_mean_age,
        mean_predictor,
    )


def with_preprocessing(config: TrainConfig, source: data.ExampleSource) -> TrainConfig:
    """The config with the source's preprocessing record, which a new run writes into config.json.

    Raises:
        UsageError: A resumed run whose recorded preprocessing is not its dataset's any more.
    """
    if source.preprocessing is None or config.preprocessing == source.preprocessing:
        return config
    if config.preprocessing is None:
        return config.replace(preprocessing=source.preprocessing)
    differences = record_differences(config.preprocessing, source.preprocessing)
    if not differences:  # an older run's record of the same settings (`upgraded_record`)
        return config
    raise UsageError(
        f"the run was trained on data preprocessed otherwise than {source.description} is now "
        f"(run vs dataset: {'; '.join(differences)}); train a new run."
    )


def selection_of(config: TrainConfig) -> data.Selection:
    """The examples of the training split that the config trains and validates on."""
    return data.Selection(
        config.min_age,
        config.max_age,
        config.validation_fraction,
        config.calibration_fraction,
        config.calibration_seed,
        config.train_subjects,
    )


class Trainer:
    """Trains one model under one tf.distribute strategy and writes its run directory.

    Example:
        >>> trainer = Trainer(TrainConfig.demo(), source, strategy, RunDirectory(Path("runs/x")))
        >>> results = trainer.fit()        # or trainer.fit(resume=True) after a kill
        >>> results["best_val_mae"]
    """

    def __init__(
        self,
        config: TrainConfig,
        source: data.ExampleSource,
        strategy,
        run: RunDirectory,
        *,
        log: Callable[[str], None] = print,
        progress_bar: bool = False,
    ):
        """Plans the run and builds model, optimizer and checkpoint under the strategy.

        Args:
            config: Validated run configuration.
            source: The training split; validation is carved from it by subject.
            strategy: tf.distribute strategy (created before any other TF op).
            run: This worker's run directory.
            log: Progress printer.
            progress_bar: Show a bar within each epoch (for a terminal).

        Raises:
            UsageError: The selection cannot train (see plan_training), or the model
                cannot take the source's volumes.
        """
        precision, reason = resolve_precision(config.precision)
        if precision != config.precision:
            log(f"--precision {config.precision}: {precision} ({reason})")
            # The resolved policy is what config.json records, so a resume or an export rebuilds it.
            config = config.replace(precision=precision)
        config = with_preprocessing(config, source)
        self.config, self.source, self.strategy, self.run = config, source, strategy, run
        self.log, self.progress_bar = log, progress_bar
        self.plan = plan_training(
            config, data.read_labels(source), strategy.num_replicas_in_sync, source.description
        )
        if config.preset == "paper" and tuple(source.volume_shape) != GRIDS["paper"].shape:
            log(
                f"warning: --preset paper on volumes of shape {tuple(source.volume_shape)}, not the paper "
                f"grid {GRIDS['paper'].shape}; the recipe was tuned for the paper grid."
            )
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            try:
                self.model = build_model(volume_shape=source.volume_shape, **config.model_arguments())
            except ValueError as error:
                raise UsageError(
                    f"{config.model} cannot take volumes of shape {source.volume_shape}: {error}"
                ) from None
            # Before the optimizer is built, so it makes no state for, and never updates, frozen weights.
            freeze(self.model, config)
            schedule = keras.optimizers.schedules.ExponentialDecay(
                config.learning_rate,
                decay_steps=config.halve_every_epochs * self.plan.steps_per_epoch,
                decay_rate=0.5,
                staircase=True,
            )
            self.optimizer = FusedAdam(learning_rate=schedule)
            if config.precision == "mixed_float16":
                # float16 gradients underflow without a (dynamic) loss scale; bfloat16 has float32's range.
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)
            # Start the age head at the training mean, so early epochs learn anatomy, not an offset.
            self.model.get_layer("age").bias.assign([self.plan.train_mean_age])
            self.completed_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
            self.best_val_mae = tf.Variable(np.inf, dtype=tf.float32, trainable=False, name="best_val_mae")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            epoch=self.completed_epochs,
            best_val_mae=self.best_val_mae,
        )
        selection = selection_of(config)
        self.epoch_dataset = data.training_epochs(
            source,
            selection,
            self.plan.num_train,
            self.plan.global_batch,
            seed=config.seed,
            num_workers=run.role.num_workers,
        )
        self.validation_dataset = data.evaluation_dataset(
            source, selection, "selection", self.plan.num_val, batch_size=config.batch_size
        )
        self._compile_steps()

    def _compile_steps(self) -> None:
        global_batch = self.plan.global_batch
        model, optimizer, strategy = self.model, self.optimizer, self.strategy

        # No Python control flow inside, so AutoGraph is off (it also warns on these closures).
        @tf.function(jit_compile=self.config.jit_compile, autograph=False)
        def loss_and_gradients(volumes, ages):
            with tf.GradientTape() as tape:
                predicted = model(volumes, training=True)[:, 0]
                # MAE over the global batch: each replica's share, summed across replicas below.
                loss = tf.nn.compute_average_loss(tf.abs(predicted - ages), global_batch_size=global_batch)
                # The loss scale of mixed_float16 (identity otherwise); apply_gradients unscales.
                scaled_loss = optimizer.scale_loss(loss)
            return loss, tape.gradient(scaled_loss, model.trainable_variables)

        @tf.autograph.experimental.do_not_convert
        def replica_step(volumes, ages):
            loss, gradients = loss_and_gradients(volumes, ages)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        @tf.function(autograph=False)
        def train_step(batch):
            per_replica_loss = strategy.run(replica_step, args=batch)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

        @tf.function(autograph=False)
        def absolute_error_sum(volumes, ages):
            return tf.reduce_sum(tf.abs(model(volumes, training=False)[:, 0] - ages))

        self._train_step, self._absolute_error_sum = train_step, absolute_error_sum

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next optimizer step (the schedule at optimizer.iterations)."""
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    def distribute(self, dataset: tf.data.Dataset):
        """An iterator of the dataset's global batches split across the strategy's replicas."""
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def train_step(self, batch) -> float:
        """One optimizer step on a distributed global batch; returns that batch's MAE in years."""
        return float(self._train_step(batch))

    def evaluate(self) -> float:
        """MAE (years) of the current model on the validation part's selection subjects; NaN without one.

        Every worker evaluates the whole validation part, so all take the same
        model-selection decision.
        """
        if not self.plan.num_val:
            return math.nan
        total = sum(
            float(self._absolute_error_sum(volumes, ages)) for volumes, ages in self.validation_dataset
        )
        return total / self.plan.num_val

    def fit(self, resume: bool = False, stop_after_epochs: int | None = None) -> dict:
        """Trains to config.epochs and writes the run directory.

        Args:
            resume: Continue from the last checkpoint in the run directory.
            stop_after_epochs: Stop after this many epochs of this session (simulates a kill in tests).

        Returns:
            The results dict also written to results.json (chief).
        """
        manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.run.checkpoint_dir), max_to_keep=self.config.checkpoints_to_keep
        )
        if self.config.init_from and not (resume and manager.latest_checkpoint):
            # A run that starts (or starts over) takes the parent's weights; a resume, its checkpoint's.
            self.config = start_from_parent(self.model, self.config, self.source, self.log)
        config, plan = self.config, self.plan
        self.run.start(config, resume)
        if resume and manager.latest_checkpoint is None:
            self.log(f"no checkpoint in {self.run.checkpoint_dir} yet (killed during epoch 1): starting over")
        elif resume:
            self.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            self.log(f"resumed {manager.latest_checkpoint} after epoch {int(self.completed_epochs.numpy())}")
        self._log_start()

        session_start = time.perf_counter()
        start_epoch = int(self.completed_epochs.numpy())
        end_epoch = (
            config.epochs
            if stop_after_epochs is None
            else min(config.epochs, start_epoch + stop_after_epochs)
        )
        last_train_mae = last_val_mae = math.nan
        for epoch in range(start_epoch, end_epoch):
            epoch_start = time.perf_counter()
            learning_rate = self.learning_rate
            train_mae = last_train_mae = self._train_epoch(epoch)
            last_val_mae = self.evaluate()
            self.completed_epochs.assign(epoch + 1)
            if config.selects_best_epoch:
                keep = last_val_mae < float(self.best_val_mae.numpy())
                if keep:
                    self.best_val_mae.assign(last_val_mae)
            else:
                keep = epoch + 1 == config.epochs
            if keep:
                self.run.save_model(self.model)
            manager.save(checkpoint_number=epoch + 1)
            seconds = time.perf_counter() - epoch_start
            self.run.record_epoch(epoch + 1, train_mae, last_val_mae, learning_rate, seconds)
            validation = f"  val MAE {last_val_mae:.3f}{' (best)' if keep else ''}" if plan.num_val else ""
            self.log(
                f"epoch {epoch + 1}/{config.epochs}: train MAE {train_mae:.3f}{validation}  "
                f"lr {learning_rate:.3g}  {seconds:.1f} s"
            )

        results = dict(
            completed_epochs=int(self.completed_epochs.numpy()),
            epochs=config.epochs,
            model_selection="lowest validation MAE" if config.selects_best_epoch else "final epoch",
            optimizer_steps=int(self.optimizer.iterations.numpy()),
            steps_per_epoch=plan.steps_per_epoch,
            best_val_mae=float(self.best_val_mae.numpy()) if config.selects_best_epoch else None,
            last_val_mae=None if math.isnan(last_val_mae) else last_val_mae,
            last_train_mae=None if math.isnan(last_train_mae) else last_train_mae,
            mean_predictor_val_mae=plan.mean_predictor_val_mae,
            train_mean_age=plan.train_mean_age,
            num_train=plan.num_train,
            num_val=plan.num_val,
            num_calibration=plan.num_calibration,
            global_batch_size=plan.global_batch,
            replicas=self.strategy.num_replicas_in_sync,
            session_seconds=time.perf_counter() - session_start,
            parent=config.lineage,
        )
        self.run.write_results(results)
        return results

    def _train_epoch(self, epoch: int) -> float:
        """Runs one epoch's steps; returns the mean of their batch MAEs."""
        batches = self.distribute(self.epoch_dataset(epoch))
        steps = progress_bar(
            range(self.plan.steps_per_epoch),
            description=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="step",
            enabled=self.progress_bar,
        )
        total = 0.0
        for step in steps:
            total += self.train_step(next(batches))
            steps.set_postfix(train_mae=f"{total / (step + 1):.3f}", refresh=False)
        return total / self.plan.steps_per_epoch

    def _log_start(self) -> None:
        config, plan = self.config, self.plan
        validation = (
            f"{plan.num_val} validation (picking the epoch) / {plan.num_calibration} calibration"
            if config.selects_best_epoch
            else "no validation part (the final epoch is kept)"
        )
        self.log(
            f"{config.model} on {self.source.description}: {plan.num_train} train / {validation} "
            f"examples (ages {config.min_age}-{config.max_age}), {plan.steps_per_epoch} steps of global "
            f"batch {plan.global_batch} ({self.strategy.num_replicas_in_sync} replicas) per epoch; "
            f"run dir {self.run.path}"
        )
        if plan.mean_predictor_val_mae is not None:
            self.log(
                f"validation MAE of always predicting the training mean ({plan.train_mean_age:.2f} y): "
                f"{plan.mean_predictor_val_mae:.3f} y"
            )
        needed = min_calibration_subjects(DEFAULT_CONFORMAL_LEVEL)
        if config.selects_best_epoch and config.calibration_fraction and plan.calibration_subjects < needed:
            self.log(
                f"warning: {plan.calibration_subjects} calibration subjects are too few for "
                f"{DEFAULT_CONFORMAL_LEVEL:.0%} prediction intervals (at least {needed}): they will be "
                "unbounded; raise --validation-fraction or --calibration-fraction."
            )
