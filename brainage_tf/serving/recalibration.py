"""Recalibration of an export on a site's local controls, without training: a new export version.

The controls go through the batch runner `predict` uses (`run_batch`: the export's
preprocessing in worker processes, where a crash costs one scan, one scan at a time
through `serving_default`). Their ages and predictions refit the bias line, the
conformal intervals and the out-of-distribution ranges (`evaluation.controls`). The
Keras model is rebuilt from the export's metadata through the model registry and takes
the SavedModel's variables back one for one, so the weights are bit-equal; the new
version is written by `export.write_version`, the writer of every export, staged and
renamed, never over an existing version. See docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from brainage_tf import __version__
from brainage_tf.errors import UsageError, one_line
from brainage_tf.evaluation.calibration import MIN_BIAS_SCANS, min_calibration_subjects
from brainage_tf.evaluation.controls import ControlFits, fit_on_controls, minimum_controls
from brainage_tf.evaluation.ood import intensity_statistics
from brainage_tf.model_registry import UnknownModelError, get_model_spec
from brainage_tf.preprocessing import PreprocessedScan
from brainage_tf.serving.batch import RowList, run_batch
from brainage_tf.serving.export import write_version
from brainage_tf.serving.exported_model import ExportedModel, model_input
from brainage_tf.serving.journal import OK
from brainage_tf.serving.metadata import next_version
from brainage_tf.serving.predictions import Predictor
from brainage_tf.serving.scans import ScanItem

TOOL = "brainage_tf.calibrate"


@dataclasses.dataclass(frozen=True)
class Recalibration:
    """A written recalibrated export.

    Attributes:
        target: The new version folder.
        fits: What was fitted on the controls.
        failed: (path, reason) of every control left out (its scan failed or its prediction is not finite).
    """

    target: Path
    fits: ControlFits
    failed: tuple[tuple[str, str], ...]


def too_few_message(subjects: int, scans: int, level: float, what: str = "usable") -> str:
    """The one line that says how many controls there are and how many the fits need."""
    alpha = 1.0 - level
    return (
        f"{subjects} {what} control subjects ({scans} scans), but recalibration needs at least "
        f"{minimum_controls(level)}: {MIN_BIAS_SCANS} for the bias line and "
        f"{min_calibration_subjects(level)} for a finite {level:.0%} conformal interval "
        f"(n >= 1/alpha - 1 = {1 / alpha - 1:.3g}); add control subjects"
    )


def check_controls(items: Sequence[ScanItem], level: float, source: str) -> None:
    """Refuses, before any scan is read, controls without an age and too few control subjects.

    Raises:
        UsageError: One line naming the scan without an age, or giving the counts.
    """
    for item in items:
        if item.age is None or not math.isfinite(item.age):
            name = item.path or f"subject {item.subject_id} (no scan file)"
            raise UsageError(f"{name}: no age for this control in {source}; recalibration fits on known ages")
    subjects = len({item.subject_id or item.path for item in items})
    if subjects < minimum_controls(level):
        raise UsageError(too_few_message(subjects, len(items), level, "listed"))


def version_folder(out_dir: Path, parent: Path) -> Path:
    """The next version folder of the model folder `out_dir`, which must hold versions, not be one.

    Raises:
        UsageError: `out_dir` is a SavedModel version or lies inside the parent export.
    """
    out_dir = Path(out_dir).resolve()
    if (out_dir / "saved_model.pb").exists() or out_dir.is_relative_to(parent):
        raise UsageError(
            f"--out {out_dir} is an export version (or inside one); give the folder that holds the "
            f"versions, e.g. {parent.parent}: exports are never written into or over a version"
        )
    return out_dir / str(next_version(out_dir))


def rebuild_model(exported: ExportedModel):
    """The export's Keras model, built through the registry from its metadata, with its saved variables.

    Raises:
        UsageError: The metadata does not name a registered model with its fields, or the built
            model's variables do not match the SavedModel's in number and shapes.
    """
    from brainage_tf.models import build_model

    metadata = exported.metadata
    try:
        spec = get_model_spec(metadata["model"])
        fields = {field: metadata[field] for field in spec.config_fields}
        model = build_model(spec.name, exported.grid_shape, precision=metadata["precision"], **fields)
    except (KeyError, UnknownModelError, TypeError, ValueError) as error:
        raise UsageError(
            f"{exported.path}: cannot rebuild the model from its metadata ({one_line(error)})"
        ) from None
    model(np.zeros((1, *exported.grid_shape, 1), np.float32), training=False)  # creates the variables
    saved = exported.saved_variables
    shapes = [tuple(variable.shape) for variable in model.variables]
    if shapes != [tuple(variable.shape) for variable in saved]:
        raise UsageError(
            f"{exported.path}: its {len(saved)} saved variables do not match the {len(shapes)} of the "
            f"{spec.name} its metadata describes"
        )
    for variable, value in zip(model.variables, saved, strict=True):
        variable.assign(value.numpy())
    return model


def left_out_reason(row: dict) -> str:
    """Why a control's finished row is not fitted on ("" when it is): its failure, or a non-finite age."""
    if row["status"] != OK:
        return row["reason"]
    if not math.isfinite(row["predicted_age"]):
        return f"{row['path']}: non-finite predicted age {row['predicted_age']}"
    return ""


class ControlPredictor(Predictor):
    """The handler of `run_batch` for a control: `predict`'s fields and the volume's intensity statistics."""

    def __call__(self, index: int, item: ScanItem, scan: PreprocessedScan) -> dict:
        """`Predictor`'s fields plus `intensity_mean` and `intensity_std`, as `ood_reason` measures them."""
        fields = super().__call__(index, item, scan)
        mean, std = intensity_statistics(model_input(scan))
        fields.update(intensity_mean=mean, intensity_std=std)
        return fields


def recalibrated_metadata(
    exported: ExportedModel, fits: ControlFits, source: dict, failed: Sequence[tuple[str, str]]
) -> dict:
    """The parent's metadata with the new calibration and `calibrated_on`; every other key unchanged."""
    return {
        **exported.metadata,
        "bias_correction": fits.bias_correction.to_json(),
        "conformal": fits.conformal.to_json(),
        "reference": fits.reference.to_json(),
        # Refitted with the bias line: the parent's centiles belong to the parent's line.
        "normative": fits.normative.to_json() if fits.normative else None,
        "calibrated_on": {
            "scans": fits.scans,
            "subjects": fits.subjects,
            "age_range": list(fits.age_range),
            "input": source,
            "failed": [{"path": path, "reason": reason} for path, reason in failed],
            "parent": {"path": str(exported.path), "fingerprint": exported.fingerprint},
            "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "tool": TOOL,
            "package_version": __version__,
            "ood_ranges": "registration and intensity of the controls; ages of the training scans",
        },
    }


def recalibrate(
    exported: ExportedModel,
    items: Sequence[ScanItem],
    out_dir: str | os.PathLike,
    source: dict,
    level: float,
    workers: int = 0,
    progress: bool = False,
    report: Callable[[int, dict], None] | None = None,
) -> Recalibration:
    """Predicts the controls, fits their calibration and writes it with the export's weights as a new version.

    Args:
        exported: The parent export.
        items: The controls, each with its age (`check_controls`).
        out_dir: The model folder the new version goes into (e.g. the parent's `RUN_DIR/export`).
        source: What the controls were listed by, e.g. {"bids": "/abs/path"}, for the metadata.
        level: Coverage of the intervals.
        workers: Preprocessing processes (0: in this process).
        progress: Show a progress bar.
        report: Called with (index, row) as each control's row finishes.

    Raises:
        UsageError: Too few usable controls, ages that do not vary, a bias line that falls with
            age, an `out_dir` that is a version, or a model that cannot be rebuilt.
        Interrupted: SIGINT or SIGTERM inside `signals_interrupt()`; nothing is written.
    """
    version_folder(Path(out_dir), exported.path)  # refused before any scan is read
    rows = RowList()
    keys = run_batch(items, exported.preprocess_config, ControlPredictor(exported), rows, workers,
                     report=report, progress=progress, description="calibrate")  # fmt: skip
    usable, failed = [], []
    for row in (rows.finished[key] for key in keys):
        reason = left_out_reason(row)
        if reason:
            failed.append((row["path"], reason))
        else:
            usable.append(row)
    subjects = len({row["subject_id"] or row["path"] for row in usable})
    if subjects < minimum_controls(level):
        raise UsageError(too_few_message(subjects, len(usable), level) + f" ({len(failed)} failed)")
    column = {name: [row[name] for row in usable] for name in usable[0]}
    training_ages = exported.reference.age if exported.reference else exported.metadata["training_age_range"]
    try:
        fits = fit_on_controls(
            *(column[name] for name in ("age", "predicted_age", "subject_id", "session", "registration_ncc")),
            column["intensity_mean"], column["intensity_std"], training_ages, level,
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(f"cannot recalibrate on these controls: {one_line(error)}") from None
    model = rebuild_model(exported)
    calibration = {"bias_correction": fits.bias_correction.to_json(), "conformal": fits.conformal.to_json()}
    metadata = recalibrated_metadata(exported, fits, source, failed)
    target = write_version(model, calibration, metadata, version_folder(Path(out_dir), exported.path))
    return Recalibration(target, fits, tuple(failed))
