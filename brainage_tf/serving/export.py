"""Export a trained run for TF Serving: the SavedModel, its signatures and its metadata.

`export_run(run_dir)` writes the TF Serving layout `RUN_DIR/export/<version>/`
(saved_model.pb, variables/, assets/brainage_metadata.json): a `tf.Module` with two
signatures,

* `serving_default`: `volume` float32 [batch, x, y, z], a preprocessed volume on the
  run's grid (no channel axis);
* `predict_examples`: `examples` string [batch], serialized `tf.train.Example`
  records as the TFDS cohort builders write them (`volume` zlib-compressed float16),
  decoded with core TensorFlow ops only, so loading the export needs no TFDS;

both returning `predicted_age` and, when `RUN_DIR/calibration.json` has them,
`corrected_predicted_age` (the age-free inverse of the fitted bias line,
(predicted - intercept) / slope) and `interval_low`, `interval_high` (conformal).
The preprocessing the model expects, the run's record of its dataset's preprocessing
(config.json), is written into the export (`metadata()` and the asset). An existing
version is never overwritten. `write_version` writes a version from a model, its calibration
and its metadata; `export_run` and `brainage_tf.serving.recalibration` both call it. The
command is `python -m brainage_tf.export`; see docs/serving.md.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from brainage_tf import __version__
from brainage_tf.errors import DatasetError, PreprocessingRecordError, UsageError
from brainage_tf.model_registry import UnknownModelError, get_model_spec
from brainage_tf.preprocessing_record import NORMALIZATION, check_record, upgraded_record
from brainage_tf.serving.metadata import METADATA_ASSET, next_version
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.run_directory import CHECKPOINTS, RunDirectory


def preprocessing_keys(record: dict | None, shape: Sequence[int]) -> dict:
    """The flat `grid`, `grid_shape`, `voxel_size_mm`, `registration` keys of the export's metadata.

    Args:
        record: The run's preprocessing record (config.json), None for in-memory training.
        shape: The model's input volume shape (x, y, z).

    Returns:
        The keys, taken from the record; grid, voxel size and registration are None without one.

    Raises:
        UsageError: The record is incomplete, of another preprocessing version, or its grid
            shape is not the model's input shape.
    """
    shape = [int(size) for size in shape]
    if record is None:  # nothing says how in-memory volumes were made, so predict cannot make them
        return {"grid": None, "grid_shape": shape, "voxel_size_mm": None, "registration": None}
    try:
        check_record(record)
    except PreprocessingRecordError as error:
        raise UsageError(
            f"the run's config.json: {error}; retrain on a dataset built by this version."
        ) from None
    if list(record["grid_shape"]) != shape:
        raise UsageError(
            f"the run's preprocessing record has grid shape {record['grid_shape']}, "
            f"but its model takes volumes of shape {tuple(shape)}."
        )
    return {
        "grid": record["grid"],
        "grid_shape": shape,
        "voxel_size_mm": record["voxel_size_mm"],
        "registration": record["registration"],
    }


def export_metadata(config: TrainConfig, shape: Sequence[int], checkpoint: str, calibration: dict) -> dict:
    """The preprocessing settings and provenance written into the export (JSON-ready).

    The preprocessing comes from the run's record (config.json), which training copied from
    its dataset; the flat keys repeat the parts TF Serving users and `metadata()` read. Of
    the model fields, only those the model is built from (its spec's `config_fields`) are
    written: with the name, they rebuild the model, and explanation reads its slabs from them.
    """
    record = upgraded_record(config.preprocessing)  # an older run's `brain_mask` written as its mode
    values = config.to_json()
    return {
        **preprocessing_keys(record, shape),
        "normalization": record["normalization"] if record else NORMALIZATION,
        "preprocessing": record,
        **{field: values[field] for field in get_model_spec(config.model).config_fields},
        "model": config.model,
        # The model computes in this policy; its input (float32) and outputs (float32) do not change.
        "precision": config.precision,
        "training_age_range": [float(config.min_age), float(config.max_age)],
        "package_version": __version__,
        "dataset": config.dataset,
        # Fine-tuned runs: the parent's path, its weights' fingerprint and --freeze (None: from scratch).
        "parent": config.lineage,
        "checkpoint": checkpoint,
        "bias_correction": calibration.get("bias_correction"),
        "conformal": calibration.get("conformal"),
        "reference": calibration.get("reference"),
        # Centiles of the bias-corrected gap by age; they belong to this bias correction.
        "normative": calibration.get("normative"),
    }


def _serving_module(model, shape: Sequence[int], calibration: dict, metadata: dict, asset: Path):
    """A tf.Module around the Keras model with the two signatures and the metadata."""
    import tensorflow as tf

    bias = calibration.get("bias_correction")
    if bias is not None and float(bias["slope"]) == 0.0:
        print("bias correction has slope 0 and cannot be inverted: no corrected_predicted_age output")
        bias = None
    conformal = calibration.get("conformal")

    def width(value) -> float:
        return math.inf if value is None else float(value)

    class BrainAgeModule(tf.Module):
        """The run's model with its calibration; every method is traced at save time."""

        def __init__(self):
            super().__init__(name="brainage")
            # The variables, not the Keras model, are tracked (as keras.export.ExportArchive does):
            # tracking the model saves variable names the TF1 loader of saved_model_cli cannot restore.
            self.model_variables = [variable.value for variable in model.variables]
            self.metadata_asset = tf.saved_model.Asset(str(asset))
            self.grid_name = tf.constant(metadata["grid"] or "")
            self.grid_shape = tf.constant(metadata["grid_shape"], tf.int32)
            self.voxel_size_mm = tf.constant(metadata["voxel_size_mm"] or math.nan, tf.float32)
            self.registration = tf.constant(metadata["registration"] or "")
            self.normalization = tf.constant(metadata["normalization"])
            self.slice_axis = tf.constant(metadata.get("slice_axis") or "")  # "" for a model without one
            self.model_name = tf.constant(metadata["model"])
            self.precision = tf.constant(metadata["precision"])
            self.training_age_range = tf.constant(metadata["training_age_range"], tf.float32)
            self.package_version = tf.constant(metadata["package_version"])
            self.dataset = tf.constant(metadata["dataset"])
            self.metadata_json = tf.constant(json.dumps(metadata, sort_keys=True))

        @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="volume")])
        def serve(self, volume):
            """Ages of preprocessed volumes [batch, x, y, z]."""
            predicted = tf.cast(model(volume[..., tf.newaxis], training=False)[:, 0], tf.float32)
            outputs = {"predicted_age": predicted}
            p = tf.cast(predicted, tf.float64)
            if bias is not None:
                corrected = (p - float(bias["intercept"])) / float(bias["slope"])
                outputs["corrected_predicted_age"] = tf.cast(corrected, tf.float32)
            if conformal is not None:
                half = tf.fill(tf.shape(p), tf.constant(width(conformal["global_half_width"]), tf.float64))
                if conformal.get("edges"):
                    edges = tf.constant(conformal["edges"], tf.float64)
                    widths = tf.constant([width(w) for w in conformal["half_widths"]], tf.float64)
                    # As metrics.age_group_index: edges[i] <= p < edges[i + 1], the last bin closed.
                    index = tf.minimum(tf.searchsorted(edges, p, side="right") - 1, tf.size(widths) - 1)
                    inside = (p >= edges[0]) & (p <= edges[-1])
                    half = tf.where(inside, tf.gather(widths, tf.maximum(index, 0)), half)
                outputs["interval_low"] = tf.cast(p - half, tf.float32)
                outputs["interval_high"] = tf.cast(p + half, tf.float32)
            return outputs

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def predict_examples(self, examples):
            """Ages of serialized tf.train.Example records in the TFDS builders' format."""
            features = tf.io.parse_example(examples, {"volume": tf.io.FixedLenFeature([], tf.string)})
            raw = tf.io.decode_compressed(features["volume"], compression_type="ZLIB")
            volume = tf.reshape(tf.io.decode_raw(raw, tf.float16), [-1, *shape])
            return self.serve(tf.cast(volume, tf.float32))

        @tf.function(input_signature=[])
        def metadata(self):
            """The preprocessing settings the model expects, as constants."""
            names = ("grid_name", "grid_shape", "voxel_size_mm", "registration", "normalization")
            names += ("slice_axis", "model_name", "precision", "training_age_range", "package_version")
            names += ("dataset",)
            return {name: tf.identity(getattr(self, name)) for name in names + ("metadata_json",)}

    return BrainAgeModule()


def _load_model(run: RunDirectory, config: TrainConfig, checkpoint: str):
    """The run's Keras model: best_model.keras, or the last checkpoint rebuilt on the dataset's grid."""
    from brainage_tf import data
    from brainage_tf.evaluation.inference import load_run_model

    if checkpoint == "best":
        return load_run_model(run, config, None, checkpoint)
    try:
        source = data.tfds_source(config.dataset, config.train_split, config.data_dir)
    except DatasetError as error:
        raise UsageError(f"--checkpoint last needs the run's dataset for its grid: {error}") from None
    return load_run_model(run, config, source.volume_shape, checkpoint)


def export_run(
    run_dir: str | os.PathLike, version: int | None = None, checkpoint: str = "best", model=None
) -> Path:
    """Exports a run's model with its calibration and preprocessing settings as a SavedModel.

    Args:
        run_dir: The training run directory.
        version: Serving version folder (None: 1 + the largest existing one).
        checkpoint: "best" (best_model.keras) or "last" (the last epoch's checkpoint).
        model: That checkpoint's Keras model when the caller has loaded it (None: loaded here).

    Returns:
        The written `RUN_DIR/export/<version>` folder.

    Raises:
        UsageError: Not a run directory, a model this package has not registered, no finished
            model, an existing version, or an unreadable calibration file.
    """
    run = RunDirectory(Path(run_dir))
    config = run.read_config()
    try:
        get_model_spec(config.model)
    except UnknownModelError as error:
        raise UsageError(f"{run.config_path}: {error}") from None
    if checkpoint not in CHECKPOINTS:
        raise UsageError(f"unknown checkpoint {checkpoint!r}; choose one of {', '.join(CHECKPOINTS)}.")
    export_dir = run.path / "export"
    version = next_version(export_dir) if version is None else int(version)
    if version < 0:
        raise UsageError(f"--version must be a non-negative integer, got {version}.")
    target = export_dir / str(version)
    if target.exists():
        raise UsageError(f"{target} exists; exports are never overwritten, choose another --version.")
    if checkpoint == "best" and not run.best_model_path.is_file():
        raise UsageError(f"{run.path} has no best_model.keras: the run has not finished an epoch.")
    calibration_path = run.checkpoint_file("calibration.json", checkpoint)
    calibration = {}
    if calibration_path.is_file():
        try:
            calibration = json.loads(calibration_path.read_text())
        except json.JSONDecodeError as error:
            raise UsageError(f"{calibration_path}: unreadable calibration ({error}).") from None

    if model is None:
        model = _load_model(run, config, checkpoint)
    shape = tuple(int(size) for size in model.input_shape[1:4])
    return write_version(model, calibration, export_metadata(config, shape, checkpoint, calibration), target)


def write_version(model, calibration: dict, metadata: dict, target: Path) -> Path:
    """Writes one export version folder: the SavedModel of `model` with its calibration and metadata.

    The one writer of exports, so a run's export and a recalibrated one
    (`brainage_tf.serving.recalibration`) serve the same signatures from the same code.

    Args:
        model: The Keras model, input (batch, x, y, z, 1).
        calibration: {"bias_correction", "conformal"} as JSON (either may be absent or None).
        metadata: The metadata asset (`export_metadata`'s keys).
        target: The version folder, `<model folder>/<version>`; it must not exist.

    Returns:
        `target`.

    Raises:
        UsageError: `target` exists, or appeared while the version was written; it is left untouched.
    """
    import tensorflow as tf

    target = Path(target)
    if target.exists():
        raise UsageError(f"{target} exists; exports are never overwritten, choose another version.")
    shape = tuple(int(size) for size in model.input_shape[1:4])
    target.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the target and renamed at the end: TF Serving never sees a half-written version.
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as staging:
        asset = Path(staging) / "asset" / METADATA_ASSET
        asset.parent.mkdir()
        asset.write_text(json.dumps(metadata, indent=2) + "\n")
        module = _serving_module(model, shape, calibration, metadata, asset)
        saved = Path(staging) / "saved"
        signatures = {
            "serving_default": module.serve.get_concrete_function(),
            "predict_examples": module.predict_examples.get_concrete_function(),
        }
        tf.saved_model.save(module, str(saved), signatures=signatures)
        try:
            saved.rename(target)
        except OSError:
            raise UsageError(f"{target} appeared during the export; it was left untouched.") from None
    return target
