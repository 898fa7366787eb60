"""A run's calibration: the fits evaluation and prediction apply, reused while their inputs are unchanged.

Fitted on the run's own training split, never on evaluated data: the bias correction on
its validation subjects, the intervals on the calibration part of them, which took no part
in choosing the epoch (`held_out`), the out-of-distribution ranges on its training subjects'
preprocessed volumes (no model needed: `inference.scan_statistics`). Saved as
`RUN_DIR/calibration.json` (`calibration-last.json` for the last checkpoint) with the
fingerprint of what it was fitted from: the model file, the dataset's `dataset_info.json`,
the run's selection and the interval settings. A later evaluation with the same inputs
reads it back instead of refitting (docs/evaluation.md), since refitting meant running the
model over the whole training split: about 2 minutes per evaluation on the paper grid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_tf import __version__, data
from brainage_tf.evaluation import inference
from brainage_tf.evaluation.calibration import DEFAULT_CONFORMAL_LEVEL, BiasCorrection, ConformalIntervals
from brainage_tf.evaluation.held_out import fit_held_out
from brainage_tf.evaluation.normative import GapNorms
from brainage_tf.evaluation.ood import ReferenceRanges
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.run_directory import RunDirectory
from brainage_tf.training.trainer import selection_of

# Bumped when what a calibration computes changes, so older files are refitted, not reused.
CALIBRATION_FORMAT = 3
# The key of calibration.json that holds the fingerprint of its inputs.
INPUTS_KEY = "inputs"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Fits on the run's training split that evaluation and prediction apply."""

    bias_correction: BiasCorrection | None
    conformal: ConformalIntervals | None
    reference: ReferenceRanges
    n_validation: int
    calibration_part: dict | None = None
    normative: GapNorms | None = None

    def to_json(self) -> dict:
        return {
            "n_validation": self.n_validation,
            "calibration_part": self.calibration_part,
            "bias_correction": self.bias_correction.to_json() if self.bias_correction else None,
            "conformal": self.conformal.to_json() if self.conformal else None,
            "reference": self.reference.to_json(),
            "normative": self.normative.to_json() if self.normative else None,
        }

    @classmethod
    def from_json(cls, values: dict) -> Calibration:
        """Inverse of to_json (other keys, such as the inputs' fingerprint, are ignored)."""
        bias, conformal = values["bias_correction"], values["conformal"]
        normative = values.get("normative")
        return cls(
            BiasCorrection.from_json(bias) if bias else None,
            ConformalIntervals.from_json(conformal) if conformal else None,
            ReferenceRanges.from_json(values["reference"]),
            int(values["n_validation"]),
            values["calibration_part"],
            GapNorms.from_json(normative) if normative else None,
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def calibration_inputs(
    run: RunDirectory,
    config: TrainConfig,
    source: data.ExampleSource,
    checkpoint: str,
    level: float,
    by_bin: Sequence[float] | None,
) -> dict:
    """The fingerprint of everything a calibration is fitted from; equal fingerprints, equal fits."""
    if checkpoint == "best":
        model = _sha256(run.best_model_path)
    else:
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(run.checkpoint_dir))
        model = f"{Path(latest).name}:{_sha256(Path(latest + '.index'))}" if latest else None
    return {
        "format": CALIBRATION_FORMAT,
        "package_version": __version__,
        "model": model,
        "dataset": source.description,
        "dataset_info": source.fingerprint,
        "selection": json.loads(json.dumps(dataclasses.asdict(selection_of(config)))),
        "conformal_level": level,
        "by_bin": None if by_bin is None else [float(edge) for edge in by_bin],
    }


def calibrate(
    run: RunDirectory,
    config: TrainConfig,
    load_model: Callable[[], object],
    checkpoint: str = "best",
    level: float = DEFAULT_CONFORMAL_LEVEL,
    by_bin: Sequence[float] | None = None,
    log: Callable[[str], None] = print,
) -> Calibration:
    """The run's calibration: read back when its inputs are unchanged, else fitted and saved.

    Fits the bias correction on the validation subjects, the intervals on their calibration
    part (`held_out.fit_held_out`), the ranges on the training subjects; logs what could not
    be fitted.

    Args:
        run: The run directory.
        config: Its config.
        load_model: Returns the model of `checkpoint`; called only when a fit is needed.
        checkpoint: "best" or "last".
        level: Coverage the intervals aim at.
        by_bin: Age edges for one interval width per bin of the predicted age (None: one width).
        log: Progress printer.
    """
    source = data.tfds_source(config.dataset, config.train_split, config.data_dir)
    inputs = calibration_inputs(run, config, source, checkpoint, level, by_bin)
    calibration_path = run.checkpoint_file("calibration.json", checkpoint)
    validation_path = run.checkpoint_file("validation_predictions.csv", checkpoint)
    if calibration_path.is_file() and (validation_path.is_file() or not config.selects_best_epoch):
        saved = json.loads(calibration_path.read_text())
        if saved.get(INPUTS_KEY) == inputs and inputs["dataset_info"] is not None:
            log(f"calibration is current (same model, dataset and settings): reusing {calibration_path}")
            return Calibration.from_json(saved)
    selection = selection_of(config)
    trained_on = inference.scan_statistics(source, selection, "train")
    ncc = trained_on.columns.get("registration_ncc")
    reference = ReferenceRanges.measure(
        trained_on.ages, ncc, trained_on.intensity_mean, trained_on.intensity_std
    )
    validation = (
        inference.predict(load_model(), source, selection, "validation")
        if config.selects_best_epoch
        else None
    )
    if validation is None:
        calibration = Calibration(None, None, reference, 0)
    else:
        no_text = np.full(len(validation), "")
        subject_ids = validation.columns.get("subject_id", no_text)
        sessions = validation.columns.get("session", no_text)
        fits = fit_held_out(
            validation.ages, validation.predicted, subject_ids, sessions, selection, level, by_bin
        )
        for warning in fits.warnings:
            log(f"warning: {warning}")
        calibration = Calibration(
            fits.bias_correction, fits.conformal, reference, len(validation), fits.record, fits.normative
        )
        # Kept for ensembles, whose member weights are fitted on these same subjects.
        validation_table = pd.DataFrame({
            "subject_id": subject_ids,
            "session": sessions,
            "age": validation.ages,
            "predicted_age": validation.predicted,
        })  # fmt: skip
        validation_table.to_csv(validation_path, index=False)
    calibration_path.write_text(json.dumps({**calibration.to_json(), INPUTS_KEY: inputs}, indent=2) + "\n")
    return calibration


def calibrate_run(
    run_dir: str | Path,
    checkpoint: str = "best",
    log: Callable[[str], None] = print,
    load_model: Callable[[], object] | None = None,
) -> Calibration:
    """A finished run's calibration with the default settings, evaluating no split.

    Training calls it before its export, so the export carries the bias correction,
    the intervals and the out-of-distribution ranges.

    Args:
        run_dir: The run directory.
        checkpoint: "best" or "last".
        log: Progress printer.
        load_model: Returns the checkpoint's model (default: loads it from the run), so a
            caller that needs the model afterwards loads it once.
    """
    run = RunDirectory(Path(run_dir))
    config = run.read_config()
    load_model = load_model or (lambda: inference.load_run_model(run, config, None, checkpoint))
    return calibrate(run, config, load_model, checkpoint, log=log)
