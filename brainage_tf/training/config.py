"""What defines a training run, and the named presets that fill it.

`TrainConfig`'s defaults are the paper's recipe, so every hyper-parameter is
written once: `TrainConfig.paper()` is the defaults, `TrainConfig.demo()` overrides
what a CPU needs, `TrainConfig.finetune()` what adapting a trained model needs.
`PRESETS` maps the `--preset` names to these factories, as TF Model Garden maps
experiment names to config factories. Nothing here imports
TensorFlow, so flags are checked before any heavy import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from brainage_tf.defaults import (
    CALIBRATION_FRACTION,
    DEFAULT_DATASET,
    DEFAULT_POOL_SIZE,
    DEFAULT_SLICE_AXIS,
    DEFAULT_SLICE_SIZE,
    MAX_AGE_YEARS,
    MIN_AGE_YEARS,
    SLICE_AXES,
    VALIDATION_FRACTION,
)
from brainage_tf.errors import UsageError
from brainage_tf.model_registry import DEFAULT_MODEL, get_model_spec, model_names

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# `--precision`: "auto" resolves to one of the Keras dtype policies after it (training.precision).
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# `--freeze`: what stays fixed while fine-tuning; "encoder" is the layers of the model's
# `ModelSpec.encoder_layers`.
FREEZE_CHOICES = ("none", "encoder")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run; written to `<run_dir>/config.json`.

    Example:
        >>> config = TrainConfig.demo()
        >>> config.epochs, config.batch_size, config.validation_fraction
        (30, 8, 0.2)
        >>> TrainConfig.paper().replace(min_age=0.0, max_age=6.0).learning_rate
        0.0001

    Attributes:
        model: A registered model name (`brainage_tf.model_registry`): "slice_lstm" or "resnet3d".
        dataset: TFDS name with config, e.g. "synthetic_cohort/small".
        data_dir: TFDS data dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
        train_split: TFDS split to train on; validation is carved from it by subject.
        min_age: Youngest training age kept (years, inclusive).
        max_age: Oldest training age kept (years, inclusive).
        train_subjects: The only subjects of the split the run uses (empty: all), e.g. the N
            scans of a site to fine-tune on; validation then takes exactly
            max(1, round(fraction x N)) of them (`subject_roles.listed_validation_threshold`).
        validation_fraction: Share of training subjects held out for model selection.
            0 trains on the whole split and keeps the final epoch, as the paper did.
        calibration_fraction: Share of those validation subjects that take no part in
            choosing the epoch and calibrate the conformal intervals instead; the rest
            (the selection part) choose the epoch. 0: no intervals.
        calibration_seed: Seed of the hash that splits validation into selection and calibration.
        preset: Name of the preset the run started from ("paper", "demo" or "finetune").
        epochs: Epochs to train.
        batch_size: Per-replica batch size; the global batch is this times the replicas.
        learning_rate: Initial Adam learning rate.
        halve_every_epochs: The learning rate halves after every this many epochs.
        width_multiplier: Scales every ResNet18 filter count.
        slice_axis: Slicing plane: "axial", "coronal" or "sagittal".
        slice_size: (height, width) each slice is resized to inside the model.
        pool_size: k of AveragePooling1D(k, strides=k) over the slices.
            These four are model fields: each matters only to the models whose
            `ModelSpec.config_fields` name it (slice_lstm: all four; resnet3d: width_multiplier).
        seed: Seed of weight initialisation and of every epoch's shuffle order.
        strategy: "auto", "one_device", "mirrored" or "multi_worker".
        jit_compile: XLA-compile the gradient step (for GPUs; 5-9x slower on CPU).
        precision: Keras dtype policy of the model ("float32", "mixed_bfloat16", "mixed_float16"),
            or "auto", which the trainer resolves to one of them for this machine before
            config.json is written.
        checkpoints_to_keep: Most recent per-epoch checkpoints kept on disk.
        preprocessing: The training dataset's preprocessing record
            (`brainage_tf.preprocessing_record`). Not a flag: training fills it from the
            dataset when a new run starts, so config.json records it and the export and
            evaluation read it from there; None for in-memory data.
        init_from: The parent: a run directory or an export version folder whose weights
            the run starts from (fine-tuning); None trains from scratch. A new run records
            it as an absolute path.
        init_fingerprint: "sha256:<hex>" of the parent's weights (`training.init_from`).
            Training fills it when a new run starts; given beforehand, the parent must match it.
        freeze: "none" trains every weight; "encoder" keeps the model's encoder
            (`ModelSpec.encoder_layers`) at the parent's weights.
    """

    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    train_split: str = "train"
    min_age: float = MIN_AGE_YEARS
    max_age: float = MAX_AGE_YEARS
    train_subjects: tuple[str, ...] = ()
    # The paper: train on the whole 80 % split, MAE loss, Adam 1e-4 halved every
    # 15 epochs, 60 epochs, batch 1, full-width ResNet18 on 50x50 slices.
    validation_fraction: float = 0.0
    calibration_fraction: float = CALIBRATION_FRACTION
    calibration_seed: int = 0
    preset: str = "paper"
    epochs: int = 60
    batch_size: int = 1
    learning_rate: float = 1e-4
    halve_every_epochs: int = 15
    width_multiplier: float = 1.0
    slice_axis: str = DEFAULT_SLICE_AXIS
    slice_size: tuple[int, int] = DEFAULT_SLICE_SIZE
    pool_size: int = DEFAULT_POOL_SIZE
    seed: int = 0
    strategy: str = "auto"
    jit_compile: bool = False
    # float32 unless asked: a default that changed with the host's CPU would make runs machine-dependent.
    precision: str = "float32"
    checkpoints_to_keep: int = 3
    preprocessing: dict | None = None
    init_from: str | None = None
    init_fingerprint: str | None = None
    freeze: str = "none"

    @classmethod
    def paper(cls) -> TrainConfig:
        """He et al. (ISBI 2020): the defaults. Needs a GPU (about 22 h for NIH-PD on 2 CPU cores)."""
        return cls()

    @classmethod
    def demo(cls) -> TrainConfig:
        """Sized for about 1.5 minutes of training on 2 CPU cores on synthetic_cohort/small.

        A quarter-width ResNet18 at batch 8 and Adam 1e-3 halved every 10 epochs
        converge in 30 epochs (docs/training.md has the step times that set it).
        A validation part selects the best epoch, since a short run overfits.
        """
        return cls(
            preset="demo",
            validation_fraction=VALIDATION_FRACTION,
            epochs=30,
            batch_size=8,
            learning_rate=1e-3,
            halve_every_epochs=10,
            width_multiplier=0.25,
        )

    @classmethod
    def finetune(cls) -> TrainConfig:
        """Adapting a trained model (`--init-from`) to a new site's few scans.

        A tenth of the demo's learning rate and few epochs, so the parent's features are
        adjusted rather than overwritten; a validation part of the site's subjects picks the
        epoch. The architecture fields are the parent's (`training.init_from`), not these.
        docs/training.md ("Fine-tuning") has the measurement that chose the values.
        """
        return cls.demo().replace(preset="finetune", epochs=10, learning_rate=1e-4, halve_every_epochs=5)

    def replace(self, **changes) -> TrainConfig:
        """A copy with the given fields changed (tuples normalised)."""
        for name in ("slice_size", "train_subjects"):
            if name in changes:
                changes[name] = tuple(changes[name])
        return dataclasses.replace(self, **changes)

    @property
    def lineage(self) -> dict | None:
        """Where the run's weights came from, for results.json and the export (None: from scratch)."""
        if self.init_from is None:
            return None
        return {"path": self.init_from, "fingerprint": self.init_fingerprint, "freeze": self.freeze}

    @property
    def selects_best_epoch(self) -> bool:
        """True when a validation part exists to pick the best epoch; else the final epoch is kept."""
        return self.validation_fraction > 0.0

    def validate(self) -> None:
        """Raises UsageError for any value that cannot work (cheap checks only)."""
        _check_choice("model", self.model, model_names())
        _check_choice("preset", self.preset, tuple(PRESETS))
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("slice axis", self.slice_axis, SLICE_AXES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("freeze choice", self.freeze, FREEZE_CHOICES)
        if self.init_from is None and (self.freeze != "none" or self.preset == "finetune"):
            what = f"--freeze {self.freeze}" if self.freeze != "none" else "--preset finetune"
            raise UsageError(f"{what} needs --init-from: it adapts a trained model, and none is given.")
        if self.freeze == "encoder" and not get_model_spec(self.model).encoder_layers:
            raise UsageError(f"--freeze encoder: model {self.model} names no encoder in the model registry.")
        if any(not isinstance(subject, str) or not subject.strip() for subject in self.train_subjects):
            raise UsageError("--train-subjects: every listed subject id must be a non-empty text.")
        if not (math.isfinite(self.min_age) and math.isfinite(self.max_age)):
            raise UsageError("--train-ages must be finite numbers.")
        if self.min_age > self.max_age:
            raise UsageError(f"--train-ages: minimum age {self.min_age} is above maximum age {self.max_age}.")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise UsageError(f"--validation-fraction must be in [0, 1), got {self.validation_fraction}.")
        if not 0.0 <= self.calibration_fraction < 1.0:
            raise UsageError(f"--calibration-fraction must be in [0, 1), got {self.calibration_fraction}.")
        if self.calibration_seed < 0:
            raise UsageError(f"--calibration-seed must be at least 0, got {self.calibration_seed}.")
        for name in ("epochs", "batch_size", "halve_every_epochs", "pool_size", "checkpoints_to_keep"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.learning_rate <= 0 or self.width_multiplier <= 0:
            raise UsageError("learning rate and width multiplier must be positive.")
        if len(self.slice_size) != 2 or min(self.slice_size) < 8:
            raise UsageError(f"--slice-size needs two sizes of at least 8, got {self.slice_size}.")

    def model_arguments(self) -> dict:
        """The keyword arguments of `brainage_tf.models.build_model` this config fixes (all but the shape).

        Only the fields the model's spec names: the others play no part in it.
        """
        fields = get_model_spec(self.model).config_fields
        return dict(
            model_name=self.model, precision=self.precision, **{name: getattr(self, name) for name in fields}
        )

    def to_json(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_json(cls, values: dict) -> TrainConfig:
        """Inverse of to_json; unknown keys are an error so a stale config is not half-read."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UsageError(f"config.json has unknown keys {sorted(unknown)}.")
        # A run from before the calibration part chose its epoch on every validation subject:
        # none is left whose intervals would hold.
        return cls().replace(**{"calibration_fraction": 0.0, **values})


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}.")


# Preset name -> config factory (`--preset NAME`).
PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "paper": TrainConfig.paper,
    "demo": TrainConfig.demo,
    "finetune": TrainConfig.finetune,
}
