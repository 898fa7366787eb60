"""A loaded export: its `serving_default` function, metadata, preprocessing and fingerprint."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from brainage_tf.defaults import STORED_VOLUME_DTYPE
from brainage_tf.errors import PreprocessingRecordError, UsageError, one_line
from brainage_tf.evaluation.calibration import BiasCorrection
from brainage_tf.evaluation.normative import GapNorms
from brainage_tf.evaluation.ood import ReferenceRanges, intensity_statistics
from brainage_tf.preprocessing import GRIDS, PreprocessConfig, PreprocessedScan
from brainage_tf.preprocessing_record import PREPROCESSING_VERSION, preprocess_config_from_record
from brainage_tf.serving.metadata import export_fingerprint, read_metadata
from brainage_tf.skull_strip import check_available

# Outputs of serving_default beside predicted_age, present when the run was calibrated.
OPTIONAL_OUTPUTS = ("corrected_predicted_age", "interval_low", "interval_high")


class ExportedModel:
    """A loaded export: its `serving_default` function, metadata and preprocessing config.

    Attributes:
        path: The export version folder, absolute.
        fingerprint: `brainage_tf.serving.metadata.export_fingerprint` of its files.
        metadata: The metadata asset.
        preprocess_config: What every scan goes through before the model sees it.
        grid_shape: The model's input volume shape (x, y, z).
        outputs: The optional outputs this export has (OPTIONAL_OUTPUTS order).
        reference: The training scans' ranges that flag out-of-distribution scans, or None.
        bias_correction: The bias line the centiles were fitted with, or None (no centiles).
        normative: Centiles of the bias-corrected gap by age (`evaluation.normative`), or None.
    """

    def __init__(
        self,
        export_dir: str | os.PathLike,
        grid: str | None = None,
        max_voxels: int | None = None,
        skull_strip: str | None = None,
    ):
        """Loads the SavedModel; its preprocessing is what the record in its metadata says.

        Args:
            export_dir: The `RUN_DIR/export/<version>` folder.
            grid: Grid the caller expects (None: whatever the export has).
            max_voxels: Largest image preprocessing reads (None: the package default).
            skull_strip: Skull stripping the caller expects (None: whatever the export has).

        Raises:
            UsageError: Unreadable export or metadata, no usable preprocessing record (see
                `export_preprocess_config`), a grid other than `grid`, a skull stripping other than
                `skull_strip` or one whose extra is not installed, or an input shape that is not
                the grid's.
        """
        self.path = Path(export_dir).resolve()
        self.metadata = read_metadata(self.path)
        self.preprocess_config = export_preprocess_config(export_dir, self.metadata)
        if max_voxels is not None:
            try:
                self.preprocess_config = dataclasses.replace(self.preprocess_config, max_voxels=max_voxels)
            except ValueError as error:
                raise UsageError(f"--max-voxels: {one_line(error)}") from None
        name, shape = self.metadata["preprocessing"]["grid"], tuple(self.metadata.get("grid_shape") or ())
        if GRIDS[name].shape != shape:
            raise UsageError(f"{export_dir}: export grid {name!r} does not have its input shape {shape}")
        if grid is not None and grid != name:
            raise UsageError(f"--grid {grid} differs from the export's grid {name!r}")
        stripped = self.preprocess_config.skull_strip
        if skull_strip is not None and skull_strip != stripped:
            raise UsageError(
                f"--skull-strip {skull_strip} differs from the export's skull stripping {stripped!r}: "
                "scans are preprocessed as its training data were"
            )
        check_available(stripped)
        self.grid_shape = shape
        self.fingerprint = export_fingerprint(self.path)

        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(self.path))
            self._serve = loaded.signatures["serving_default"]
        except Exception as error:  # TF raises many types for one cause: an unreadable export
            raise UsageError(f"{export_dir}: cannot load the SavedModel ({one_line(error)})") from None
        self._loaded = loaded  # keeps the variables alive
        spec = self._serve.structured_input_signature[1].get("volume")
        if spec is None or tuple(spec.shape[1:]) != shape:
            found = None if spec is None else tuple(spec.shape)
            raise UsageError(f"{export_dir}: serving_default input {found} is not [batch, *{shape}]")
        self.outputs = [name for name in OPTIONAL_OUTPUTS if name in self._serve.structured_outputs]
        # Exports made before evaluation (or without a training split) have no ranges to flag against.
        reference = self.metadata.get("reference")
        self.reference = ReferenceRanges.from_json(reference) if reference else None
        # Centiles of the corrected gap need the bias line they were fitted with; older exports have none.
        bias, normative = self.metadata.get("bias_correction"), self.metadata.get("normative")
        self.bias_correction = BiasCorrection.from_json(bias) if bias and normative else None
        self.normative = GapNorms.from_json(normative) if bias and normative else None

    def predict(self, volumes: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of `serving_default` for float32 volumes [batch, x, y, z] on the export's grid."""
        volumes = np.asarray(volumes, np.float32)
        if volumes.ndim != 4 or volumes.shape[1:] != self.grid_shape:
            raise ValueError(
                f"volumes of shape {volumes.shape} do not match the export's grid {self.grid_shape}"
            )
        return {key: value.numpy() for key, value in self._serve(volume=volumes).items()}

    @property
    def saved_variables(self) -> list:
        """The SavedModel's variables of the Keras model, in the order of that model's `model.variables`.

        The export tracks them as `model_variables` (`brainage_tf.serving.export`), so a model
        rebuilt from the metadata takes them back one for one (recalibration keeps the weights).
        """
        try:
            return list(self._loaded.model_variables)
        except AttributeError:
            raise UsageError(
                f"{self.path}: the SavedModel has no model_variables to read its weights from"
            ) from None

    def age_tensor(self, volumes):
        """`predicted_age` of float32 volumes [batch, x, y, z] as a tensor `tf.GradientTape` differentiates.

        The loaded `serving_default` keeps the model's gradients, so explanation
        works from the export alone, without the run directory.
        """
        return self._serve(volume=volumes)["predicted_age"]

    def gap_norms(self, predicted: float, age: float) -> dict[str, float]:
        """A scan's bias-corrected gap (its age known), z-score and centile at its age; {} without norms."""
        if self.normative is None:
            return {}
        gap = float(self.bias_correction.apply([predicted], [age])[0]) - age
        z = float(self.normative.z_score([gap], [age])[0])
        centile = float(self.normative.centile([gap], [age])[0])
        return {"corrected_brain_age_gap": gap, "gap_z": z, "gap_centile": centile}

    def ood_reason(self, predicted: float, volume: np.ndarray, registration_ncc: float) -> str:
        """Why one scan lies outside the training scans' ranges ("" inside them, or without ranges)."""
        if self.reference is None:
            return ""
        mean, std = intensity_statistics(volume)
        (reason,) = self.reference.reasons([predicted], [registration_ncc], [mean], [std])
        return reason


def export_preprocess_config(export_dir: str | os.PathLike, metadata: dict) -> PreprocessConfig:
    """The PreprocessConfig of an export's preprocessing record (metadata key `preprocessing`).

    Raises:
        UsageError: One line: no record (a run trained on in-memory data, or exported by an older
            version), another preprocessing version, or a record no scan can be preprocessed with.
    """
    record = metadata.get("preprocessing")
    if record is None:
        raise UsageError(
            f"{export_dir}: the export has no preprocessing record, so its scans cannot be preprocessed as "
            "its training data were; rebuild the run's dataset, retrain if it was trained on other data, "
            "and export the run again"
        )
    try:
        return preprocess_config_from_record(record)
    except PreprocessingRecordError as error:
        found = record.get("version") if isinstance(record, dict) else None
        if found is not None and found != PREPROCESSING_VERSION:
            raise UsageError(
                f"{export_dir}: the export's preprocessing version is {found!r}, this package's is "
                f"{PREPROCESSING_VERSION}; use the brainage_tf version that exported it, or export the "
                "run again from a dataset rebuilt by this version"
            ) from None
        raise UsageError(f"{export_dir}: {one_line(error)}") from None


def model_input(scan: PreprocessedScan) -> np.ndarray:
    """A preprocessed scan's float32 volume rounded to the builders' stored dtype.

    So the model gets exactly the tensor it was trained and evaluated on for the same file.
    """
    return np.asarray(scan.volume).astype(STORED_VOLUME_DTYPE).astype(np.float32)
