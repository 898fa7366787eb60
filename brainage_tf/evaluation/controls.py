"""Calibration fitted on a site's local controls: the same three fits training makes, on other scans.

A trained export carries a bias line, conformal intervals and out-of-distribution ranges
fitted on its own training split (`run_calibration.calibrate`). At a new site those fits
describe another scanner and population. `fit_on_controls` refits them on a handful of the
site's control scans with known ages, which the model never trained on:

* the bias line (`BiasCorrection.fit`) on every usable control scan, as training fits it
  on every validation scan;
* split-conformal intervals (`ConformalIntervals.fit`) on one scan per control subject
  (`held_out.one_scan_per_subject`), one global width: bins of the predicted age are not
  fitted from so few (a 4-bin Mondrian fit needs `min_calibration_subjects` per bin);
* the out-of-distribution ranges (`ReferenceRanges`): registration NCC and intensity of
  the controls, the scans the new correction and intervals hold for; the age range stays
  the model's training range, the ages the model learned (docs/evaluation.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from brainage_tf.evaluation.calibration import (
    MIN_BIAS_SCANS,
    BiasCorrection,
    ConformalIntervals,
    min_calibration_subjects,
)
from brainage_tf.evaluation.held_out import one_scan_per_subject
from brainage_tf.evaluation.normative import GapNorms
from brainage_tf.evaluation.ood import ReferenceRanges

# Key of the hash that keeps one scan per control subject: fixed, so a rerun keeps the same scans.
CONTROL_SCAN_SEED = 0


@dataclasses.dataclass(frozen=True)
class ControlFits:
    """The calibration fitted on a site's controls, with what it was fitted on.

    Attributes:
        bias_correction: The bias line of every usable control scan.
        conformal: The intervals of one scan per control subject (one global width).
        reference: The controls' registration and intensity ranges, the training age range.
        scans: Control scans the bias line was fitted on.
        subjects: Control subjects, one scan each, the intervals were fitted on.
        age_range: (min, max) age of the control scans, years.
        normative: Centiles of the bias-corrected gap of the same scans as the intervals
            (None: too few subjects for them).
    """

    bias_correction: BiasCorrection
    conformal: ConformalIntervals
    reference: ReferenceRanges
    scans: int
    subjects: int
    age_range: tuple[float, float]
    normative: GapNorms | None = None


def minimum_controls(level: float) -> int:
    """The fewest control subjects both fits need: the bias line's and a finite interval's at `level`.

    A finite split-conformal half-width is the ceil((n+1) * level)-th smallest of n scores,
    so it needs n >= level / (1 - level) = 1/alpha - 1 (alpha = 1 - level): 9 at 0.9.

    Example:
        >>> minimum_controls(0.9), minimum_controls(0.95), minimum_controls(0.5)
        (9, 19, 3)
    """
    return max(MIN_BIAS_SCANS, min_calibration_subjects(level))


def fit_on_controls(
    ages: Sequence[float],
    predicted: Sequence[float],
    subject_ids: Sequence[str],
    sessions: Sequence[str],
    registration_ncc: Sequence[float],
    intensity_mean: Sequence[float],
    intensity_std: Sequence[float],
    training_ages: Sequence[float],
    level: float,
) -> ControlFits:
    """Fits the bias line, the intervals and the ranges on usable control scans (finite predictions).

    Args:
        ages: The controls' true ages, years.
        predicted: The model's predictions of them.
        subject_ids: Their subjects (a subject's sessions share one conformal score).
        sessions: Their sessions.
        registration_ncc: Their preprocessing's registration NCC.
        intensity_mean: Mean of each preprocessed volume.
        intensity_std: Standard deviation of each preprocessed volume.
        training_ages: (min, max) age of the model's training scans, kept as the ranges' age.
        level: Coverage the intervals aim at.

    Raises:
        ValueError: Fewer subjects than `minimum_controls(level)`, ages that do not vary, or a
            bias line whose slope is not positive (its inverse would turn ages around).
    """
    ages, predicted = np.asarray(ages, float), np.asarray(predicted, float)
    subject_ids = np.asarray(subject_ids, dtype=object)
    kept = one_scan_per_subject(subject_ids, np.asarray(sessions, dtype=object), CONTROL_SCAN_SEED)
    needed = minimum_controls(level)
    if kept.size < needed:
        raise ValueError(f"{kept.size} control subjects, at least {needed} needed at level {level:g}")
    bias = BiasCorrection.fit(ages, predicted)
    if bias.slope <= 0.0:
        raise ValueError(
            f"the controls' bias line has slope {bias.slope:.3g}: their predicted ages do not rise with "
            f"their ages ({ages.min():g}-{ages.max():g} y), so its inverse would turn ages around"
        )
    conformal = ConformalIntervals.fit(ages[kept], predicted[kept], level=level)
    measured = ReferenceRanges.measure(ages, registration_ncc, intensity_mean, intensity_std)
    reference = dataclasses.replace(measured, age=(float(training_ages[0]), float(training_ages[1])))
    age_range = (float(ages.min()), float(ages.max()))
    try:
        normative = GapNorms.fit(ages[kept], bias.apply(predicted[kept], ages[kept]) - ages[kept])
    except ValueError:  # fewer than MIN_NORM_SUBJECTS controls, possible at a low level: no centiles
        normative = None
    return ControlFits(bias, conformal, reference, int(ages.size), int(kept.size), age_range, normative)
