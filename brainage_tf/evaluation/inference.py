"""Run a run directory's trained model over a dataset split, keeping every subject's labels.

Predictions carry what evaluation needs beside the age: the subject's metadata
(subject, session, site, sex, registration NCC when the dataset has them) and two
intensity statistics of each volume, which the out-of-distribution check compares
with the training cohort's.
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from brainage_tf import data
from brainage_tf.errors import UsageError
from brainage_tf.evaluation.ood import intensity_statistics
from brainage_tf.models import build_model
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.run_directory import RunDirectory

PREDICTION_BATCH_SIZE = 4


@dataclasses.dataclass
class Predictions:
    """One row per predicted scan, in dataset order.

    Attributes:
        ages: Chronological ages (years).
        predicted: Predicted ages (years); NaN or inf when the model failed on a scan.
        columns: Per-scan metadata, name -> array (strings decoded), e.g. subject_id.
        intensity_mean: Mean voxel value of each preprocessed volume.
        intensity_std: Standard deviation of each preprocessed volume.
    """

    ages: np.ndarray
    predicted: np.ndarray
    columns: dict[str, np.ndarray]
    intensity_mean: np.ndarray
    intensity_std: np.ndarray

    def __len__(self) -> int:
        return len(self.ages)

    def subset(self, mask: np.ndarray) -> Predictions:
        """The rows where mask is True."""
        return Predictions(
            self.ages[mask],
            self.predicted[mask],
            {name: values[mask] for name, values in self.columns.items()},
            self.intensity_mean[mask],
            self.intensity_std[mask],
        )


def load_run_model(run: RunDirectory, config: TrainConfig, volume_shape=None, checkpoint: str = "best"):
    """The run's trained model: `best_model.keras`, or the weights of its last checkpoint.

    Args:
        run: The run directory.
        config: The run's config (to rebuild the model for `last`).
        volume_shape: Spatial shape of the volumes it will see; must match the model's. Needed
            for `last` (to rebuild the model); None skips the check for `best`.
        checkpoint: "best" (the selected model) or "last" (the last epoch's checkpoint).

    Raises:
        UsageError: No finished model, or a model built for another grid.
    """
    if checkpoint == "best":
        if not run.best_model_path.is_file():
            raise UsageError(f"{run.path} has no best_model.keras: the run has not finished an epoch.")
        model = keras.models.load_model(run.best_model_path)
    else:
        latest = tf.train.latest_checkpoint(str(run.checkpoint_dir))
        if latest is None:
            raise UsageError(f"{run.checkpoint_dir} has no checkpoint: the run has not finished an epoch.")
        model = build_model(volume_shape=volume_shape, **config.model_arguments())
        tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    model_shape = tuple(int(dim) for dim in model.input_shape[1:4])
    if volume_shape is not None and model_shape != tuple(volume_shape):
        raise UsageError(
            f"the run's model takes volumes of shape {model_shape}, the dataset has {tuple(volume_shape)}: "
            "evaluate on a dataset of the grid the run was trained on."
        )
    return model


@functools.lru_cache(maxsize=4)
def _forward_function(model):
    """One traced forward pass per model for every split it predicts (a new one per call retraced)."""
    return tf.function(lambda volumes: model(volumes, training=False)[:, 0], autograph=False,
                       reduce_retracing=True)  # fmt: skip


def predict(model, source: data.ExampleSource, selection: data.Selection, role: str) -> Predictions:
    """Predicts every selected scan of a source.

    Args:
        model: A Keras model taking (batch, x, y, z, 1).
        source: The split.
        selection: Age range and validation carve-out.
        role: "all", "train" or "validation".

    Returns:
        The predictions with each scan's labels and intensity statistics.
    """

    return _read(source, selection, role, _forward_function(model))


def scan_statistics(source: data.ExampleSource, selection: data.Selection, role: str) -> Predictions:
    """Every selected scan's labels and intensity statistics, without a model (predicted is NaN).

    What the out-of-distribution ranges are measured on: the preprocessed volumes alone,
    so calibration need not run the model over the whole training split.
    """
    return _read(source, selection, role, None)


def _read(source: data.ExampleSource, selection: data.Selection, role: str, forward) -> Predictions:
    """The selected scans' labels, intensity statistics and, given a forward pass, predictions."""
    ages, predicted, means, stds = [], [], [], []
    columns: dict[str, list] = {}
    for volumes, labels in data.prediction_dataset(source, selection, role, PREDICTION_BATCH_SIZE):
        batch = volumes.numpy()
        predicted.append(forward(volumes).numpy() if forward else np.full(len(batch), np.nan))
        # The serving check's own definition (float64 per volume), so ranges and checks agree.
        statistics = np.array([intensity_statistics(volume) for volume in batch]).reshape(-1, 2)
        means.append(statistics[:, 0])
        stds.append(statistics[:, 1])
        ages.append(labels.pop("age").numpy())
        for name, values in labels.items():
            values = values.numpy()
            columns.setdefault(name, []).append(
                np.char.decode(values.astype(bytes), "utf-8") if values.dtype == object else values
            )
    if not ages:
        return Predictions(np.zeros(0, np.float32), np.zeros(0, np.float32), {}, np.zeros(0), np.zeros(0))
    return Predictions(
        np.concatenate(ages).astype(np.float64),
        np.concatenate(predicted).astype(np.float64),
        {name: np.concatenate(parts) for name, parts in columns.items()},
        np.concatenate(means),
        np.concatenate(stds),
    )
